package audit

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
)

// field is one item of an entry's details: a key and a string, integer or
// boolean value.
type field struct {
	key  string
	kind fieldKind
	s    string // kindString; for kindNumber read back, the number's text
	n    int64  // kindInt
	b    bool   // kindBool
}

type fieldKind uint8

const (
	kindString fieldKind = iota
	kindInt
	kindBool
	kindNull
	kindNumber // a JSON number as read back, kept as text
	kindRaw    // any other JSON value read back (never written by Apply)
)

func str(key, v string) field          { return field{key: key, kind: kindString, s: clean(v)} }
func integer(key string, v int) field  { return field{key: key, kind: kindInt, n: int64(v)} }
func bigint(key string, v int64) field { return field{key: key, kind: kindInt, n: v} }
func flag(key string, v bool) field    { return field{key: key, kind: kindBool, b: v} }

// appendDetails appends fields as the canonical JSON object of details:
// keys sorted by byte value, no spaces, strings escaped as appendJSONString
// does, integers in decimal. Apply stores and hashes this text; Verify and
// the readers rebuild it from the jsonb value (canonicalJSON), which keeps
// the values but not the text. fields is sorted in place.
func appendDetails(b []byte, fields []field) []byte {
	slices.SortFunc(fields, func(x, y field) int { return cmp.Compare(x.key, y.key) })
	b = append(b, '{')
	for i, f := range fields {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, f.key)
		b = append(b, ':')
		switch f.kind {
		case kindString:
			b = appendJSONString(b, f.s)
		case kindInt:
			b = strconv.AppendInt(b, f.n, 10)
		case kindBool:
			b = strconv.AppendBool(b, f.b)
		case kindNull:
			b = append(b, "null"...)
		case kindNumber, kindRaw:
			b = append(b, f.s...)
		}
	}
	return append(b, '}')
}

// canonicalJSON rebuilds the canonical text of details read back from
// jsonb. Anything Apply could not have written (not an object, nested
// values) still gets a deterministic form, which then fails verification.
func canonicalJSON(raw []byte) ([]byte, error) {
	fields, err := readFields(raw)
	if err != nil {
		return nil, err
	}
	return appendDetails(make([]byte, 0, len(raw)), fields), nil
}

// readFields reads the fields of a details object.
func readFields(raw []byte) ([]field, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, fmt.Errorf("details %.40q: not a JSON object", raw)
	}
	var fields []field
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("details: %w", err)
		}
		key, _ := t.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("details: %w", err)
		}
		f, err := readField(key, v)
		if err != nil {
			return nil, err
		}
		fields = append(fields, f)
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("details: %w", err)
	}
	return fields, nil
}

func readField(key string, v json.RawMessage) (field, error) {
	switch {
	case len(v) == 0:
		return field{}, errors.New("details: empty value")
	case v[0] == '"':
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return field{}, fmt.Errorf("details %q: %w", key, err)
		}
		return field{key: key, kind: kindString, s: s}, nil
	case string(v) == "true" || string(v) == "false":
		return field{key: key, kind: kindBool, b: v[0] == 't'}, nil
	case string(v) == "null":
		return field{key: key, kind: kindNull}, nil
	case v[0] == '-' || (v[0] >= '0' && v[0] <= '9'):
		return field{key: key, kind: kindNumber, s: string(v)}, nil
	}
	var c bytes.Buffer
	if err := json.Compact(&c, v); err != nil {
		return field{}, fmt.Errorf("details %q: %w", key, err)
	}
	return field{key: key, kind: kindRaw, s: c.String()}, nil
}
