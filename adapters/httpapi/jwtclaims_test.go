package httpapi_test

import (
	"encoding/base64"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/usersd/usersd/adapters/httpapi"
)

// signed mints a token with the given claims besides sub and exp.
func signed(sub uuid.UUID, extra jwt.MapClaims) string {
	c := jwt.MapClaims{"sub": sub.String(), "exp": time.Now().Add(time.Hour).Unix()}
	for k, v := range extra {
		c[k] = v
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(testSecret)
	if err != nil {
		panic(err)
	}
	return s
}

func TestJWTIssuerAndAudience(t *testing.T) {
	t.Parallel()
	id := uuid.New()
	cases := []struct {
		name   string
		claims jwt.MapClaims
		// want by configuration: none, issuer only, audience only, both
		want [4]int
	}{
		{"no iss, no aud", nil, [4]int{200, 401, 401, 401}},
		{"right iss", jwt.MapClaims{"iss": "https://platform.test"}, [4]int{200, 200, 401, 401}},
		{"wrong iss", jwt.MapClaims{"iss": "https://other.test"}, [4]int{200, 401, 401, 401}},
		{"right aud", jwt.MapClaims{"aud": "usersd"}, [4]int{200, 401, 200, 401}},
		{"right aud among others", jwt.MapClaims{"aud": []string{"billing", "usersd"}}, [4]int{200, 401, 200, 401}},
		{"wrong aud", jwt.MapClaims{"aud": "billing"}, [4]int{200, 401, 401, 401}},
		{"right iss and aud", jwt.MapClaims{"iss": "https://platform.test", "aud": "usersd"}, [4]int{200, 200, 200, 200}},
		{"right iss, wrong aud", jwt.MapClaims{"iss": "https://platform.test", "aud": "billing"}, [4]int{200, 200, 401, 401}},
	}
	configs := []struct {
		name     string
		iss, aud string
	}{{"none", "", ""}, {"issuer", "https://platform.test", ""}, {"audience", "", "usersd"}, {"both", "https://platform.test", "usersd"}}
	for i, cfg := range configs {
		t.Run(cfg.name, func(t *testing.T) {
			t.Parallel()
			a := newAPIWith(t, func(c *httpapi.Config) { c.JWTIssuer, c.JWTAudience = cfg.iss, cfg.aud })
			for _, c := range cases {
				r := a.do(t, req{method: "GET", path: "/v1/me/workspaces", token: signed(id, c.claims)})
				if r.status != c.want[i] {
					t.Errorf("%s: got %d %s, want %d", c.name, r.status, r.body, c.want[i])
				}
				if r.status == http.StatusUnauthorized && (r.code() != "unauthenticated" || r.header.Get("WWW-Authenticate") == "") {
					t.Errorf("%s: 401 without the problem or WWW-Authenticate: %s", c.name, r.body)
				}
			}
		})
	}
}

// exp, nbf and iat are NumericDates: JSON numbers of seconds. A token
// issued in the future (beyond the clock leeway) is refused, as one that
// is not valid yet is.
func TestJWTTimeClaims(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	id := uuid.New()
	now := time.Now()
	future := strconv.FormatInt(now.Add(time.Hour).Unix(), 10)
	cases := []struct {
		name   string
		claims jwt.MapClaims
		want   int
	}{
		{"iat now", jwt.MapClaims{"iat": now.Unix()}, 200},
		{"iat an hour ago", jwt.MapClaims{"iat": now.Add(-time.Hour).Unix()}, 200},
		{"iat a few seconds ahead, within the leeway", jwt.MapClaims{"iat": now.Add(5 * time.Second).Unix()}, 200},
		{"iat in the future", jwt.MapClaims{"iat": now.Add(2 * time.Minute).Unix()}, 401},
		{"iat far in the future", jwt.MapClaims{"iat": now.Add(365 * 24 * time.Hour).Unix()}, 401},
		{"exp with a fraction", jwt.MapClaims{"exp": float64(now.Add(time.Hour).Unix()) + 0.5}, 200},
		{"exp as a string", jwt.MapClaims{"exp": future}, 401},
		{"exp as null", jwt.MapClaims{"exp": nil}, 401},
		{"nbf as a string", jwt.MapClaims{"nbf": strconv.FormatInt(now.Add(-time.Hour).Unix(), 10)}, 401},
		{"iat as a string", jwt.MapClaims{"iat": strconv.FormatInt(now.Unix(), 10)}, 401},
		{"nbf in the future", jwt.MapClaims{"nbf": now.Add(time.Hour).Unix()}, 401},
	}
	for _, c := range cases {
		r := a.do(t, req{method: "GET", path: "/v1/me/workspaces", token: signed(id, c.claims)})
		if r.status != c.want {
			t.Errorf("%s: got %d %s, want %d", c.name, r.status, r.body, c.want)
		}
		if r.status == http.StatusUnauthorized && r.code() != "unauthenticated" {
			t.Errorf("%s: 401 with code %q, want unauthenticated", c.name, r.code())
		}
	}
}

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
