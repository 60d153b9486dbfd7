package main

import (
	"flag"
	"strings"
)

// setting is one configuration value: the environment variable that sets
// it, the flag that overrides it ("" when it has none) and its default.
// Every command reads its configuration through settings, in one order: a
// flag that was given wins over its variable, a variable that is not empty
// wins over the default. A value's parser trims it and returns a usage
// error (exit 2) naming where it came from (the source lookup answers).
type setting struct {
	env   string
	flag  string
	def   string
	usage string // the flag's help text
}

// Every setting of usersd. The parsers sit beside their use (config.go,
// mail.go, esdb.go, embedded.go, token.go, auditkeys.go, keys.go, metrics.go, nats.go,
// retention.go, webhooks.go).
var (
	databaseURLSetting = setting{env: envDatabaseURL, flag: flagDatabaseURL, def: defaultDatabaseURL,
		usage: "PostgreSQL connection `URL` (overrides $" + envDatabaseURL + "; with neither: " + defaultDatabaseURL + ", created if missing)"}
	httpAddrSetting = setting{env: envHTTPAddr, flag: "http-addr", def: ":8080",
		usage: "listen `address` (overrides $" + envHTTPAddr + "; default :8080)"}
	publicURLSetting = setting{env: envPublicURL, flag: "public-url",
		usage: "base `URL` of links to usersd, in e-mails and the printed admin link (overrides $" + envPublicURL + ")"}
	metricsAddrSetting = setting{env: envMetricsAddr, flag: "metrics-addr",
		usage: "serve /metrics only on this `address` (overrides $" + envMetricsAddr + "; default: on the API's address)"}
	logLevelSetting       = setting{env: envLogLevel, def: "info"}
	invitationTTLSetting  = setting{env: envInvitationTTL, def: defaultInvitationTTL.String()}
	trustedProxiesSetting = setting{env: envTrustedProxies}
	migrateURLSetting     = setting{env: envMigrateDatabaseURL}
	esdbURLSetting        = setting{env: envESDBURL}
	dataDirSetting        = setting{env: envDataDir, def: defaultDataDir}

	jwtSecretSetting   = setting{env: envJWTSecret}
	jwtIssuerSetting   = setting{env: envJWTIssuer}
	jwtAudienceSetting = setting{env: envJWTAudience}

	smtpURLSetting    = setting{env: envSMTPURL}
	tokenKeySetting   = setting{env: envTokenKey}
	devMailboxSetting = setting{env: envDevMailbox}

	auditSigningKeySetting   = setting{env: envAuditSigningKey}
	auditPreviousKeysSetting = setting{env: envAuditPreviousKeys}

	kekSetting         = setting{env: envKeyEncryptionKey}
	kekPreviousSetting = setting{env: envKeyEncryptionPreviousKeys}

	retentionIntervalSetting   = setting{env: envRetentionInterval, def: "1m"}
	poisonRetentionSetting     = setting{env: envPoisonRetention, def: "720h"}
	deliveryRetentionSetting   = setting{env: envDeliveryRetention, def: "24h"}
	devMailboxRetentionSetting = setting{env: envDevMailboxRetention, def: "168h"}

	webhookDeliveryRetentionSetting = setting{env: envWebhookDeliveryRetention, def: "168h"}

	natsURLSetting               = setting{env: envNATSURL}
	natsTestStreamSetting        = setting{env: envNATSTestStream}        // tests only
	natsTestSubjectPrefixSetting = setting{env: envNATSTestSubjectPrefix} // tests only

	webhookAllowPrivateSetting = setting{env: envWebhookAllowPrivate}
)

// get answers the value of s's variable, else s's default: the settings
// without a flag.
func (s setting) get(getenv func(string) string) string {
	v, _ := s.lookup(nil, getenv)
	return v
}

// register adds s's flag, if it has one, to fs; usage, when not empty,
// replaces s's help text for this command.
func (s setting) register(fs *flag.FlagSet, usage string) {
	if s.flag == "" {
		return
	}
	if usage == "" {
		usage = s.usage
	}
	fs.String(s.flag, "", usage)
}

// lookup answers s's raw value and its source: "-flag" when fs (nil: no
// flags) was given s's flag, even empty; else the variable's name when
// getenv answers it not empty; else s's default, from "default".
func (s setting) lookup(fs *flag.FlagSet, getenv func(string) string) (value, source string) {
	if s.flag != "" && fs != nil {
		var given *flag.Flag
		fs.Visit(func(f *flag.Flag) {
			if f.Name == s.flag {
				given = f
			}
		})
		if given != nil {
			return given.Value.String(), "-" + s.flag
		}
	}
	if v := getenv(s.env); v != "" {
		return v, s.env
	}
	return s.def, "default"
}

// given reports whether fs was given s's flag.
func (s setting) given(fs *flag.FlagSet) bool {
	_, src := s.lookup(fs, func(string) string { return "" })
	return src == "-"+s.flag
}

// trimmed is lookup with the value trimmed of spaces.
func (s setting) trimmed(fs *flag.FlagSet, getenv func(string) string) (value, source string) {
	v, src := s.lookup(fs, getenv)
	return strings.TrimSpace(v), src
}
