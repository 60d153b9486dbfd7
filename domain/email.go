package domain

import (
	"fmt"
	"net/mail"
	"net/netip"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"
	"golang.org/x/text/secure/precis"
)

// MaxBatch is the most distinct addresses one invitation batch may hold.
const MaxBatch = 500

// Email is an e-mail address in its canonical form, the one NormalizeEmail
// answers: every spelling of one address is one Email, so one person, one
// account (the account stream's name hashes it). Only NormalizeEmail makes
// one.
type Email string

func (e Email) String() string { return string(e) }

// NormalizeEmail validates an address and returns its canonical form, or an
// invalid_email error whose message says what is wrong.
//
// The canonical form: trimmed; the part before the @ mapped as the PRECIS
// UsernameCaseMapped profile says (RFC 8265: full-width letters to normal
// width, lower case, NFC); the domain mapped and checked by IDNA2008 with
// the UTS #46 lookup mapping and kept in its Unicode form (U-labels, lower
// case, NFC), so "Jane@XN--MNCHEN-3YA.DE", "jane@MÜNCHEN.de" and
// "jane@münchen.de" are all "jane@münchen.de". An ASCII address is simply
// lower-cased, as it always was.
//
// Refused: invisible, control and text-direction characters; spaces;
// quoted local parts; IP addresses, bracketed or not, and domains whose
// last label is a number; domains without a dot; a label, or a dot-separated
// part before the @, that mixes scripts (Latin with Cyrillic, say), as the
// "highly restrictive" level of UTS #39 says; anything IDNA2008 or PRECIS
// refuses.
func NormalizeEmail(raw string) (Email, error) {
	e, reason := normalizeEmail(strings.TrimSpace(raw))
	if reason != "" {
		return "", newError(CodeInvalidEmail, "%s", reason)
	}
	return Email(e), nil
}

// emailKey answers the canonical form of an address as an event stored it.
// Events keep the address as it was normalised then; what was canonical
// before the IDNA and PRECIS rules (any ASCII address without an A-label,
// lower-cased as always) still is, and the rest ("jane@xn--mnchen-3ya.de",
// decomposed characters) is normalised again, so that one person's
// membership is found whichever spelling a later invitation uses.
func emailKey(e Email) Email {
	s := string(e)
	if isASCII(s) && !strings.Contains(s, "xn--") {
		return e
	}
	if c, reason := normalizeEmail(s); reason == "" {
		return Email(c)
	}
	return e
}

// ASCII answers the address as SMTP without the SMTPUTF8 extension can
// carry it: the domain in its ASCII form (A-labels, "xn--…"). ok is false
// when the part before the @ is not ASCII: such an address can travel only
// where the mail server offers SMTPUTF8 (RFC 6531).
func (e Email) ASCII() (addr string, ok bool) {
	s := string(e)
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return s, isASCII(s)
	}
	local, host := s[:at], s[at+1:]
	if !isASCII(host) {
		if a, err := domainProfile.ToASCII(host); err == nil {
			host = a
		}
	}
	return local + "@" + host, isASCII(local)
}

// domainProfile is IDNA2008 as UTS #46 maps it for lookups, with the bidi
// rule (RFC 5893) and the DNS lengths checked, non-transitional (ß stays ß).
var domainProfile = idna.New(idna.MapForLookup(), idna.BidiRule(), idna.VerifyDNSLength(true), idna.Transitional(false))

// labelProfile checks a U-label's characters (see canonicalDomain).
var labelProfile = precis.NewIdentifier()

