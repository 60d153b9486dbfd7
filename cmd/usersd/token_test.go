package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/usersd/usersd/adapters/eventstore/eventstoretest"
	pgstore "github.com/usersd/usersd/adapters/eventstore/postgres"
	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/commands"
)

// parseToken checks tok's signature with the test secret and answers its
// claims.
func parseToken(t *testing.T, tok string) jwt.MapClaims {
	t.Helper()
	claims := jwt.MapClaims{}
	_, err := jwt.NewParser(jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired()).
		ParseWithClaims(strings.TrimSpace(tok), claims, func(*jwt.Token) (any, error) { return []byte(testJWTSecret), nil })
	if err != nil {
		t.Fatalf("token %q does not verify with USERSD_JWT_SECRET: %v", tok, err)
	}
	return claims
}

func TestTokenMintsWhatTheAPIAccepts(t *testing.T) {
	t.Parallel()
	user := uuid.NewString()
	base := map[string]string{"DATABASE_URL": "postgres://postgres@127.0.0.1:1/x", "USERSD_JWT_SECRET": testJWTSecret}
	with := func(extra map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	tests := []struct {
		name     string
		vars     map[string]string
		args     []string
		want     map[string]any
		wantTTL  time.Duration
		wantLink string
	}{
		{name: "user", vars: base, args: []string{"-sub", user},
			want: map[string]any{"sub": user}, wantTTL: time.Hour},
		{name: "system with issuer and audience", vars: with(map[string]string{"USERSD_JWT_ISSUER": "https://platform.test", "USERSD_JWT_AUDIENCE": "usersd"}),
			args: []string{"-system", "-ttl", "5m"},
			want: map[string]any{"sub": systemSubject.String(), "scope": "system", "iss": "https://platform.test", "aud": "usersd"}, wantTTL: 5 * time.Minute},
		{name: "link on the public URL", vars: with(map[string]string{"USERSD_PUBLIC_URL": "https://users.example.com/"}),
			args: []string{"-sub", user, "-link"}, want: map[string]any{"sub": user}, wantTTL: time.Hour,
			wantLink: "https://users.example.com/#token="},
		{name: "link on the listen port", vars: with(map[string]string{"USERSD_HTTP_ADDR": ":9090"}),
			args: []string{"-sub", user, "-link"}, want: map[string]any{"sub": user}, wantTTL: time.Hour,
			wantLink: "http://localhost:9090/#token="},
		{name: "flag beats the environment", vars: with(map[string]string{"USERSD_PUBLIC_URL": "https://env.example.com"}),
			args: []string{"-sub", user, "-link", "-public-url", "http://127.0.0.1:7000"}, want: map[string]any{"sub": user}, wantTTL: time.Hour,
			wantLink: "http://127.0.0.1:7000/#token="},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := runUsersd(t, tt.vars, append([]string{"token"}, tt.args...)...)
			if got.code != exitOK {
				t.Fatalf("exit %d: %s", got.code, got.stderr)
			}
			tok := strings.TrimSpace(got.stdout)
			if tt.wantLink != "" {
				rest, ok := strings.CutPrefix(tok, tt.wantLink)
				if !ok {
					t.Fatalf("printed %q, want a link starting %q", tok, tt.wantLink)
				}
				tok = rest
			}
			claims := parseToken(t, tok)
			for k, want := range tt.want {
				if claims[k] != want {
					t.Errorf("claim %s = %v, want %v", k, claims[k], want)
				}
			}
			if _, ok := tt.want["scope"]; !ok && claims["scope"] != nil {
				t.Errorf("a user's token carries scope %v", claims["scope"])
			}
			exp, _ := claims.GetExpirationTime()
			if d := time.Until(exp.Time); d > tt.wantTTL || d < tt.wantTTL-time.Minute {
				t.Errorf("token expires in %v, want about %v", d, tt.wantTTL)
			}
		})
	}
}

