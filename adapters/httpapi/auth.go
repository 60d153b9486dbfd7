package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/usersd/usersd/domain"
)

// MinSecretLength is the shortest HS256 secret the server accepts, in bytes:
// as long as the hash, as RFC 7518 asks.
const MinSecretLength = 32

// clockLeeway absorbs clock skew between the platform and us on exp, nbf
// and iat.
const clockLeeway = 30 * time.Second

// maxTokenLength bounds the Authorization header's token, so that parsing
// a huge header costs nothing.
const maxTokenLength = 8 << 10

// SystemScope is the scope claim of the platform's own tokens.
const SystemScope = "system"

// EventsReadScope is the scope claim of a token that may read the event
// feed and nothing else (api.md, second release).
const EventsReadScope = "events:read"

// principal is who a request acts for.
type principal struct {
	userID uuid.UUID
	system bool
	// eventsOnly marks an events:read token: it acts for no user, and
	// authed refuses it on every route but the event feed (feedReaders).
	eventsOnly bool
	// reader is an events:read token's sub: not a user it acts for, only
	// whom its streams count against (caller).
	reader uuid.UUID
}

// caller names whom the limits per caller count a request against: the
// user (or the platform's sub), or the sub of an events:read token, kept
// apart from the user of the same id.
func (p principal) caller() string {
	if p.eventsOnly {
		return EventsReadScope + " " + p.reader.String()
	}
	return p.userID.String()
}

func (p principal) actor() domain.Actor {
	if p.system {
		return domain.Actor{System: true}
	}
	return domain.Actor{UserID: p.userID}
}

// claims are the claims we read; the registered ones are checked by jwt.
type claims struct {
	jwt.RegisteredClaims
	Scope string `json:"scope,omitempty"`
}

// errTimeClaimNotNumber refuses a token whose exp, nbf or iat is not a JSON
// number: RFC 7519 makes them NumericDates, and jwt would read the string
// "1999999999" as the number.
var errTimeClaimNotNumber = errors.New("exp, nbf and iat must be JSON numbers")

// UnmarshalJSON reads the claims, refusing time claims that are not JSON
// numbers.
func (c *claims) UnmarshalJSON(b []byte) error {
	var times struct {
		Exp, Nbf, Iat json.RawMessage
	}
	if err := json.Unmarshal(b, &times); err != nil {
		return err
	}
	for _, raw := range []json.RawMessage{times.Exp, times.Nbf, times.Iat} {
		if raw == nil {
			continue
		}
		if ch := raw[0]; ch != '-' && (ch < '0' || ch > '9') {
			return errTimeClaimNotNumber
		}
	}
	type plain claims // without this method
	return json.Unmarshal(b, (*plain)(c))
}

// authenticate reads the bearer token. Every failure is the same 401 to the
// client (its detail says what to fix, never echoes the token).
func (s *Server) authenticate(r *http.Request) (principal, *Problem) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return principal{}, newProblem(codeUnauthenticated, "send a bearer token: Authorization: Bearer <JWT>")
	}
	scheme, raw, ok := strings.Cut(h, " ")
	raw = strings.TrimSpace(raw)
	if !ok || !strings.EqualFold(scheme, "Bearer") || raw == "" {
		return principal{}, newProblem(codeUnauthenticated, "the Authorization header must be: Bearer <JWT>")
	}
	if len(raw) > maxTokenLength {
		return principal{}, newProblem(codeUnauthenticated, "the bearer token is too long")
	}
	var c claims
	_, err := s.jwt.ParseWithClaims(raw, &c, func(*jwt.Token) (any, error) { return s.cfg.JWTSecret, nil })
	if err != nil {
		detail := "the bearer token is not valid"
		switch {
		case errors.Is(err, jwt.ErrTokenExpired):
			detail = "the bearer token has expired"
		case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
			detail = "the bearer token was issued in the future (iat): check the clock of who signed it"
		case errors.Is(err, errTimeClaimNotNumber):
			detail = "the bearer token's exp, nbf and iat must be numbers of seconds (NumericDate), not strings"
		case errors.Is(err, jwt.ErrTokenInvalidIssuer):
			detail = "the bearer token was issued by someone else (iss)"
		case errors.Is(err, jwt.ErrTokenInvalidAudience):
			detail = "the bearer token is meant for another audience (aud)"
		}
		return principal{}, newProblem(codeUnauthenticated, detail)
	}
	if p := claimNamesProblem(raw); p != nil {
		return principal{}, p
	}
	id, err := uuid.Parse(c.Subject)
	if err != nil || id == uuid.Nil || len(c.Subject) != 36 {
		return principal{}, newProblem(codeUnauthenticated, "the bearer token's sub must be a user id (a UUID)")
	}
	return scoped(id, c.Scope)
}

// scoped reads the scope claim, a space-separated list (RFC 8693). No scope
// is a user's token; "system" the platform's (which may do all an
// events:read token may); "events:read" alone a reader of the event feed,
// which is no user even though its sub names one. A scope we do not know is
// refused: the token was made for something else, and must not act as the
// user its sub names.
func scoped(sub uuid.UUID, scope string) (principal, *Problem) {
	scopes := strings.Fields(scope)
	for _, sc := range scopes {
		if sc != SystemScope && sc != EventsReadScope {
			return principal{}, newProblem(codeUnauthenticated, "the bearer token's scope is not one usersd knows (none, system or events:read)")
		}
	}
	switch {
	case slices.Contains(scopes, SystemScope):
		return principal{userID: sub, system: true}, nil
	case len(scopes) > 0:
		return principal{eventsOnly: true, reader: sub}, nil
	}
	return principal{userID: sub}, nil
}

// newJWTParser checks the signature method, exp (required), nbf and iat
// (when present: not in the future) with some leeway, and iss and aud when
// cfg names them: a platform that signs tokens for several services with
// one secret can then keep the others' tokens out.
func newJWTParser(cfg Config) *jwt.Parser {
	opts := []jwt.ParserOption{
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(clockLeeway),
		jwt.WithTimeFunc(cfg.Now),
	}
	if cfg.JWTIssuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.JWTIssuer))
	}
	if cfg.JWTAudience != "" {
		opts = append(opts, jwt.WithAudience(cfg.JWTAudience))
	}
	return jwt.NewParser(opts...)
}
