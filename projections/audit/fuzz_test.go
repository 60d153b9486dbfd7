package audit

import (
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/domain"
)

// FuzzAuditCursor: a cursor of the audit list that parses is exactly the
// one the list hands out for that place (one spelling), and every cursor
// the list hands out parses back to its place.
func FuzzAuditCursor(f *testing.F) {
	for _, s := range []string{
		formatCursor(1), formatCursor(42), formatCursor(1 << 62), "",
		enc("audit.v1.before:+42"), enc("audit.v1.before:042"), enc("audit.v1.before:0"), enc("audit.v1.before:-1"),
		enc("audit.v1.before:9223372036854775808"), enc("audit.v2.before:1"), enc("audit.v1.before: 1"),
		formatCursor(42) + "=", formatCursor(42)[:5] + "\n" + formatCursor(42)[5:], "!!!!",
		base64.URLEncoding.EncodeToString([]byte("audit.v1.before:42")),
	} {
		f.Add(s, int64(7))
	}
	f.Fuzz(func(t *testing.T, c string, seq int64) {
		if got, err := parseCursor(c); err == nil {
			if got < 1 {
				t.Fatalf("parseCursor(%q) = %d: a sequence number starts at 1", c, got)
			}
			if back := formatCursor(got); back != c {
				t.Fatalf("parseCursor(%q) = %d, which the list writes as %q: a cursor must have one spelling", c, got, back)
			}
		} else {
			var de *domain.Error
			if !errors.As(err, &de) || de.Code != domain.CodeInvalidInput {
				t.Fatalf("parseCursor(%q): error %v, want code %s", c, err, domain.CodeInvalidInput)
			}
		}
		if seq < 1 {
			return
		}
		if got, err := parseCursor(formatCursor(seq)); err != nil || got != seq {
			t.Fatalf("parseCursor(formatCursor(%d)) = %d, %v", seq, got, err)
		}
	})
}

func enc(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// FuzzAuditFilter: the filter's checks before any SQL. A refusal is
// invalid_input; an accepted action is an event type name (it reaches the
// SQL as a literal, for the partial index), and the limit is in range.
func FuzzAuditFilter(f *testing.F) {
	for _, a := range []string{"", "RoleChanged", "roleChanged", "RoleChanged'--", "UserInvited\x00", "UserLoggedIn", `\`} {
		f.Add(a, 0, int64(0), int64(0))
	}
	f.Add("", -1, int64(1), int64(1))
	f.Add("", 501, int64(2), int64(1))
	ws := uuid.MustParse("0190a8f4-0000-7000-8000-0000000000aa")
	names := domain.EventTypeNames()
	f.Fuzz(func(t *testing.T, action string, limit int, from, to int64) {
		fl := Filter{Action: action, Limit: limit}
		if from != 0 {
			fl.From = time.Unix(from, 0)
		}
		if to != 0 {
			fl.To = time.Unix(to, 0)
		}
		where, args, err := fl.where(ws)
		if err == nil {
			if action != "" && !slices.Contains(names, action) {
				t.Fatalf("action %q accepted: it is no event type, and reaches the SQL as %s", action, where)
			}
			if strings.Count(where, "'")%2 != 0 || strings.Contains(where, `\`) {
				t.Fatalf("action %q: the SQL %s", action, where)
			}
			if strings.Count(where, "$") != len(args) {
				t.Fatalf("the SQL %s has %d arguments", where, len(args))
			}
		}
		n, lerr := fl.limit()
		if lerr == nil && (n < 1 || n > MaxLimit) {
			t.Fatalf("limit %d gives %d", limit, n)
		}
		for _, e := range []error{err, lerr} {
			var de *domain.Error
			if e != nil && (!errors.As(e, &de) || de.Code != domain.CodeInvalidInput) {
				t.Fatalf("error %v, want code %s", e, domain.CodeInvalidInput)
			}
		}
	})
}
