package projectionstest

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// The WAL window's connection and raw read, for walcost_test.go, which is
// an external test: it needs pgtest, which imports this package.

func (w *WALWindow) Conn() *pgx.Conn { return w.conn }

func (w *WALWindow) Read(ctx context.Context, start, end string) (WALCost, error) {
	return w.read(ctx, start, end)
}
