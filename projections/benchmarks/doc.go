// Package benchmarks measures the projections end to end against PostgreSQL,
// each figure beside a floor measured in the same run on the same database:
//
//   - BenchmarkRebuild: projections.Rebuild of each read model over a seeded
//     history, against reading that history through the event store and
//     COPYing the rebuilt rows, and against watermill-sql's subscriber
//     feeding the same Apply one message at a time;
//   - BenchmarkInviteBatch: commands.InviteUsers of 100 and 1,000 new
//     addresses through the PostgreSQL store, against COPY and a pipelined
//     batch of the rows it wrote;
//   - BenchmarkAppendToVisible: the lag from a command being due to its
//     events being visible in the user list, under open-loop load, against a
//     LISTEN/NOTIFY round trip;
//   - BenchmarkUserListVsPgbench: user list pages under a concurrent writer,
//     against pgbench running the very same SQL.
//   - BenchmarkDeleteAccount: commands.DeleteAccount of a person present in
//     10 and 100 workspaces, on the PostgreSQL store and key store with the
//     read models caught up (goal: < 1 s per deletion at 100).
//   - BenchmarkAccessReviewStart: the start of an access review of a
//     10,000-member workspace (the aggregate's decision and the history's
//     materialisation of its items), beside the current user list's pages
//     (goal: < 2 s).
//   - BenchmarkEventFeed: GET /v1/events of a sealed history read whole over
//     HTTP, against reading it through eventstore.Source (goal: ≥ 0.8×).
//   - BenchmarkWebhookDeliveries: webhook deliveries to an in-process HTTPS
//     receiver, end to end from a backlog, against raw HTTPS POSTs to the
//     same receiver (goal: ≥ 1,000 deliveries/s; USERSD_BENCH_WEBHOOK_DELIVERIES
//     sets how many, default 20,000).
//
// Beside the benchmarks, TestScale (skipped unless USERSD_SCALE_EVENTS is
// set; `make scale`) simulates a history of that many events and measures
// rebuilds, sizes and query latencies at that size: the measured point of
// docs/scaling.md.
//
// The package holds only tests. Run it with
//
//	go test -run '^$' -bench . -benchtime 3s -timeout 30m ./projections/benchmarks/
//
// (make bench runs it so, with every other package's benchmarks, and turns
// the output into docs/benchmarks.md.)
//
// Each benchmark logs a line starting with SUMMARY: its figures, the ratio
// to its floor, and whether each goal was met. USERSD_BENCH_EVENTS shrinks
// the rebuild's history (default 1,000,000) for a quick run, and
// USERSD_BENCH_WATERMILL_EVENTS the watermill baseline's (default 100,000).
// The benchmarks
// need the test PostgreSQL server (see adapters/postgres/pgtest) and, for
// the last one, pgbench (PGBENCH, else PATH, else PostgreSQL 15's).
package benchmarks
