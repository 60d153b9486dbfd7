package benchmarks_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/usersd/usersd/adapters/eventstore"
	"github.com/usersd/usersd/adapters/eventstore/eventstoretest"
	pgstore "github.com/usersd/usersd/adapters/eventstore/postgres"
	"github.com/usersd/usersd/adapters/httpapi"
	"github.com/usersd/usersd/adapters/keystore"
	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/commands"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/internal/testenv"
	"github.com/usersd/usersd/projections"
	"github.com/usersd/usersd/projections/audit"
)

// feedEvents is the history BenchmarkEventFeed streams (or
// USERSD_BENCH_EVENTS, if fewer).
const feedEvents = 200_000

// feedGoalRatio is issue 18's goal: the feed streams at least this share
// of the rate at which eventstore.Source reads the same history.
const feedGoalRatio = 0.8

// BenchmarkEventFeed streams a sealed history of 200,000 events (the
// rebuild benchmark's generator, every personal value sealed under keys of
// the PostgreSQL key store) through GET /v1/events, read whole by a client
// over loopback HTTP, beside its floor: the same history read through
// eventstore.Source (decoding and opening included, as the feed reads it),
// the two alternating in one run. Each side gets a fresh key store (an
// empty cache), as after a restart. gzip-events/s is the feed with
// Accept-Encoding: gzip (not judged). ratio is feed/Source events per
// second (the goal: ≥ 0.8).
//
// The timer runs only around the reads.
func BenchmarkEventFeed(b *testing.B) {
	n := min(testenv.PositiveInt(b, envEvents, feedEvents), feedEvents)
	ctx := context.Background()
	kek := newKEK(b)
	pool, _ := pgtest.New(b)
	keys, streamKey := openKeys(b, ctx, pool, kek)
	start := time.Now()
	seedHistoryWith(b, ctx, pool, n, benchWorkspaces, seedPerTx, eventstore.NewCodec(keys, streamKey).Encode)
	b.Logf("seeded %d sealed events in %s", n, time.Since(start).Round(time.Millisecond))
	store := pgstore.New(pool, pgstore.WithLogger(quietLogger()))
	b.Cleanup(store.Close)
	source := func() eventstore.Source {
		return eventstore.Source{Store: store, Codec: eventstore.NewCodec(keystore.New(pool, kek), streamKey)}
	}

	// The API as usersd serve wires it, its event feed reading through a
	// source made afresh for each request.
	signer, err := audit.NewSigner(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		b.Fatal(err)
	}
	codec := eventstore.NewCodec(keystore.New(pool, kek), streamKey)
	deps := eventstoretest.DepsWithCaches(store, codec, commands.EphemeralLinkSecrets(), eventstoretest.Caches{Workspaces: 64, Accounts: 1000})
	secret := bytes.Repeat([]byte("s"), httpapi.MinSecretLength)
	api, err := httpapi.New(httpapi.Config{
		App: commands.NewApplication(deps, commands.DefaultInvitationPolicy(), commands.Instrumentation{}),
		DB:  pool, Waiter: projections.NewWaiter(pool, nil, projections.WithWaiterLogger(quietLogger())),
		JWTSecret: secret, AuditSigner: signer, Keys: codec.Keys(), Logger: quietLogger(),
		Events: freshSource(source),
	})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(api)
	b.Cleanup(srv.Close)
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": uuid.NewString(), "scope": httpapi.EventsReadScope, "exp": time.Now().Add(24 * time.Hour).Unix(),
	}).SignedString(secret)
	if err != nil {
		b.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	b.Cleanup(client.CloseIdleConnections)
	readFeed := func(zip bool) time.Duration {
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/v1/events", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		if zip {
			req.Header.Set("Accept-Encoding", "gzip")
		}
		start := time.Now()
		res, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer res.Body.Close()
		if res.StatusCode != http.StatusOK {
			b.Fatalf("GET /v1/events: %d", res.StatusCode)
		}
		body := io.Reader(res.Body)
		if zip {
			if body, err = gzip.NewReader(res.Body); err != nil {
				b.Fatal(err)
			}
		}
		lines, err := countLines(body)
		d := time.Since(start)
		if err != nil || lines != n {
			b.Fatalf("the feed gave %d lines, want %d (%v)", lines, n, err)
		}
		return d
	}

	b.ResetTimer()
	var src, plain, zipped time.Duration
	for i := range b.N {
		if i%2 == 0 {
			src += readHistory(b, ctx, source(), n)
			plain += readFeed(false)
		} else {
			plain += readFeed(false)
			src += readHistory(b, ctx, source(), n)
		}
		zipped += readFeed(true)
	}
	b.StopTimer()
	total := float64(n) * float64(b.N)
	srcRate, feedRate, zipRate := total/src.Seconds(), total/plain.Seconds(), total/zipped.Seconds()
	b.ReportMetric(feedRate, "feed-events/s")
	b.ReportMetric(zipRate, "gzip-events/s")
	b.ReportMetric(srcRate, "source-events/s")
	b.ReportMetric(feedRate/srcRate, "ratio")
	summary(b, "event feed: %d sealed events at %.0f events/s over HTTP (%.0f with gzip), eventstore.Source %.0f events/s: ratio %.2f (goal ≥ %.1f: %s)",
		n, feedRate, zipRate, srcRate, feedRate/srcRate, feedGoalRatio, verdict(feedRate/srcRate >= feedGoalRatio))
}

// freshSource makes a source for each subscription: each feed starts with
// an empty key cache, as the floor does.
type freshSource func() eventstore.Source

func (f freshSource) Subscribe(ctx context.Context, from domain.Position, size int, h func(context.Context, projections.Batch) error) error {
	return f().Subscribe(ctx, from, size, h)
}

func countLines(r io.Reader) (int, error) {
	buf := make([]byte, 256<<10)
	n := 0
	for {
		k, err := r.Read(buf)
		n += bytes.Count(buf[:k], []byte{'\n'})
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("read the feed: %w", err)
		}
	}
}
