package audit

import (
	"encoding/base64"
	"errors"
	"testing"

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
