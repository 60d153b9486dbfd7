package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/adapters/eventstore"
)

// resealPage is how many events one transaction of Reseal reads.
const resealPage = 1000

// Reseal rewrites, in place, every event holding a personal value written
// in clear before sealing existed, with codec.Reseal's sealed form (a value
// of an erased person becomes ""). It must run as the events' owner: each
// page is one transaction in the maintenance procedure (usersd.maintenance,
// migration 00008), the one way past the events' append-only guard. It is
// idempotent and can resume after a stop: an event already sealed is left
// alone. progress gets the number of events read and rewritten after each
// page. Afterwards the audit history no longer matches the events: rebuild
// it with -accept-divergence.
func Reseal(ctx context.Context, pool *pgxpool.Pool, codec *eventstore.Codec, progress func(read, rewritten int)) (read, rewritten int, err error) {
	var after int64 = -1
	for {
		var n, changed int
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SET LOCAL usersd.maintenance = on`); err != nil {
				return err
			}
			rows, err := tx.Query(ctx, `SELECT position, event_id, stream_id, revision, type, data, metadata
				FROM events WHERE position > $1 ORDER BY position LIMIT $2`, after, resealPage)
			if err != nil {
				return err
			}
			var raws []eventstore.RecordedEvent
			for rows.Next() {
				var r eventstore.RecordedEvent
				var rev int64
				if err := rows.Scan(&after, &r.ID, &r.StreamID, &rev, &r.Type, &r.Data, &r.Metadata); err != nil {
					rows.Close()
					return err
				}
				r.Revision = uint64(rev)
				raws = append(raws, r)
			}
			if err := rows.Err(); err != nil {
				return err
			}
			n = len(raws)
			sealed, err := codec.Reseal(ctx, raws...)
			if err != nil {
				return err
			}
			for _, d := range sealed {
				tag, err := tx.Exec(ctx, `UPDATE events SET data = $2, metadata = $3 WHERE event_id = $1`, d.ID, d.Data, d.Metadata)
				if err != nil {
					return fmt.Errorf("rewrite event %s: %w", d.ID, err)
				}
				if tag.RowsAffected() != 1 {
					return fmt.Errorf("rewrite event %s: %d rows", d.ID, tag.RowsAffected())
				}
			}
			changed = len(sealed)
			return nil
		})
		if err != nil {
			return read, rewritten, fmt.Errorf("seal the events after position %d: %w", after, err)
		}
		read, rewritten = read+n, rewritten+changed
		if progress != nil {
			progress(read, rewritten)
		}
		if n < resealPage {
			return read, rewritten, nil
		}
	}
}
