package userlist

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/usersd/usersd/domain"
)

// FuzzListQuery feeds the list's query parameters (status, role, q, limit,
// cursor) to validate, the decoder of GET /users. A refusal is always
// invalid_input; an accepted cursor is exactly the one the list would hand
// out for that place, workspace and filter, and only for them; and every
// cursor the list hands out is accepted again.
func FuzzListQuery(f *testing.F) {
	ws := uuid.MustParse("0190a8f4-0000-7000-8000-0000000000aa")
	other := uuid.MustParse("0190a8f4-0000-7000-8000-0000000000bb")
	user := uuid.MustParse("0190a8f4-0000-7000-8000-000000000001")
	good := encodeCursor(ws, filter{status: "active"}, cursor{sortKey: "jane doe", userID: user})
	for _, s := range []struct{ status, role, q, cursor string }{
		{"", "", "", ""},
		{"active", "", "", good},
		{"ACTIVE", "", "", good},
		{"active", "", "", good + "A"},
		{"active", "", "", good[:len(good)-1]},
		{"active", "", "", good[:10] + "\n" + good[10:]},
		{"active", "", "", good[:len(good)-1] + "B"},
		{"", "", "", good},
		{"invited", "editor", "jane", ""},
		{"gone", "Owner", "\x00", ""},
		{"", "", strings.Repeat("x", 300), "!!"},
		{"", "", "", strings.Repeat("A", 3000)},
		{"", "", "", "AQ"},
	} {
		f.Add(s.status, s.role, s.q, 0, s.cursor, user[:], "jane doe")
	}
	f.Add("", "", "", 501, "", user[:], "")
	f.Add("", "", "", -1, "", user[:], "\xff")
	f.Add("suspended", "Admin", "é", 500, "", user[:], strings.Repeat("ü", 200))
	f.Fuzz(func(t *testing.T, status, role, q string, limit int, cur string, id []byte, sortKey string) {
		in := Filter{Status: status, Role: role, Q: q, Limit: limit, Cursor: cur}
		out, err := validate(ws, in)
		if err != nil {
			var de *domain.Error
			if !errors.As(err, &de) || de.Code != domain.CodeInvalidInput {
				t.Fatalf("validate(%+v): error %v, want code %s", in, err, domain.CodeInvalidInput)
			}
		} else {
			if out.limit < 1 || out.limit > MaxLimit {
				t.Fatalf("validate(%+v): limit %d", in, out.limit)
			}
			if cur != "" {
				if out.after == nil {
					t.Fatalf("validate(%+v): the cursor was dropped", in)
				}
				if got := encodeCursor(ws, out, *out.after); got != cur {
					t.Fatalf("validate accepted the cursor %q, which the list writes as %q: a cursor must have one spelling", cur, got)
				}
				if _, err := decodeCursor(cur, other, out); err == nil {
					t.Fatalf("the cursor %q of one workspace was accepted for another", cur)
				}
			}
			canon := Filter{Status: out.status, Role: out.role, Q: out.q, Limit: out.limit, Cursor: cur}
			again, err := validate(ws, canon)
			if err != nil || again.status != out.status || again.role != out.role || again.q != out.q || again.limit != out.limit ||
				(again.after == nil) != (out.after == nil) || (out.after != nil && *again.after != *out.after) {
				t.Fatalf("validate(%+v) = %+v, but validating that again gives %+v, %v", in, out, again, err)
			}
		}

		// A cursor the list hands out (its sort key is a lower-cased name
		// of at most 200 characters or an address) is always accepted.
		if err != nil || len(id) != 16 || !utf8.ValidString(sortKey) || strings.IndexByte(sortKey, 0) >= 0 || len(sortKey) > 4*200 {
			return
		}
		c := cursor{sortKey: sortKey, userID: uuid.UUID(id)}
		out.after = nil
		s := encodeCursor(ws, out, c)
		back, err := validate(ws, Filter{Status: out.status, Role: out.role, Q: out.q, Limit: out.limit, Cursor: s})
		if err != nil || back.after == nil || *back.after != c {
			t.Fatalf("the cursor %q for %+v does not decode back: %+v, %v", s, c, back.after, err)
		}
	})
}
