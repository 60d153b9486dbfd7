package domain

import (
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/runes"
	"golang.org/x/text/secure/precis"
	"golang.org/x/text/transform"
	"golang.org/x/text/unicode/norm"
)

// hiddenRune finds the first character of s that a reader cannot see or
// that changes how the text around it is shown: text-direction controls
// (U+202E RIGHT-TO-LEFT OVERRIDE makes "moc.evil" read "live.com"),
// invisible characters (zero-width spaces and joiners, soft hyphens,
// variation selectors and the other default-ignorable ones) and control
// characters, but tabs and line breaks (which callers refuse as spaces or
// as line breaks). With joiners, the zero-width joiner and non-joiner pass:
// some scripts need them, and the PRECIS rules decide where they may stand.
// It answers the character and what it is, or "".
func hiddenRune(s string, joiners bool) (rune, string) {
	for _, r := range s {
		switch {
		case joiners && unicode.Is(unicode.Join_Control, r):
		case r < 0x80:
			if r < 0x20 && r != '\t' && r != '\n' && r != '\r' || r == 0x7f {
				return r, "a control character"
			}
		case unicode.Is(unicode.Bidi_Control, r):
			return r, "a text-direction control character"
		case unicode.In(r, unicode.Cf, unicode.Join_Control, unicode.Variation_Selector, unicode.Other_Default_Ignorable_Code_Point):
			return r, "an invisible character"
		case unicode.IsControl(r):
			return r, "a control character"
		}
	}
	return 0, ""
}

// mixedScripts reports two scripts that s mixes, or "" and "" if it keeps
// to what the "highly restrictive" level of UTS #39 allows: one script
// (characters common to all scripts, such as digits and punctuation, and
// inherited marks left aside), or Latin with Han and the Japanese kana,
// with Han and Bopomofo, or with Han and Hangul. "pаypal" with a Cyrillic
// "а" mixes Latin and Cyrillic.
func mixedScripts(s string) (string, string) {
	seen := map[string]bool{}
	for _, r := range s {
		if name := scriptOf(r); name != "" {
			seen[name] = true
		}
	}
	if len(seen) < 2 {
		return "", ""
	}
	for _, allowed := range allowedScriptMixes {
		if subset(seen, allowed) {
			return "", ""
		}
	}
	names := make([]string, 0, len(seen))
	for name := range seen {
		names = append(names, name)
	}
	sort.Strings(names)
	return names[0], names[1]
}

// allowedScriptMixes are the combinations UTS #39 allows at its "highly
// restrictive" level.
var allowedScriptMixes = [][]string{
	{"Latin", "Han", "Hiragana", "Katakana"},
	{"Latin", "Han", "Bopomofo"},
	{"Latin", "Han", "Hangul"},
}

func subset(set map[string]bool, of []string) bool {
	n := 0
	for _, name := range of {
		if set[name] {
			n++
		}
	}
	return n == len(set)
}

// scriptOf answers the Unicode script of r as the standard library's tables
// name it, or "" for characters common to scripts and inherited marks.
func scriptOf(r rune) string {
	switch {
	case r < 0x80:
		if 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' {
			return "Latin"
		}
		return ""
	case unicode.In(r, unicode.Common, unicode.Inherited):
		return ""
	}
	for _, name := range likelyScripts {
		if unicode.Is(unicode.Scripts[name], r) {
			return name
		}
	}
	for name, table := range unicode.Scripts {
		if unicode.Is(table, r) {
			return name
		}
	}
	return "Unknown"
}

// likelyScripts are tried first, to spare a search of every script.
var likelyScripts = []string{"Latin", "Cyrillic", "Greek", "Han", "Hiragana", "Katakana", "Hangul", "Arabic", "Hebrew", "Armenian", "Georgian", "Devanagari", "Thai", "Bopomofo", "Cherokee"}

// nameProfile prepares names (of people and workspaces): PRECIS's
// FreeformClass (RFC 8264), which refuses control, invisible and unassigned
// characters and lets zero-width joiners stand only where a script needs
// them, with every kind of space made a plain one and NFC.
var nameProfile = precis.NewFreeform(
	precis.AdditionalMapping(func() transform.Transformer {
		return runes.Map(func(r rune) rune {
			if unicode.Is(unicode.Zs, r) {
				return ' '
			}
			return r
		})
	}),
	precis.Norm(norm.NFC),
)

// cleanText trims a name, brings it to NFC and refuses empty or overlong
// text and characters that are not seen or that change how the text around
// them reads (control, invisible and text-direction characters), so that
// names are safe to show and to put in an e-mail and cannot pass for
// another name. Its errors are about field.
func cleanText(s, what, field string, max int) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", fieldError(field, CodeInvalidName, "the %s is empty", what)
	}
	if len(s) > 4*max {
		return "", fieldError(field, CodeInvalidName, "the %s is longer than %d characters", what, max)
	}
	if !utf8.ValidString(s) {
		return "", fieldError(field, CodeInvalidName, "the %s is not valid UTF-8", what)
	}
	if strings.ContainsAny(s, "\t\n\r") {
		return "", fieldError(field, CodeInvalidName, "the %s contains control characters", what)
	}
	if r, kind := hiddenRune(s, true); kind != "" {
		return "", fieldError(field, CodeInvalidName, "the %s contains %s (%U)", what, kind, r)
	}
	out, err := nameProfile.String(s)
	if err != nil {
		return "", fieldError(field, CodeInvalidName, "the %s contains a character a name cannot have", what)
	}
	out = strings.TrimSpace(out)
	switch {
	case out == "":
		return "", fieldError(field, CodeInvalidName, "the %s is empty", what)
	case len([]rune(out)) > max:
		return "", fieldError(field, CodeInvalidName, "the %s is longer than %d characters", what, max)
	}
	return out, nil
}
