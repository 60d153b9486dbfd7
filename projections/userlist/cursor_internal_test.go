package userlist

import (
	"errors"
	"testing"

	"github.com/google/uuid"

	"github.com/usersd/usersd/domain"
)

// A cursor forged with a correct check is only a place in the order: a
// last login the database cannot hold is refused as a bad cursor (400),
// never sent to the database (500).
func TestForgedLoginCursorIsRefused(t *testing.T) {
	t.Parallel()
	ws := uuid.New()
	f := Filter{Sort: SortLastLogin}
	vf, err := validate(ws, f)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"9223372036854775807", "-9223372036854775808", "1e9", "", "Never"} {
		f.Cursor = encodeCursor(ws, vf, cursor{sortKey: key, userID: uuid.New()})
		_, err := validate(ws, f)
		var de *domain.Error
		if !errors.As(err, &de) || de.Field != "cursor" {
			t.Errorf("key %q: got %v, want invalid_input about cursor", key, err)
		}
	}
	for _, key := range []string{"never", "0", "1893456000000000"} {
		f.Cursor = encodeCursor(ws, vf, cursor{sortKey: key, userID: uuid.New()})
		if _, err := validate(ws, f); err != nil {
			t.Errorf("key %q: %v", key, err)
		}
	}
}
