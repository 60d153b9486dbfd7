package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"strings"

	"github.com/usersd/usersd/domain"
)

// MaxBodyBytes caps a request body: 1 MiB.
const MaxBodyBytes = 1 << 20

// readBody checks the content type and reads the body, at most
// MaxBodyBytes. An empty body is nil, with any content type.
func readBody(r *http.Request) ([]byte, *Problem) {
	if r.ContentLength > MaxBodyBytes {
		return nil, newProblem(codeBodyTooLarge, fmt.Sprintf("the request body is larger than %d bytes", MaxBodyBytes))
	}
	if r.Body == nil || r.ContentLength == 0 {
		return nil, nil
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, MaxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, newProblem(codeBodyTooLarge, fmt.Sprintf("the request body is larger than %d bytes", MaxBodyBytes))
		}
		var netErr net.Error
		if errors.As(err, &netErr) && netErr.Timeout() {
			return nil, newProblem(codeRequestTimeout, "the request body did not arrive in time")
		}
		return nil, newProblem(codeInvalidJSON, "the request body could not be read")
	}
	if len(body) == 0 {
		return nil, nil
	}
	if p := checkContentType(r.Header.Get("Content-Type")); p != nil {
		return nil, p
	}
	return body, nil
}

// checkContentType accepts application/json and any +json type, with
// parameters (a charset other than UTF-8 is refused).
func checkContentType(ct string) *Problem {
	if ct == "" {
		return newProblem(codeUnsupportedMediaType, "send the body as application/json")
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || !(mt == "application/json" || strings.HasSuffix(mt, "+json")) {
		return newProblem(codeUnsupportedMediaType, "send the body as application/json")
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return newProblem(codeUnsupportedMediaType, "send the body in UTF-8")
	}
	return nil
}

// decodeJSON decodes one JSON object into dst, strictly: unknown fields,
// values of the wrong type, anything after the object and anything but an
// object are invalid_json. The problem names the field where it can.
func decodeJSON(body []byte, dst any) *Problem {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return newProblem(codeInvalidJSON, "the request body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return jsonProblem(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return newProblem(codeInvalidJSON, "the request body holds more than one JSON value")
	}
	return nil
}

func jsonProblem(err error) *Problem {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return newProblem(codeInvalidJSON, fmt.Sprintf("the request body is not valid JSON (at byte %d)", syntax.Offset))
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		return newProblem(codeInvalidJSON, "the request body is cut short")
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "(body)"
		}
		return newProblem(codeInvalidJSON, fmt.Sprintf("%s: want a JSON %s", field, jsonKind(typ))).
			withField(field, "want a JSON "+jsonKind(typ))
	}
	if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		f = strings.Trim(f, `"`)
		return newProblem(codeInvalidJSON, fmt.Sprintf("unknown field %q", f)).withField(f, "unknown field")
	}
	var fe *fieldError
	if errors.As(err, &fe) {
		return newProblem(codeInvalidJSON, fe.field+": "+fe.msg).withField(fe.field, fe.msg)
	}
	return newProblem(codeInvalidJSON, "the request body is not valid JSON")
}

func jsonKind(e *json.UnmarshalTypeError) string {
	switch e.Type.Kind().String() {
	case "string":
		return "string"
	case "bool":
		return "boolean"
	case "int", "int64", "float64":
		return "number"
	case "slice":
		return "array"
	}
	return "value of another type"
}

// fieldError is what a custom UnmarshalJSON reports about its field.
type fieldError struct{ field, msg string }

func (e *fieldError) Error() string { return e.field + ": " + e.msg }

// emailList is "emails": one string (a list as typed) or an array of them.
type emailList []string

func (l *emailList) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		*l = nil
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return &fieldError{"emails", "want a string or an array of strings"}
		}
		*l = emailList{s}
		return nil
	}
	var ss []string
	if err := json.Unmarshal(b, &ss); err != nil {
		return &fieldError{"emails", "want a string or an array of strings"}
	}
	*l = ss
	return nil
}

// Request bodies. Fields are pointers where absence must be told apart
// from an empty value.

type createWorkspaceRequest struct {
	Name  string `json:"name"`
	Owner *struct {
		Email string `json:"email"`
		Name  string `json:"name"`
	} `json:"owner"`
}

type inviteRequest struct {
	Emails emailList `json:"emails"`
	Role   *string   `json:"role"`
}

type changeRoleRequest struct {
	Role *string `json:"role"`
}

type tokenRequest struct {
	Token *string `json:"token"`
}

type acceptRequest struct {
	Token *string `json:"token"`
	Name  string  `json:"name"`
}

type loginRequest struct {
	UserID *string `json:"userId"`
}

type settingsRequest struct {
	ManagersMayGrantAdmin *bool `json:"managersMayGrantAdmin"`
}

type emptyRequest struct{}

// missing is the problem of a required field left out.
func missing(field string) *Problem {
	return newProblem(domain.CodeInvalidInput, field+" is required").withField(field, "required")
}
