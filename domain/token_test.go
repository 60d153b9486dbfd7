package domain_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/usersd/usersd/domain"
)

func TestInvitationTokenRoundTrip(t *testing.T) {
	t.Parallel()
	want := tok(7)
	s := want.String()
	if strings.ContainsAny(s, "+/=") {
		t.Errorf("token %q: got a character outside the URL-safe unpadded alphabet", s)
	}
	got, err := domain.ParseInvitationToken(s)
	if err != nil {
		t.Fatalf("ParseInvitationToken(String()): got error %v, want the token back", err)
	}
	if got.WorkspaceID != want.WorkspaceID || got.InvitationID != want.InvitationID || !bytes.Equal(got.Secret, want.Secret) {
		t.Fatalf("ParseInvitationToken(String()): got %+v, want %+v", got, want)
	}
	if got.String() != s {
		t.Fatalf("String() after parsing: got %q, want %q", got.String(), s)
	}
}

// TestInvitationTokenHashIsStable pins the stored form of a link: old
// events carry it (TokenHash), so a link must keep matching its hash. The
// digest is sha256("usersd invitation v1\x00" + workspace id + invitation id
// + address + "\x00" + secret), worked out apart from the domain's code.
func TestInvitationTokenHashIsStable(t *testing.T) {
	t.Parallel()
	link := domain.InvitationToken{
		WorkspaceID:  uuid.MustParse("0a000000-0000-4000-8000-000000000001"),
		InvitationID: uuid.MustParse("0c000000-0000-4000-8000-000000000007"),
		Secret:       bytes.Repeat([]byte{7}, 32),
	}
	const want = "352c60b4811f84f7efa8bfde7a4c599bb56ea804fc0751c0e1627ff95850906e"
	if got := link.Hash("nora@example.com"); got != want {
		t.Fatalf("hash of the link: got %s, want %s (the stored form must not change)", got, want)
	}
}

func TestSecretSize(t *testing.T) {
	t.Parallel()
	if domain.SecretSize != 32 {
		t.Fatalf("SecretSize: got %d, want 32 bytes", domain.SecretSize)
	}
	if domain.SecretSize*8 < 128 {
		t.Fatalf("SecretSize: got %d bits, want at least 128 (product.md)", domain.SecretSize*8)
	}
	got, err := domain.ParseInvitationToken(tok(1).String())
	if err != nil {
		t.Fatalf("ParseInvitationToken: got error %v, want a token", err)
	}
	if len(got.Secret) != 32 {
		t.Fatalf("parsed secret: got %d bytes, want 32", len(got.Secret))
	}
}

// flip changes the character at i of a token to another of the alphabet.
func flip(s string, i int) string {
	c := byte('A')
	if s[i] == 'A' {
		c = 'B'
	}
	return s[:i] + string(c) + s[i+1:]
}

func TestParseInvitationTokenRefusesMalformed(t *testing.T) {
	t.Parallel()
	good := tok(1).String()
	cases := map[string]string{
		"empty":                  "",
		"one character short":    good[:len(good)-1],
		"one character too many": good + "A",
		"not base64url":          "!" + good[1:],
		"standard base64 slash":  "/" + good[1:],
		"padded":                 good[:len(good)-2] + "==",
		"a uuid":                 uuid.New().String(),
	}
	for name, s := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := domain.ParseInvitationToken(s)
			if code := domain.ErrorCode(err); code != domain.CodeInvalidToken {
				t.Fatalf("ParseInvitationToken(%q): got %+v, error %v (code %q), want code %q", s, got, err, code, domain.CodeInvalidToken)
			}
		})
	}
}

// TestTamperedTokenRefused changes one character in each part of a good
// link: the workspace, the invitation and the secret. Each still parses,
// and none opens the invitation.
func TestTamperedTokenRefused(t *testing.T) {
	t.Parallel()
	good := tok(20).String()
	given := evs(team(), invited(20, nora, domain.RoleEditor))
	cases := []struct {
		name string
		at   int
		want []domain.Code
	}{
		{"workspace part", 3, []domain.Code{domain.CodeInvalidToken}},
		{"invitation part", 25, []domain.Code{domain.CodeInvalidToken}},
		// A wrong secret for a live invitation cannot be told from one a
		// resend replaced; either refusal is acceptable, acceptance is not.
		{"secret part", 60, []domain.Code{domain.CodeInvalidToken, domain.CodeInvitationRevoked}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			bad := flip(good, c.at)
			tk, err := domain.ParseInvitationToken(bad)
			if err != nil {
				t.Fatalf("ParseInvitationToken(tampered): got error %v, want a token that parses", err)
			}
			w := replayed(given)
			_, err = w.Accept(tk, "Nora", t0)
			code := domain.ErrorCode(err)
			ok := false
			for _, want := range c.want {
				ok = ok || code == want
			}
			if !ok {
				t.Fatalf("Accept(tampered %s): got error %v (code %q), want one of %v", c.name, err, code, c.want)
			}
			if len(w.Pending()) != 0 {
				t.Fatalf("Accept(tampered): recorded %d events, want none", len(w.Pending()))
			}
			wantStatus(t, w, nora, domain.RoleEditor, domain.StatusInvited)
			// The untampered link still works.
			if _, err := w.Accept(tok(20), "Nora", t0); err != nil {
				t.Fatalf("Accept(good link) after a tampered one: got error %v, want success", err)
			}
		})
	}
}

func TestTokenOfClosedInvitationWithWrongSecret(t *testing.T) {
	t.Parallel()
	// Only the real link of a closed invitation learns why it is closed; a
	// forged one is just invalid.
	w := replayed(evs(team(), invited(20, nora, domain.RoleEditor), revoked(20, nora, domain.RoleEditor)))
	wantLink(t, w, tok(20), t0, domain.CodeInvitationRevoked)
	wantLink(t, w, tokWith(20, 99), t0, domain.CodeInvalidToken)
}
