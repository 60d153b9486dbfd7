package userlist

import (
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Checked is a Filter as List validates it, for read models that page the
// same rows in the same order (projections/history, the list as of a past
// position): the same parameters, refused with the same errors.
type Checked struct {
	Status, Role, Q string
	Limit           int
	// After is the cursor's place (sort key, user id); nil on a first page.
	After *Place
}

// Place is a place in the list's order.
type Place struct {
	SortKey string
	UserID  uuid.UUID
}

// Check validates f's status, role, text and limit as List does; the
// cursor is the caller's, whose pages are not this list's.
func Check(f Filter) (Checked, error) {
	f.Cursor = ""
	v, err := validate(uuid.Nil, f)
	if err != nil {
		return Checked{}, err
	}
	return Checked{Status: v.status, Role: v.role, Q: v.q, Limit: v.limit}, nil
}

// EscapeLike makes s match itself in a LIKE pattern (escape character \).
func EscapeLike(s string) string { return escapeLike(s) }

// ScanPage reads the rows of a page query that selects the columns of the
// list's query, in its order (user_id, name, email, role, status,
// last_login_at, invitation_id, invited_at, invited_by, expires_at, expired,
// attempt, email_status, sort_key, role_until), at most limit+1 of them: the
// first limit, the sort key of the last of those, and whether there are
// more. now decides whether an invitation's time is up. It closes rows.
func ScanPage(rows pgx.Rows, limit int, now time.Time) (Page, string, bool, error) {
	return scanPage(rows, limit, now)
}
