package httpapi_test

import (
	"encoding/base64"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

// rawToken signs a header and a payload written by hand, so that a test
// can give a name twice or in another letter case.
func rawToken(header, payload string) string {
	enc := base64.RawURLEncoding
	signing := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(payload))
	sig, err := jwt.SigningMethodHS256.Sign(signing, testSecret)
	if err != nil {
		panic(err)
	}
	return signing + "." + enc.EncodeToString(sig)
}

// TestTokenClaimNamesAreStrict: claim names are case-sensitive and given
// once (RFC 7519), as in request bodies; encoding/json, under jwt, would
// read "EXP" as exp, "Scope" as scope and the last of two equal names.
func TestTokenClaimNamesAreStrict(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	sub := `"sub":"` + uuid.NewString() + `"`
	exp := strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)
	past := strconv.FormatInt(time.Now().Add(-time.Hour).Unix(), 10)
	hdr := `{"alg":"HS256","typ":"JWT"}`
	for _, c := range []struct {
		name, header, payload string
		want                  int
	}{
		{"plain", hdr, `{` + sub + `,"exp":` + exp + `}`, 200},
		{"another claim, nested names twice", hdr, `{` + sub + `,"exp":` + exp + `,"x":{"a":1,"a":2}}`, 200},
		{"EXP for exp", hdr, `{` + sub + `,"EXP":` + exp + `}`, 401},
		{"an expired exp, then EXP", hdr, `{` + sub + `,"exp":` + past + `,"EXP":` + exp + `}`, 401},
		{"exp twice, the last in the future", hdr, `{` + sub + `,"exp":` + past + `,"exp":` + exp + `}`, 401},
		{"sub twice", hdr, `{` + sub + `,` + sub + `,"exp":` + exp + `}`, 401},
		{"Scope for scope", hdr, `{` + sub + `,"exp":` + exp + `,"Scope":"system"}`, 401},
		{"Sub for sub", hdr, `{"Sub":"` + uuid.NewString() + `","exp":` + exp + `}`, 401},
		{"alg twice", `{"alg":"none","alg":"HS256"}`, `{` + sub + `,"exp":` + exp + `}`, 401},
	} {
		r := a.do(t, req{method: "GET", path: "/v1/me/workspaces", token: rawToken(c.header, c.payload)})
		if r.status != c.want {
			t.Errorf("%s: got %d %s, want %d", c.name, r.status, truncate(r.body), c.want)
		}
		if r.status == http.StatusUnauthorized && r.code() != "unauthenticated" {
			t.Errorf("%s: 401 with code %q", c.name, r.code())
		}
	}
}
