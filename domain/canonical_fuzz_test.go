package domain_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/usersd/usersd/domain"
)

// FuzzEmailCanonicalFormIsStable: whatever is typed, an accepted address's
// canonical form is valid UTF-8 in NFC, within the lengths, and canonical
// again as it is (so one person maps to one account however often the form
// is normalised), and its SMTP form can be computed.
func FuzzEmailCanonicalFormIsStable(f *testing.F) {
	for _, seed := range []string{
		"jane@example.com", "Jane@XN--MNCHEN-3YA.DE", "jo\u0308rg@mu\u0308nchen.de", "ｊａｎｅ@ｅｘａｍｐｌｅ.ｃｏｍ",
		"иван@пример.рф", "田中@例え.jp", "hans@straße.de", "jane@example\u3002com", "x@127.0.0.1",
		"ja\u200bne@example.com", "jane@\u202emoc.example", "j\u0430ne@example.com", "ΟΔΥΣΣΕΥΣ@example.gr",
		"a@xn--pypal-4ve.com", "x@0x7f.1", strings.Repeat("ａ", 30) + "@example.com", "İ@example.com",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		e, err := domain.NormalizeEmail(in)
		if err != nil {
			if domain.ErrorCode(err) != domain.CodeInvalidEmail {
				t.Fatalf("NormalizeEmail(%q): error %v, want invalid_email", in, err)
			}
			return
		}
		s := string(e)
		if !utf8.ValidString(s) || !norm.NFC.IsNormalString(s) || len(s) > 254 {
			t.Fatalf("NormalizeEmail(%q) = %q: not valid UTF-8 in NFC within 254 bytes", in, s)
		}
		again, err := domain.NormalizeEmail(s)
		if err != nil || again != e {
			t.Fatalf("NormalizeEmail(%q) = %q, but NormalizeEmail of that = %q, %v", in, s, again, err)
		}
		if a, _ := e.ASCII(); a == "" {
			t.Fatalf("%q.ASCII() is empty", s)
		}
	})
}
