package domain

import (
	"net/mail"
	"strings"
)

// MaxBatch is the most distinct addresses one invitation batch may hold.
const MaxBatch = 500

// Email is a normalised e-mail address: trimmed and lower-cased, so that two
// spellings of one address are one person. Only NormalizeEmail makes one.
type Email string

func (e Email) String() string { return string(e) }

// NormalizeEmail validates an address and returns its normal form, or an
// invalid_email error whose message says what is wrong.
func NormalizeEmail(raw string) (Email, error) {
	s := strings.TrimSpace(raw)
	if reason := emailProblem(s); reason != "" {
		return "", newError(CodeInvalidEmail, "%s", reason)
	}
	return Email(strings.ToLower(s)), nil
}

func emailProblem(s string) string {
	switch {
	case s == "":
		return "the address is empty"
	case len(s) > 254:
		return "the address is longer than 254 characters"
	case strings.ContainsAny(s, " \t\r\n"):
		return "the address contains spaces"
	case strings.ContainsAny(s, "\"[]\\"):
		return "quoted or bracketed addresses are not supported"
	}
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return "the address has no @"
	}
	local, host := s[:at], s[at+1:]
	switch {
	case local == "":
		return "nothing before the @"
	case len(local) > 64:
		return "the part before the @ is longer than 64 characters"
	case strings.Contains(local, "@"):
		return "the address has more than one @"
	case host == "":
		return "nothing after the @"
	}
	if reason := hostProblem(host); reason != "" {
		return reason
	}
	// net/mail knows the RFC 5322 grammar of the local part; we only need it
	// to agree that the whole string is one bare address.
	a, err := mail.ParseAddress(s)
	if err != nil || a.Name != "" || !strings.EqualFold(a.Address, s) {
		return "the part before the @ has characters an address cannot have"
	}
	return ""
}

func hostProblem(host string) string {
	labels := strings.Split(host, ".")
	if len(labels) < 2 {
		return "the domain " + quoteShort(host) + " has no dot"
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return "the domain " + quoteShort(host) + " is not a valid host name"
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c > 127) {
				return "the domain " + quoteShort(host) + " is not a valid host name"
			}
		}
	}
	return ""
}

func quoteShort(s string) string { return `"` + truncate(s, 60) + `"` }

// SplitAddressList splits what a person typed or pasted into the invite box:
// addresses separated by commas, semicolons, newlines or spaces, also in the
// "Jane Doe <jane@example.com>" form mail programs copy. Empty items vanish;
// nothing is validated or de-duplicated here.
func SplitAddressList(text string) []string {
	var out []string
	for _, item := range strings.FieldsFunc(text, func(r rune) bool {
		return r == ',' || r == ';' || r == '\n' || r == '\r'
	}) {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if strings.Contains(item, "<") {
			if a, err := mail.ParseAddress(item); err == nil {
				out = append(out, a.Address)
				continue
			}
		}
		out = append(out, strings.Fields(item)...)
	}
	return out
}