func TestTokenRefusesBadInput(t *testing.T) {
	t.Parallel()
	ok := map[string]string{"DATABASE_URL": "postgres://postgres@127.0.0.1:1/x", "USERSD_JWT_SECRET": testJWTSecret}
	tests := []struct {
		name string
		vars map[string]string
		args []string
		want string
	}{
		{"nobody", ok, nil, "-sub USER_ID, -system or -demo-admin"},
		{"not a UUID", ok, []string{"-sub", "alice"}, `-sub "alice"`},
		{"nil UUID", ok, []string{"-sub", uuid.Nil.String()}, "-sub"},
		{"zero TTL", ok, []string{"-system", "-ttl", "0s"}, "-ttl"},
		{"demo admin and sub", ok, []string{"-demo-admin", "-sub", uuid.NewString()}, "-demo-admin"},
		{"no secret", map[string]string{"DATABASE_URL": "postgres://postgres@127.0.0.1:1/x"}, []string{"-system"}, "USERSD_JWT_SECRET is not set"},
		{"short secret", map[string]string{"DATABASE_URL": "postgres://postgres@127.0.0.1:1/x", "USERSD_JWT_SECRET": "short"}, []string{"-system"}, "USERSD_JWT_SECRET is 5 bytes"},
		{"bad issuer", map[string]string{"DATABASE_URL": "postgres://postgres@127.0.0.1:1/x", "USERSD_JWT_SECRET": testJWTSecret, "USERSD_JWT_ISSUER": "a\nb"}, []string{"-system"}, "USERSD_JWT_ISSUER"},
		{"bad public URL", map[string]string{"DATABASE_URL": "postgres://postgres@127.0.0.1:1/x", "USERSD_JWT_SECRET": testJWTSecret, "USERSD_PUBLIC_URL": "users.example.com"}, []string{"-system"}, "USERSD_PUBLIC_URL"},
		{"extra argument", ok, []string{"-system", "now"}, `"now"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := runUsersd(t, tt.vars, append([]string{"token"}, tt.args...)...)
			if got.code != exitUsage || !strings.Contains(got.stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", got.code, got.stderr, exitUsage, tt.want)
			}
			if got.stdout != "" {
				t.Errorf("printed %q on a refusal", got.stdout)
			}
		})
	}
}

func TestTokenForTheDemoAdmin(t *testing.T) {
	t.Parallel()
	pool, dbURL := pgtest.New(t)
	vars := map[string]string{"DATABASE_URL": dbURL, "USERSD_JWT_SECRET": testJWTSecret, envKeyEncryptionKey: testKEK}

	got := runUsersd(t, vars, "token", "-demo-admin")
	if got.code != exitFailure || !strings.Contains(got.stderr, "no demo workspace") {
		t.Errorf("before serve made it: exit %d, stderr %q; want %d and no demo workspace", got.code, got.stderr, exitFailure)
	}

	store := pgstore.New(pool)
	defer store.Close()
	codec := testCodec(t, pool)
	deps := eventstoretest.Deps(store, codec, linkSecrets(commands.DeriveTokenKey([]byte(testJWTSecret))))
	app := commands.NewApplication(deps, commands.DefaultInvitationPolicy(), commands.Instrumentation{})
	demo, err := ensureDemo(context.Background(), &env{Log: discardLogger()}, deps.Workspaces, app.Commands.CreateWorkspace)
	if err != nil {
		t.Fatal(err)
	}
	got = runUsersd(t, vars, "token", "-demo-admin", "-link")
	if got.code != exitOK {
		t.Fatalf("exit %d: %s", got.code, got.stderr)
	}
	tok, ok := strings.CutPrefix(strings.TrimSpace(got.stdout), "http://localhost:8080/#token=")
	if !ok {
		t.Fatalf("printed %q, want the UI link", got.stdout)
	}
	if sub := parseToken(t, tok)["sub"]; sub != demo.userID.String() {
		t.Errorf("sub %v, want the demo Admin %s", sub, demo.userID)
	}
}
