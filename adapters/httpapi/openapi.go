package httpapi

import (
	_ "embed"
	"net/http"
)

// openAPIDocument is the OpenAPI 3.1 description of the whole API, our
// extensions to shared/spec/api.md included. The test suite checks every
// request and answer it sees against it, so it cannot drift from the code.
//
//go:embed openapi.yaml
var openAPIDocument []byte

// OpenAPIDocument returns the API's OpenAPI 3.1 document (YAML), as GET
// /openapi.yaml serves it.
func OpenAPIDocument() []byte { return append([]byte(nil), openAPIDocument...) }

// GET /openapi.yaml (public): clients and tools generate code from it.
func (s *Server) openAPI(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "application/yaml")
	// Revalidate: a new binary may serve a new document at the same URL.
	h.Set("Cache-Control", "no-cache")
	_, _ = w.Write(openAPIDocument)
}
