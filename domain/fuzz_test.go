package domain_test

import (
	"bytes"
	"math"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/usersd/usersd/domain"
)

// The fuzz targets of the domain's decoders of outside input: positions
// (X-Consistent-With, cursors to come), invitation tokens, addresses and
// address lists. `make fuzz` runs each for a while; `go test` runs the
// seeds. Each checks what an accepted input must be, not only that
// nothing panics.

// FuzzParsePosition: a position that parses is in its one canonical
// spelling (it prints back as given), and every position round-trips.
func FuzzParsePosition(f *testing.F) {
	for _, s := range []string{
		"0-0", "12-34", "5-0", "18446744073709551615-18446744073709551615", "18446744073709551616-0",
		"", "-", "1-", "-1", "01-2", "1-02", "00-0", "+1-2", "1-+2", " 1-2", "1-2\n", "1-2-3", "1.0-2",
		"0x1-2", "1_0-2", "١-٢", "1\x00-2",
	} {
		f.Add(s, uint64(0), uint64(0))
	}
	f.Add("", uint64(math.MaxUint64), uint64(7))
	f.Fuzz(func(t *testing.T, s string, commit, prepare uint64) {
		if p, err := domain.ParsePosition(s); err == nil {
			if got := p.String(); got != s {
				t.Fatalf("ParsePosition(%q) = %+v, which prints as %q: an accepted position must be in its canonical form", s, p, got)
			}
		} else if p != (domain.Position{}) {
			t.Fatalf("ParsePosition(%q): got %+v with the error %v, want the zero position", s, p, err)
		}
		want := domain.Position{Commit: commit, Prepare: prepare}
		got, err := domain.ParsePosition(want.String())
		if err != nil || got != want {
			t.Fatalf("ParsePosition(%q): got %+v, %v; want %+v back", want.String(), got, err, want)
		}
		other := domain.Position{Commit: prepare, Prepare: commit}
		if c := want.Compare(other); c != -other.Compare(want) || (c == 0) != (want == other) {
			t.Fatalf("Compare is not antisymmetric on %v and %v", want, other)
		}
	})
}

// FuzzParseInvitationToken: a token that parses has a full-size secret and
// is in its one spelling; every token round-trips.
func FuzzParseInvitationToken(f *testing.F) {
	good := domain.InvitationToken{WorkspaceID: uuid.MustParse("0190a8f4-0000-7000-8000-000000000001"),
		InvitationID: uuid.MustParse("0190a8f4-0000-7000-8000-000000000002"), Secret: bytes.Repeat([]byte{0xa5}, domain.SecretSize)}
	s := good.String()
	for _, seed := range []string{
		s, "", s[:len(s)-1], s + "A", "!" + s[1:], "/" + s[1:], s[:len(s)-2] + "==",
		s[:40] + "\r\n" + s[40:len(s)-2], // newlines are skipped by the decoder: a short secret
		s[:len(s)-1] + "B",               // non-zero spare bits
		uuid.NewString(), strings.Repeat("A", len(s)),
	} {
		f.Add(seed, good.WorkspaceID[:], good.InvitationID[:], good.Secret)
	}
	f.Fuzz(func(t *testing.T, s string, ws, inv, secret []byte) {
		if tok, err := domain.ParseInvitationToken(s); err == nil {
			if len(tok.Secret) != domain.SecretSize {
				t.Fatalf("ParseInvitationToken(%q): a secret of %d bytes, want %d", s, len(tok.Secret), domain.SecretSize)
			}
			if got := tok.String(); got != s {
				t.Fatalf("ParseInvitationToken(%q) prints as %q: an accepted token must have one spelling", s, got)
			}
		} else if domain.ErrorCode(err) != domain.CodeInvalidToken {
			t.Fatalf("ParseInvitationToken(%q): error %v, want code %s", s, err, domain.CodeInvalidToken)
		}
		if len(ws) != 16 || len(inv) != 16 || len(secret) != domain.SecretSize {
			return
		}
		want := domain.InvitationToken{WorkspaceID: uuid.UUID(ws), InvitationID: uuid.UUID(inv), Secret: secret}
		got, err := domain.ParseInvitationToken(want.String())
		if err != nil || got.WorkspaceID != want.WorkspaceID || got.InvitationID != want.InvitationID || !bytes.Equal(got.Secret, want.Secret) {
			t.Fatalf("ParseInvitationToken(%q): got %+v, %v; want %+v back", want.String(), got, err, want)
		}
	})
}

// addressSeeds are inputs for the address fuzzers: ordinary, odd and
// hostile.
var addressSeeds = []string{
	"jane@example.com", "Jane.Doe@Example.COM", "  jane@example.com\t\n", "o'neil+tag@sub.example.co.uk",
	"Jane Doe <jane@example.com>", `"quoted"@example.com`, "x@[127.0.0.1]", "x@127.0.0.1", "a@b", "@b.test", "a@",
	"a@@b.test", "a@b..test", "a@-b.test", "a b@c.test", "a@b.test, c@d.test; e@f.test\nG@H.test",
	"jörg@müller.de", "JÖRG@MÜLLER.DE", "jo\u0308rg@mu\u0308ller.de", "a\u200b@b.test", "a@b\u200b.test",
	"a\u202e@b.test", "pаypal@b.test", "a@ｅxample.com", "a\u00a0b@c.test", "a@b.test\u2028c@d.test",
	"\xff@b.test", "a@b.\xfe", strings.Repeat("a", 64) + "@b.test", strings.Repeat("a", 65) + "@b.test",
	"a@" + strings.Repeat("b", 63) + ".test", "a@" + strings.Repeat("b.", 130) + "test", "a@b.test\x00",
	"<a@b.test>", "Name <a@b.test>, Other <c@d.test>", "a,@b.test", "a;b@c.test",
}

