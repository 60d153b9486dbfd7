package httpapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strings"
)

// registeredClaims are the claim names usersd reads. RFC 7519 makes names
// case-sensitive, but jwt decodes claims with encoding/json, which would
// take "EXP" for exp or "Scope" for scope.
var registeredClaims = []string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "scope"}

// claimNamesProblem checks the names in a signed token's header and claims,
// strictly, as the body decoder does: a name given twice (jwt would take the
// last, another reader the first) or a claim name differing only in case
// from one usersd reads refuses the token, so that usersd never reads a
// token otherwise than the platform that signed it meant.
func claimNamesProblem(token string) *Problem {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return newProblem(codeUnauthenticated, "the bearer token is not valid")
	}
	for i, part := range parts[:2] {
		raw, err := base64.RawURLEncoding.DecodeString(part)
		if err != nil {
			return newProblem(codeUnauthenticated, "the bearer token is not valid")
		}
		if detail := namesProblem(raw, i == 1); detail != "" {
			return newProblem(codeUnauthenticated, "the bearer token is not valid: "+detail)
		}
	}
	return nil
}

func namesProblem(raw []byte, claims bool) string {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return "not a JSON object"
	}
	seen := make(map[string]bool)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return "not a JSON object"
		}
		name, _ := tok.(string)
		if seen[name] {
			return "a name is given twice"
		}
		seen[name] = true
		if claims {
			for _, known := range registeredClaims {
				if name != known && strings.EqualFold(name, known) {
					return "claim names are case-sensitive: write " + known
				}
			}
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return "not a JSON object"
		}
	}
	return ""
}
