package httpapi

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"reflect"
	"strings"
	"unicode/utf8"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

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
// object are invalid_json, and so is whatever a lenient decoder would read
// otherwise than a person does: a name given twice, a name that differs
// from a field's only in case (names are case-sensitive) and bytes that are
// not UTF-8 (never turned into U+FFFD). The problem names the field where
// it can.
func decodeJSON(body []byte, dst any) *Problem {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return newProblem(codeInvalidJSON, "the request body must be a JSON object")
	}
	if !utf8.Valid(body) {
		return newProblem(codeInvalidJSON, "the request body is not valid UTF-8")
	}
	// go-json-experiment/json (what encoding/json/v2 will be) rejects
	// duplicate names and invalid UTF-8 by default and matches names
	// case-sensitively; encoding/json does none of these.
	dec := jsontext.NewDecoder(bytes.NewReader(body))
	if err := json.UnmarshalDecode(dec, dst, json.RejectUnknownMembers(true)); err != nil {
		return jsonProblem(err)
	}
	if _, err := dec.ReadToken(); err != io.EOF {
		return newProblem(codeInvalidJSON, "the request body holds more than one JSON value")
	}
	return nil
}

func jsonProblem(err error) *Problem {
	var fe *fieldError
	if errors.As(err, &fe) {
		return newProblem(codeInvalidJSON, fe.field+": "+fe.msg).withField(fe.field, fe.msg)
	}
	var syntax *jsontext.SyntacticError
	if errors.As(err, &syntax) {
		field := fieldOf(syntax.JSONPointer)
		switch {
		case errors.Is(syntax.Err, jsontext.ErrDuplicateName):
			return newProblem(codeInvalidJSON, fmt.Sprintf("%s: given more than once", field)).withField(field, "given more than once")
		case errors.Is(syntax.Err, io.ErrUnexpectedEOF):
			return newProblem(codeInvalidJSON, "the request body is cut short")
		}
		return newProblem(codeInvalidJSON, fmt.Sprintf("the request body is not valid JSON (at byte %d)", syntax.ByteOffset))
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return newProblem(codeInvalidJSON, "the request body is cut short")
	}
	var sem *json.SemanticError
	if errors.As(err, &sem) {
		field := fieldOf(sem.JSONPointer)
		if errors.Is(sem.Err, json.ErrUnknownName) {
			detail, msg := fmt.Sprintf("unknown field %q", field), "unknown field"
			if known := knownFieldFold(sem.GoType, sem.JSONPointer.LastToken()); known != "" {
				hint := fmt.Sprintf("names are case-sensitive: the field is %q", known)
				detail, msg = detail+" ("+hint+")", msg+"; "+hint
			}
			return newProblem(codeInvalidJSON, detail).withField(field, msg)
		}
		kind := jsonKind(sem.GoType)
		return newProblem(codeInvalidJSON, fmt.Sprintf("%s: want a JSON %s", field, kind)).withField(field, "want a JSON "+kind)
	}
	return newProblem(codeInvalidJSON, "the request body is not valid JSON")
}

// fieldOf turns a JSON pointer ("/owner/email") into the field name that
// problems use ("owner.email"); the body itself is "(body)".
func fieldOf(p jsontext.Pointer) string {
	var parts []string
	for tok := range p.Tokens() {
		parts = append(parts, tok)
	}
	if len(parts) == 0 {
		return "(body)"
	}
	return strings.Join(parts, ".")
}

// knownFieldFold answers the JSON name of a field of struct type t that
// equals name but for case, or "".
func knownFieldFold(t reflect.Type, name string) string {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct {
		return ""
	}
	for f := range t.Fields() {
		tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if tag != "" && tag != name && strings.EqualFold(tag, name) {
			return tag
		}
	}
	return ""
}

func jsonKind(t reflect.Type) string {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil {
		return "value of another type"
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int64, reflect.Float64:
		return "number"
	case reflect.Slice:
		return "array"
	case reflect.Struct, reflect.Map:
		return "object"
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
	Role  *string `json:"role"`
	Until *string `json:"until"`
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

type startReviewRequest struct {
	Name *string `json:"name"`
}

type decideItemRequest struct {
	Decision *string `json:"decision"`
	Role     *string `json:"role"`
	Comment  string  `json:"comment"`
}

type emptyRequest struct{}

// A checked request body names the first required field it lacks, or ""
// when it holds them all; decodeRequest refuses it with missing's problem.
type checked interface{ lacks() string }

// lacking answers name when its field is absent.
func lacking(absent bool, name string) string {
	if absent {
		return name
	}
	return ""
}

func (q *createWorkspaceRequest) lacks() string { return lacking(q.Owner == nil, "owner") }
func (q *inviteRequest) lacks() string          { return lacking(q.Role == nil, "role") }
func (q *changeRoleRequest) lacks() string      { return lacking(q.Role == nil, "role") }
func (q *tokenRequest) lacks() string           { return lacking(q.Token == nil, "token") }
func (q *acceptRequest) lacks() string          { return lacking(q.Token == nil, "token") }
func (q *startReviewRequest) lacks() string     { return lacking(q.Name == nil, "name") }
func (q *decideItemRequest) lacks() string      { return lacking(q.Decision == nil, "decision") }

// Bodies with nothing required say so too.
func (*emptyRequest) lacks() string         { return "" }
func (*loginRequest) lacks() string         { return "" }
func (*replayWebhookRequest) lacks() string { return "" }

func (q *settingsRequest) lacks() string {
	return lacking(q.ManagersMayGrantAdmin == nil, "managersMayGrantAdmin")
}

// decodeRequest reads a JSON body into dst as decodeBody does, then refuses
// it if it lacks a required field. dst must say which it requires, even
// none: a request type that forgot its lacks would not compile here,
// rather than let a nil field through to its handler.
func decodeRequest(r *http.Request, dst checked, required bool) error {
	if err := decodeBody(r, dst, required); err != nil {
		return err
	}
	if field := dst.lacks(); field != "" {
		return missing(field)
	}
	return nil
}

// missing is the problem of a required field left out.
func missing(field string) *Problem {
	return newProblem(domain.CodeInvalidInput, field+" is required").withField(field, "required")
}