// FuzzNormalizeEmail: an accepted address is its own normal form (normalising
// is idempotent), lower-case, one bare address with one @, nothing a reader
// cannot see, and one item when it stands alone in a list.
func FuzzNormalizeEmail(f *testing.F) {
	for _, s := range addressSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		e, err := domain.NormalizeEmail(raw)
		if err != nil {
			if domain.ErrorCode(err) != domain.CodeInvalidEmail || e != "" {
				t.Fatalf("NormalizeEmail(%q): got %q, %v; want only an %s error", raw, e, err, domain.CodeInvalidEmail)
			}
			return
		}
		s := string(e)
		again, err := domain.NormalizeEmail(s)
		if err != nil || again != e {
			t.Fatalf("NormalizeEmail(%q) = %q, but normalising that gives %q, %v: the normal form must be a fixed point", raw, s, again, err)
		}
		if !utf8.ValidString(s) {
			t.Fatalf("NormalizeEmail(%q) = %q: not UTF-8", raw, s)
		}
		if strings.ToLower(s) != s {
			t.Fatalf("NormalizeEmail(%q) = %q: not lower-case", raw, s)
		}
		if len(s) > 254 || strings.Count(s, "@") != 1 || strings.HasPrefix(s, "@") || strings.HasSuffix(s, "@") {
			t.Fatalf("NormalizeEmail(%q) = %q: not one address of at most 254 bytes with one @ inside", raw, s)
		}
		if i := strings.IndexFunc(s, invisible); i >= 0 {
			r, _ := utf8.DecodeRuneInString(s[i:])
			t.Fatalf("NormalizeEmail(%q) = %q: holds %U, a space, control, format or direction character", raw, s, r)
		}
		domainPart := s[strings.LastIndexByte(s, '@')+1:]
		if tld := domainPart[strings.LastIndexByte(domainPart, '.')+1:]; strings.Trim(tld, "0123456789") == "" {
			t.Fatalf("NormalizeEmail(%q) = %q: an all-numeric domain (an IP address) was accepted", raw, s)
		}
		if got := domain.SplitAddressList(s); !slices.Equal(got, []string{s}) {
			t.Fatalf("SplitAddressList(%q) = %q: an accepted address must be one item of a list", s, got)
		}
	})
}

// invisible reports characters that must not be in an address: spaces,
// controls, and format characters (zero-width ones, bidi overrides).
func invisible(r rune) bool {
	return unicode.IsSpace(r) || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == utf8.RuneError
}

// FuzzParseBatch: the invite box's list. The batch holds distinct entries
// in the order typed, each valid one the normal form of its input; the
// accepted addresses, listed again, give the same batch.
func FuzzParseBatch(f *testing.F) {
	f.Add(strings.Join(addressSeeds, ", "), "")
	f.Add("a@b.test", "A@B.TEST")
	f.Add(strings.Repeat("x@y.test,", 600), "")
	f.Add("", " ,;\n")
	f.Add("Jane <jane@x.test> jane@x.test", "jane@x.test;bad")
	f.Fuzz(func(t *testing.T, list, more string) {
		entries, err := domain.ParseBatch(list, more)
		if err != nil {
			if c := domain.ErrorCode(err); c != domain.CodeEmptyBatch && c != domain.CodeBatchTooLarge {
				t.Fatalf("ParseBatch(%q, %q): error %v, want %s or %s", list, more, err, domain.CodeEmptyBatch, domain.CodeBatchTooLarge)
			}
			return
		}
		if len(entries) == 0 || len(entries) > domain.MaxBatch {
			t.Fatalf("ParseBatch: %d entries, want 1 to %d", len(entries), domain.MaxBatch)
		}
		seen := map[domain.Email]bool{}
		var valid []string
		for _, e := range entries {
			if e.Input == "" {
				t.Fatalf("ParseBatch(%q, %q): an empty entry", list, more)
			}
			if !e.Valid() {
				if e.Email != "" {
					t.Fatalf("ParseBatch: invalid entry %q with the address %q", e.Input, e.Email)
				}
				continue
			}
			if seen[e.Email] {
				t.Fatalf("ParseBatch(%q, %q): %q twice", list, more, e.Email)
			}
			seen[e.Email] = true
			if n, err := domain.NormalizeEmail(e.Input); err != nil || n != e.Email {
				t.Fatalf("ParseBatch: entry %q holds %q, but NormalizeEmail gives %q, %v", e.Input, e.Email, n, err)
			}
			valid = append(valid, string(e.Email))
		}
		if len(valid) == 0 {
			return
		}
		again, err := domain.ParseBatch(strings.Join(valid, ", "))
		if err != nil {
			t.Fatalf("ParseBatch of the accepted addresses %q: %v", valid, err)
		}
		var got []string
		for _, e := range again {
			got = append(got, string(e.Email))
		}
		if !slices.Equal(got, valid) {
			t.Fatalf("the accepted addresses %q, listed again, give %q", valid, got)
		}
	})
}