// normalizeEmail answers the canonical form of s (trimmed), or why it is
// refused.
func normalizeEmail(s string) (string, string) {
	switch {
	case s == "":
		return "", "the address is empty"
	case !utf8.ValidString(s):
		return "", "the address is not valid UTF-8"
	case len(s) > 254:
		return "", "the address is longer than 254 characters"
	}
	if r, what := hiddenRune(s, false); what != "" {
		return "", fmt.Sprintf("the address contains %s (%U)", what, r)
	}
	switch {
	case strings.IndexFunc(s, unicode.IsSpace) >= 0:
		return "", "the address contains spaces"
	case strings.ContainsAny(s, "\"[]\\"):
		return "", "quoted or bracketed addresses are not supported"
	}
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return "", "the address has no @"
	}
	local, host := s[:at], s[at+1:]
	switch {
	case local == "":
		return "", "nothing before the @"
	case strings.Contains(local, "@"):
		return "", "the address has more than one @"
	case host == "":
		return "", "nothing after the @"
	}
	host, reason := canonicalDomain(host)
	if reason != "" {
		return "", reason
	}
	local, reason = canonicalLocal(local)
	if reason != "" {
		return "", reason
	}
	addr := local + "@" + host
	switch {
	case len(local) > 64:
		return "", "the part before the @ is longer than 64 characters"
	case len(addr) > 254:
		return "", "the address is longer than 254 characters"
	}
	// net/mail knows the RFC 5322 grammar of the local part (RFC 6532 for
	// UTF-8); we only need it to agree that the whole string is one bare
	// address.
	a, err := mail.ParseAddress(addr)
	if err != nil || a.Name != "" || a.Address != addr {
		return "", "the part before the @ has characters an address cannot have"
	}
	return addr, ""
}

// canonicalLocal maps the part before the @ (PRECIS UsernameCaseMapped) and
// refuses what that profile refuses and parts that mix scripts.
func canonicalLocal(local string) (string, string) {
	if isASCII(local) {
		// What the profile does to ASCII, without its cost.
		return strings.ToLower(local), ""
	}
	out, err := precis.UsernameCaseMapped.String(local)
	if err != nil {
		return "", "the part before the @ has characters an address cannot have"
	}
	for part := range strings.SplitSeq(out, ".") {
		if a, b := mixedScripts(part); a != "" {
			return "", fmt.Sprintf("the part before the @ mixes %s and %s letters in one word", a, b)
		}
	}
	return out, ""
}

// canonicalDomain checks a domain and answers its Unicode form.
func canonicalDomain(host string) (string, string) {
	if _, err := netip.ParseAddr(host); err == nil {
		return "", "the domain " + quoteShort(host) + " is an IP address; use the mail domain's name"
	}
	ascii := strings.ToLower(host)
	if !isASCII(host) || strings.Contains(ascii, "xn--") {
		a, err := domainProfile.ToASCII(host)
		if err != nil {
			return "", "the domain " + quoteShort(host) + " is not a valid host name"
		}
		ascii = a
	}
	labels := strings.Split(ascii, ".")
	if len(labels) < 2 {
		return "", "the domain " + quoteShort(host) + " has no dot"
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return "", "the domain " + quoteShort(host) + " is not a valid host name"
		}
		for _, c := range []byte(l) {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return "", "the domain " + quoteShort(host) + " is not a valid host name"
			}
		}
	}
	if tld := labels[len(labels)-1]; strings.Trim(tld, "0123456789") == "" || strings.HasPrefix(tld, "0x") && strings.Trim(tld[2:], "0123456789abcdef") == "" {
		return "", "the domain " + quoteShort(host) + " ends in a number: IP addresses and numeric domains are refused"
	}
	if !strings.Contains(ascii, "xn--") {
		return ascii, ""
	}
	uni, err := domainProfile.ToUnicode(ascii)
	if err != nil {
		return "", "the domain " + quoteShort(host) + " is not a valid host name"
	}
	for label := range strings.SplitSeq(uni, ".") {
		// IDNA2008 allows letters, marks and digits only; x/net/idna
		// follows UTS #46, which lets symbols such as U+2603 pass (its NV8
		// set): PRECIS's IdentifierClass (RFC 8264) holds the same line.
		if _, err := labelProfile.String(label); err != nil {
			return "", "the domain " + quoteShort(host) + " is not a valid host name"
		}
		if a, b := mixedScripts(label); a != "" {
			return "", fmt.Sprintf("the domain %s mixes %s and %s letters in one label", quoteShort(host), a, b)
		}
	}
	return uni, ""
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
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
