package domain_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/usersd/usersd/domain"
)

// TestNormalizeEmailOneFormPerAddress: every spelling of one address gives
// one canonical form, so one account: the domain's ASCII (A-label) and
// Unicode spellings, capitals, decomposed and composed characters,
// full-width letters and ideographic full stops.
func TestNormalizeEmailOneFormPerAddress(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		want string
		ins  []string
	}{
		{"jane@münchen.de", []string{"jane@münchen.de", "jane@xn--mnchen-3ya.de", "Jane@XN--MNCHEN-3YA.DE", "jane@MÜNCHEN.de", "jane@mu\u0308nchen.de"}},
		{"jörg@example.com", []string{"jörg@example.com", "JÖRG@example.com", "jo\u0308rg@example.com", "JO\u0308RG@Example.Com"}},
		{"jane@example.com", []string{"jane@example.com", "ｊａｎｅ@example.com", "jane@ｅｘａｍｐｌｅ.ｃｏｍ", "jane@example\u3002com", "JANE@EXAMPLE.COM"}},
		{"иван@пример.рф", []string{"иван@пример.рф", "Иван@ПРИМЕР.РФ", "иван@xn--e1afmkfd.xn--p1ai"}},
		{"ivan.петров@example.com", []string{"Ivan.Петров@example.com"}},
		{"田中@例え.jp", []string{"田中@例え.jp"}},
		{"hans@straße.de", []string{"hans@straße.de", "hans@xn--strae-oqa.de"}}, // IDNA2008: ß stays ß
		{"1234@123.example.com", []string{"1234@123.example.com"}},
	} {
		for _, in := range c.ins {
			got, err := domain.NormalizeEmail(in)
			if err != nil || string(got) != c.want {
				t.Errorf("NormalizeEmail(%q): got %q, %v; want %q", in, got, err, c.want)
			}
		}
	}
}

// TestNormalizeEmailRefusesLookAlikes: characters that hide, reorder or
// imitate others, and IP addresses, are invalid_email with a reason.
func TestNormalizeEmailRefusesLookAlikes(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ name, in, reason string }{
		{"zero-width space before the @", "ja\u200bne@example.com", "an invisible character (U+200B)"},
		{"zero-width space in the domain", "jane@exa\u200bmple.com", "an invisible character (U+200B)"},
		{"zero-width non-joiner", "jane@exa\u200cmple.com", "an invisible character (U+200C)"},
		{"zero-width joiner", "ja\u200dne@example.com", "an invisible character (U+200D)"},
		{"word joiner", "jane@example\u2060.com", "an invisible character (U+2060)"},
		{"byte order mark", "\ufeffjane@example.com", "an invisible character (U+FEFF)"},
		{"soft hyphen", "jane@exam\u00adple.com", "an invisible character (U+00AD)"},
		{"variation selector", "jane\ufe0f@example.com", "an invisible character (U+FE0F)"},
		{"Hangul filler", "jane\u3164@example.com", "an invisible character (U+3164)"},
		{"tag character", "jane\U000E0041@example.com", "an invisible character (U+E0041)"},
		{"right-to-left override", "jane@\u202emoc.example.com", "a text-direction control character (U+202E)"},
		{"left-to-right mark", "jane\u200e@example.com", "a text-direction control character (U+200E)"},
		{"right-to-left isolate", "jane@example.com\u2067", "a text-direction control character (U+2067)"},
		{"Arabic letter mark", "jane\u061c@example.com", "a text-direction control character (U+061C)"},
		{"NUL", "jane\x00@example.com", "a control character (U+0000)"},
		{"escape", "jane\x1b@example.com", "a control character (U+001B)"},
		{"DEL", "jane\x7f@example.com", "a control character (U+007F)"},
		{"C1 control", "jane\u0085@example.com", "a control character (U+0085)"},
		{"no-break space", "jane\u00a0doe@example.com", "contains spaces"},
		{"ideographic space", "jane\u3000@example.com", "contains spaces"},
		{"invalid UTF-8", "jane\xff@example.com", "not valid UTF-8"},
		{"Cyrillic a in a Latin domain", "jane@p\u0430ypal.com", "mixes Cyrillic and Latin letters"},
		{"the same as an A-label", "jane@xn--pypal-4ve.com", "mixes Cyrillic and Latin letters"},
		{"Greek omicron in a Latin domain", "jane@g\u03bfogle.com", "mixes Greek and Latin letters"},
		{"Cyrillic a before the @", "j\u0430ne@example.com", "mixes Cyrillic and Latin letters"},
		{"symbol before the @", "\u2605@example.com", "characters an address cannot have"},
		{"private use character", "jane\ue000@example.com", "characters an address cannot have"},
		{"unassigned character", "jane\u0378@example.com", "characters an address cannot have"},
		{"symbol in the domain", "jane@\u2603.com", "is not a valid host name"},
		{"broken A-label", "jane@xn--abc-.com", "is not a valid host name"},
		{"IPv4 address", "x@127.0.0.1", "is an IP address"},
		{"IPv4 address in brackets", "x@[127.0.0.1]", "quoted or bracketed"},
		{"IPv6 address in brackets", "x@[IPv6:::1]", "quoted or bracketed"},
		{"IPv6 address", "x@::1", "is an IP address"},
		{"short IPv4 form", "x@127.1", "ends in a number"},
		{"octal IPv4 form", "x@0177.0.0.01", "ends in a number"},
		{"hexadecimal IPv4 form", "x@0x7f.0x0.0x0.0x1", "ends in a number"},
		{"numeric top-level label", "x@example.123", "ends in a number"},
		{"full-width IPv4 address", "x@１２７.０.０.１", "ends in a number"},
		{"local part over 64 once mapped", strings.Repeat("ａ", 22) + "@example.com", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if c.reason == "" { // 66 bytes as typed, 22 once mapped: fine
				if _, err := domain.NormalizeEmail(c.in); err != nil {
					t.Fatalf("NormalizeEmail(%q): %v, want it accepted", c.in, err)
				}
				return
			}
			wantInvalidEmail(t, c.in, c.reason)
		})
	}
}

