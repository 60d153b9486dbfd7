package projectionstest

import (
	"context"
	"testing"

	"github.com/usersd/usersd/projections"
)

// WantLiveEmpty fails t unless the live table (in public) has no rows: a
// test that applied events with another schema first on the search_path
// checks so that Apply followed the search_path.
func WantLiveEmpty(t testing.TB, db projections.DB, table string) {
	t.Helper()
	var n int
	if err := db.QueryRow(context.Background(), `SELECT count(*) FROM public.`+table).Scan(&n); err != nil || n != 0 {
		t.Errorf("public.%s has %d rows (err %v), want 0: Apply must follow the search_path", table, n, err)
	}
}
