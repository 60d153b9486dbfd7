package httpapi_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// TestLookAlikesAndHiddenCharactersAreRefused: addresses and names with
// invisible, text-direction or control characters, addresses mixing
// scripts and IP addresses are refused, 400 naming the field (or, in an
// invitation batch, the address's outcome is invalid with its reason), and
// nothing is written. Spellings of one address are one account.
func TestLookAlikesAndHiddenCharactersAreRefused(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	ws, _, adm := a.adminWorkspace(t, "Look-alikes", "admin@lookalike.test")
	pending := a.pending(t, ws, adm, "pending@lookalike.test", "Editor")

	workspace := func(name, email, ownerName string) string {
		b, _ := json.Marshal(map[string]any{"name": name, "owner": map[string]string{"email": email, "name": ownerName}})
		return string(b)
	}
	accept := func(name string) string {
		b, _ := json.Marshal(map[string]string{"token": pending, "name": name})
		return string(b)
	}
	for _, c := range []struct {
		name, path, token, body, code, field, reason string
	}{
		{"zero-width space in the owner's address", "/v1/workspaces", systemToken, workspace("W", "ow\u200bner@w.test", "O"), "invalid_email", "owner.email", "invisible character (U+200B)"},
		{"right-to-left override in the owner's address", "/v1/workspaces", systemToken, workspace("W", "owner@\u202etset.w", "O"), "invalid_email", "owner.email", "text-direction control character (U+202E)"},
		{"Cyrillic look-alike in the owner's domain", "/v1/workspaces", systemToken, workspace("W", "owner@lookalik\u0435.test", "O"), "invalid_email", "owner.email", "mixes Cyrillic and Latin"},
		{"IP address as the owner's domain", "/v1/workspaces", systemToken, workspace("W", "x@127.0.0.1", "O"), "invalid_email", "owner.email", "IP address"},
		{"numeric owner's domain", "/v1/workspaces", systemToken, workspace("W", "x@10.1", "O"), "invalid_email", "owner.email", "ends in a number"},
		{"right-to-left override in the workspace name", "/v1/workspaces", systemToken, workspace("Acme\u202eevil", "o@w.test", "O"), "invalid_name", "name", "text-direction control character"},
		{"zero-width space in the workspace name", "/v1/workspaces", systemToken, workspace("Ac\u200bme", "o@w.test", "O"), "invalid_name", "name", "invisible character"},
		{"control character in the workspace name", "/v1/workspaces", systemToken, workspace("Acme\u0085Corp", "o@w.test", "O"), "invalid_name", "name", "control character"},
		{"bidi isolate in the owner's name", "/v1/workspaces", systemToken, workspace("W", "o@w.test", "\u2067Olga"), "invalid_name", "owner.name", "text-direction control character"},
		{"byte order mark in the owner's name", "/v1/workspaces", systemToken, workspace("W", "o@w.test", "Ol\ufeffga"), "invalid_name", "owner.name", "invisible character"},
		{"right-to-left override in the invitee's name", "/v1/invitations/accept", "", accept("Nora\u202eadmin"), "invalid_name", "name", "text-direction control character"},
		{"zero-width joiner out of place in the invitee's name", "/v1/invitations/accept", "", accept("No\u200dra"), "invalid_name", "name", "cannot have"},
		{"escape in the invitee's name", "/v1/invitations/accept", "", accept("Nora\x1b[2J"), "invalid_name", "name", "control character"},
		{"invitee's name of 201 characters once composed", "/v1/invitations/accept", "", accept(strings.Repeat("e\u0301", 201)), "invalid_name", "name", "longer than 200"},
	} {
		before := a.eventCount(t)
		r := a.do(t, req{method: "POST", path: c.path, token: c.token, body: []byte(c.body), contentType: "application/json"})
		if r.status != 400 || r.code() != c.code {
			t.Errorf("%s: got %d %s, want 400 %s", c.name, r.status, truncate(r.body), c.code)
		}
		if !bytes.Contains(r.body, []byte(`"field":"`+c.field+`"`)) || !bytes.Contains(r.body, []byte(c.reason)) {
			t.Errorf("%s: the problem does not name %s or say %q: %s", c.name, c.field, c.reason, truncate(r.body))
		}
		if after := a.eventCount(t); after != before {
			t.Errorf("%s: %d events were written", c.name, after-before)
		}
	}

	// In a batch each such address is invalid, with its reason.
	before := a.eventCount(t)
	bad := []string{"ja\u200bne@lookalike.test", "jane@\u202etset.ekilakool", "j\u0430ne@lookalike.test", "jane@p\u0430ypal.com", "x@127.0.0.1", "x@[10.0.0.1]", "x@0x7f.0x1"}
	results, _ := a.invite(t, ws, adm, bad, "Editor")
	if len(results) != len(bad) {
		t.Fatalf("got %d results, want %d", len(results), len(bad))
	}
	for i, r := range results {
		if r.Outcome != "invalid" || r.Detail == "" || r.UserID != nil {
			t.Errorf("%q: got %+v, want invalid with a reason", bad[i], r)
		}
	}
	if after := a.eventCount(t); after != before {
		t.Errorf("the batch of invalid addresses wrote %d events", after-before)
	}

	// Every spelling of one address is one person.
	first, _ := a.invite(t, ws, adm, "jane@xn--mnchen-3ya.de", "Editor")
	again, _ := a.invite(t, ws, adm, []string{"Jane@MÜNCHEN.de", "jane@mu\u0308nchen.de", "ｊａｎｅ@münchen.de"}, "Editor")
	if first[0].Outcome != "invited" || first[0].Email != "jane@münchen.de" || first[0].UserID == nil {
		t.Fatalf("first spelling: got %+v, want jane@münchen.de invited", first[0])
	}
	if len(again) != 1 || again[0].Outcome != "already_invited" || *again[0].UserID != *first[0].UserID {
		t.Errorf("other spellings: got %+v, want one already_invited %s", again, *first[0].UserID)
	}
}