// TestNamesRefuseHiddenCharacters: names (workspace, owner, invitee) are
// NFC and hold no control, invisible or text-direction characters.
func TestNamesRefuseHiddenCharacters(t *testing.T) {
	t.Parallel()
	email, _ := domain.NormalizeEmail("owner@example.com")
	create := func(name string) (string, error) {
		w := domain.NewWorkspace(wsID)
		if err := w.Create(name, owner.id, email, "Ada", t0); err != nil {
			return "", err
		}
		return w.Pending()[0].(domain.WorkspaceCreated).Name, nil
	}
	for _, c := range []struct{ in, want string }{
		{"Acme", "Acme"},
		{"  Acme  ", "Acme"},
		{"Zoe\u0308 Ltd", "Zoë Ltd"},       // decomposed: composed (NFC)
		{"Acme\u00a0Corp", "Acme Corp"},    // a no-break space is a space
		{"Ａｃｍｅ", "Ａｃｍｅ"},                   // NFC, not NFKC: full width stays
		{"می\u200cخواهم", "می\u200cخواهم"}, // Persian needs its zero-width non-joiner
		{"क्\u200dष", "क्\u200dष"},         // a joiner after a virama
		{"Ольга Иванова & Co.", "Ольга Иванова & Co."},
		{"Acme ✓", "Acme ✓"},
	} {
		got, err := create(c.in)
		if err != nil || got != c.want {
			t.Errorf("name %q: got %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	for _, c := range []struct{ name, in, reason string }{
		{"right-to-left override", "Acme\u202eevil", "a text-direction control character (U+202E)"},
		{"left-to-right isolate", "\u2066Acme", "a text-direction control character (U+2066)"},
		{"zero-width space", "Ac\u200bme", "an invisible character (U+200B)"},
		{"byte order mark", "Acme\ufeff", "an invisible character (U+FEFF)"},
		{"soft hyphen", "Ac\u00adme", "an invisible character (U+00AD)"},
		{"Hangul filler alone", "\u3164", "an invisible character (U+3164)"},
		{"joiner out of place", "Ac\u200dme", "a character a name cannot have"},
		{"non-joiner out of place", "Ac\u200cme", "a character a name cannot have"},
		{"C1 control", "Ac\u0085me", "a control character (U+0085)"},
		{"line separator", "Acme\u2028Corp", "a character a name cannot have"},
		{"private use", "Acme\ue000", "a character a name cannot have"},
		{"unassigned", "Acme\u0378", "a character a name cannot have"},
		{"invalid UTF-8", "Acme\xff", "not valid UTF-8"},
		{"only spaces of other kinds", "\u00a0\u3000", "is empty"},
		{"201 characters once composed", strings.Repeat("e\u0301", 201), "longer than 200 characters"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := create(c.in)
			wantRefusal(t, fmt.Sprintf("name %q", c.in), err, domain.CodeInvalidName, c.reason)
		})
	}
	// 200 characters once composed are fine, though 400 runes as typed.
	if got, err := create(strings.Repeat("e\u0301", 200)); err != nil || got != strings.Repeat("é", 200) {
		t.Errorf("200 decomposed é: got %q, %v; want 200 composed é", got, err)
	}
}
