package audit_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections"
	"github.com/usersd/usersd/projections/audit"
)

// anyHash in a wanted Divergence stands for any hash but the live one.
const anyHash = "any other hash"

// TestRebuildRefusesDivergentHistory: a rebuild whose chain differs from
// the live one on entries both hold, or that lacks entries the live one
// holds, refuses to swap, names each workspace's first difference with both
// hashes, and leaves the live entries as they were. With AcceptDivergence
// it asks once and swaps.
func TestRebuildRefusesDivergentHistory(t *testing.T) {
	t.Parallel()
	mallory := domain.Actor{UserID: uuid.New(), Email: "mallory@example.test"}
	cases := []struct {
		name string
		// change makes the history the rebuild replays from the stored one
		// (events of workspace a at indexes 0, 2, 3, 4, 6, 7; seqs 1 to 6).
		change func([]domain.RecordedEvent) []domain.RecordedEvent
		// tamper edits the live entries of a first ("" for none).
		tamper string
		want   func(live []audit.Entry) audit.Divergence
	}{
		{"an event's actor rewritten", func(es []domain.RecordedEvent) []domain.RecordedEvent {
			es[6].Metadata.Actor = mallory // the RoleChanged, seq 5
			return es
		}, "", func(live []audit.Entry) audit.Divergence {
			return audit.Divergence{Seq: 5, LiveHash: live[4].Hash, RebuiltHash: anyHash}
		}},
		{"an event removed from the middle", func(es []domain.RecordedEvent) []domain.RecordedEvent {
			return append(es[:3:3], es[4:]...) // the e-mail sent, seq 3
		}, "", func(live []audit.Entry) audit.Divergence {
			return audit.Divergence{Seq: 3, LiveHash: live[2].Hash, RebuiltHash: anyHash}
		}},
		{"the last event removed", func(es []domain.RecordedEvent) []domain.RecordedEvent {
			return es[:7]
		}, "", func(live []audit.Entry) audit.Divergence {
			return audit.Divergence{Seq: 6, LiveHash: live[5].Hash, RebuiltHash: ""}
		}},
		{"a live entry edited without rehashing", nil,
			`UPDATE audit_entries SET actor_email = 'mallory@example.test' WHERE workspace_id = $1 AND seq = 2`,
			func(live []audit.Entry) audit.Divergence {
				return audit.Divergence{Seq: 2, LiveHash: live[1].Hash, RebuiltHash: live[1].Hash}
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			pool, a, b, events := appliedScenario(t)
			if c.tamper != "" {
				tamper(t, pool, c.tamper, a)
			}
			before := chain(t, pool, "public")
			liveEntries := all(t, pool, a)
			replayed := append([]domain.RecordedEvent(nil), events...)
			if c.change != nil {
				replayed = c.change(replayed)
			}

			_, err := projections.Rebuild(ctx, pool, audit.New(), projections.SliceSource(replayed), projections.RebuildOptions{BatchSize: 3})
			var de *audit.DivergenceError
			if !errors.Is(err, projections.ErrDiverged) || !errors.As(err, &de) || len(de.Divergences) != 1 {
				t.Fatalf("Rebuild: got %v, want one workspace's divergence", err)
			}
			got := de.Divergences[0]
			want := c.want(liveEntries)
			want.WorkspaceID = a
			if want.RebuiltHash == anyHash && got.RebuiltHash != "" && got.RebuiltHash != got.LiveHash {
				want.RebuiltHash = got.RebuiltHash // whatever the forged chain made of it
			}
			if got != want {
				t.Errorf("divergence: got %+v, want %+v", got, want)
			}
			msg := err.Error()
			for _, s := range []string{"workspace " + a.String(), "seq " + itoa(want.Seq), "live hash " + want.LiveHash} {
				if !strings.Contains(msg, s) {
					t.Errorf("error %q does not name %q", msg, s)
				}
			}
			if after := chain(t, pool, "public"); !reflect.DeepEqual(after, before) {
				t.Errorf("live entries after a refused swap:\n got %+v\nwant %+v", after, before)
			}
			wantIntact(t, pool, b, 2, "of the other workspace")

			asked := 0
			_, err = rebuildWhenFree(ctx, pool, projections.SliceSource(replayed), projections.RebuildOptions{
				BatchSize: 3,
				AcceptDivergence: func(_ context.Context, diverged error) error {
					asked++
					if !errors.As(diverged, &de) || de.Divergences[0] != got {
						t.Errorf("AcceptDivergence: got %v, want the divergence found before", diverged)
					}
					return nil
				},
			})
			if err != nil || asked != 1 {
				t.Fatalf("Rebuild accepting the divergence: got %v after %d questions, want a swap after one", err, asked)
			}
			if res := verify(t, pool, a); !res.OK {
				t.Errorf("Verify after the accepted swap: got %+v, want the rebuilt chain to verify", res)
			}
			if after := chain(t, pool, "public"); c.tamper == "" && reflect.DeepEqual(after, before) {
				t.Error("the live entries after an accepted swap are the old ones")
			}
		})
	}
}

// TestRebuildAcceptDivergenceMayRefuse: an error of AcceptDivergence fails
// the rebuild with it, and nothing is swapped.
func TestRebuildAcceptDivergenceMayRefuse(t *testing.T) {
	t.Parallel()
	pool, _, _, events := appliedScenario(t)
	before := chain(t, pool, "public")
	no := errors.New("not today")
	_, err := projections.Rebuild(context.Background(), pool, audit.New(), projections.SliceSource(events[:7]), projections.RebuildOptions{
		AcceptDivergence: func(context.Context, error) error { return no },
	})
	if !errors.Is(err, no) {
		t.Errorf("Rebuild: got %v, want AcceptDivergence's error", err)
	}
	if after := chain(t, pool, "public"); !reflect.DeepEqual(after, before) {
		t.Error("the live entries changed after a refusal")
	}
}

// rebuildWhenFree is Rebuild of the audit, tried again while the rebuild
// lock of a rebuild that just failed is still held: the server releases it
// once it has seen that rebuild's connection close.
func rebuildWhenFree(ctx context.Context, pool *pgxpool.Pool, src projections.Source, opts projections.RebuildOptions) (projections.RebuildResult, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := projections.Rebuild(ctx, pool, audit.New(), src, opts)
		if !errors.Is(err, projections.ErrRebuildRunning) || time.Now().After(deadline) {
			return res, err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRebuildAheadOfTheLiveChainSwaps: a rebuild that holds more than the
// live entries (the live runner lags, or never ran) is no divergence, as
// long as every live entry is in it unchanged.
func TestRebuildAheadOfTheLiveChainSwaps(t *testing.T) {
	pool, h := fresh(t)
	ctx := context.Background()
	a, _, events := scenario(h)
	apply(t, pool, events[:4])
	if _, err := projections.Rebuild(ctx, pool, audit.New(), projections.SliceSource(events), projections.RebuildOptions{}); err != nil {
		t.Fatalf("Rebuild ahead of the live chain: got %v, want a swap", err)
	}
	wantIntact(t, pool, a, 6, "after the swap")
}
