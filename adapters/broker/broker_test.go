package broker_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/usersd/usersd/adapters/broker"
	"github.com/usersd/usersd/adapters/broker/natstest"
	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections"
	"github.com/usersd/usersd/projections/feed"
)

// newPublisher connects a publisher to the test's own stream.
func newPublisher(t *testing.T, s *natstest.Space) *broker.Publisher {
	t.Helper()
	p, err := broker.New(broker.Options{URL: s.URL, Stream: s.Stream, SubjectPrefix: s.SubjectPrefix, AckTimeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// newSpace gives the test a stream of its own and a publisher to it.
func newSpace(t *testing.T) (*natstest.Space, *broker.Publisher) {
	t.Helper()
	s := natstest.New(t)
	return s, newPublisher(t, s)
}

// history makes n events in global order: a workspace created, the
// invitation of a person erased since, then invitations into it, with an
// account registered before each.
func history(n int) []domain.RecordedEvent {
	ws := uuid.New()
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var out []domain.RecordedEvent
	add := func(e domain.Event, stream string, erased ...uuid.UUID) {
		i := len(out) + 1
		out = append(out, domain.RecordedEvent{Erased: erased,
			Envelope: domain.Envelope{Event: e, Metadata: domain.Metadata{
				EventID: uuid.New(), SchemaVersion: 1, OccurredAt: at.Add(time.Duration(i) * time.Millisecond),
				Actor: domain.Actor{System: true}, CorrelationID: "test",
			}},
			StreamID: stream, Revision: uint64(i), Position: domain.Position{Commit: uint64(10 * i), Prepare: uint64(10 * i)},
		})
	}
	owner := uuid.New()
	add(domain.WorkspaceCreated{WorkspaceID: ws, Name: "W", OwnerUserID: owner, OwnerEmail: "owner@example.com", OwnerName: "O", CreatedAt: at}, "workspace-"+ws.String())
	// A person erased since: their address opened as "".
	gone := uuid.New()
	add(domain.UserInvited{WorkspaceID: ws, InvitationID: uuid.New(), UserID: gone, Role: "Viewer",
		InvitedBy: owner, InviterRole: "Admin", InvitedAt: at, ExpiresAt: at.Add(time.Hour)}, "workspace-"+ws.String(), gone)
	for len(out) < n {
		u := uuid.New()
		email := fmt.Sprintf("u%d@example.com", len(out))
		add(domain.AccountRegistered{UserID: u, Email: email}, "account-x")
		if len(out) < n {
			add(domain.UserInvited{WorkspaceID: ws, InvitationID: uuid.New(), UserID: u, Email: email, Role: "Editor",
				InvitedBy: owner, InviterRole: "Admin", InvitedAt: at, ExpiresAt: at.Add(time.Hour)}, "workspace-"+ws.String())
		}
	}
	return out[:n]
}

// checkOnce fails unless the stream holds exactly the events, each once,
// in their order, on its subject and with the event id as Nats-Msg-Id.
func checkOnce(t *testing.T, s *natstest.Space, p *broker.Publisher, events []domain.RecordedEvent) {
	t.Helper()
	msgs := s.Messages(t)
	if len(msgs) != len(events) {
		t.Errorf("the stream holds %d messages, want %d", len(msgs), len(events))
	}
	for i := range min(len(msgs), len(events)) {
		m, e := msgs[i], events[i]
		if m.ID != e.Metadata.EventID.String() {
			t.Errorf("message %d: Nats-Msg-Id %s, want event %d's id %s", m.Seq, m.ID, i, e.Metadata.EventID)
			continue
		}
		if want := p.Subject(e.Event); m.Subject != want {
			t.Errorf("message %d: subject %s, want %s", m.Seq, m.Subject, want)
		}
		if want, err := feed.Line(e); err != nil || !bytes.Equal(m.Data, want) {
			t.Errorf("message %d: body %s, want the event's feed line %s (%v)", m.Seq, m.Data, want, err)
		}
	}
}

func TestPublishesEveryEventOnceInOrder(t *testing.T) {
	t.Parallel()
	s, p := newSpace(t)
	events := history(1200)
	ctx := t.Context()
	for i := 0; i < len(events); i += 500 {
		if err := p.Apply(ctx, nil, events[i:min(i+500, len(events))]); err != nil {
			t.Fatal(err)
		}
	}
	checkOnce(t, s, p, events)
	// The erased person's invitation shows no address (feed.Line).
	if msgs := s.Messages(t); len(msgs) > 1 && !strings.Contains(string(msgs[1].Data), `"email":null`) {
		t.Errorf("the erased person's invitation: %s, want \"email\":null", msgs[1].Data)
	}
}

func TestSubjects(t *testing.T) {
	t.Parallel()
	s, p := newSpace(t)
	ws, u := uuid.New(), uuid.New()
	for _, c := range []struct {
		event domain.Event
		want  string
	}{
		{domain.RoleChanged{WorkspaceID: ws, UserID: u}, s.SubjectPrefix + "." + ws.String() + ".RoleChanged"},
		{domain.AccountDeleted{UserID: u}, s.SubjectPrefix + ".global.AccountDeleted"},
		{domain.AccountRegistered{UserID: u}, s.SubjectPrefix + ".global.AccountRegistered"},
	} {
		if got := p.Subject(c.event); got != c.want {
			t.Errorf("subject of %s: got %s, want %s", domain.EventName(c.event), got, c.want)
		}
	}
	if got, want := broker.StreamName, "USERSD_EVENTS"; got != want {
		t.Errorf("production stream %s, want %s (docs/integrations.md)", got, want)
	}
	if got := broker.SubjectPrefix + ".global." + "AccountDeleted"; !strings.HasPrefix(got, "usersd.events.") {
		t.Errorf("production subject %s does not start with usersd.events.", got)
	}
}

// A batch published again, as after a crash between the acknowledgements
// and the checkpoint's commit, or after a crash midway through it, adds
// only the events the stream lacks, in order.
func TestRepublishedEventsAreDropped(t *testing.T) {
	t.Parallel()
	s, p := newSpace(t)
	events := history(8)
	ctx := t.Context()
	for _, batch := range [][]domain.RecordedEvent{events[:3], events[:6], events[:6], events} {
		if err := p.Apply(ctx, nil, batch); err != nil {
			t.Fatalf("apply %d events: %v", len(batch), err)
		}
	}
	checkOnce(t, s, p, events)
}

// A pipelined batch never stores an event after one the stream lacks: here
// the stream holds the batch's second event only (as if the first had been
// lost on the way), so the third, which expects the second as the stream's
// last message, is refused and the batch fails. The next attempt goes
// message by message and completes the stream with each event once.
func TestAFailedBatchIsRetriedInOrder(t *testing.T) {
	t.Parallel()
	s, p := newSpace(t)
	events := history(4)
	ctx := t.Context()
	if err := p.Apply(ctx, nil, events[1:2]); err != nil {
		t.Fatal(err)
	}
	err := p.Apply(ctx, nil, events)
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode != jetstream.ErrorCode(10070) {
		t.Fatalf("apply after a gap: got %v, want the server's wrong last message id error (10070)", err)
	}
	if n, err := s.Count(ctx); err != nil || n != 2 {
		t.Fatalf("after the refused batch the stream holds %d messages (%v), want 2: the second event and the first", n, err)
	}
	if err := p.Apply(ctx, nil, events); err != nil {
		t.Fatalf("the retry: %v", err)
	}
	msgs := s.Messages(t)
	var got []string
	for _, m := range msgs {
		got = append(got, m.ID)
	}
	want := []string{events[1].Metadata.EventID.String(), events[0].Metadata.EventID.String(), events[2].Metadata.EventID.String(), events[3].Metadata.EventID.String()}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("the stream holds %v, want %v", got, want)
	}
}

// streamAfterPublishing publishes an event to the test's stream and
// answers the stream's configuration then.
func streamAfterPublishing(t *testing.T, s *natstest.Space) jetstream.StreamConfig {
	t.Helper()
	p := newPublisher(t, s)
	if err := p.Apply(t.Context(), nil, history(1)); err != nil {
		t.Fatal(err)
	}
	st, err := s.JetStream().Stream(t.Context(), s.Stream)
	if err != nil {
		t.Fatal(err)
	}
	return st.CachedInfo().Config
}

func TestCreatesTheStream(t *testing.T) {
	t.Parallel()
	s := natstest.New(t)
	cfg := streamAfterPublishing(t, s)
	if len(cfg.Subjects) != 1 || cfg.Subjects[0] != s.SubjectPrefix+".>" {
		t.Errorf("subjects %v, want [%s.>]", cfg.Subjects, s.SubjectPrefix)
	}
	if cfg.Duplicates != broker.DefaultDuplicates || cfg.MaxAge != broker.DefaultMaxAge || cfg.Retention != jetstream.LimitsPolicy ||
		cfg.Discard != jetstream.DiscardOld || cfg.Storage != jetstream.FileStorage || cfg.MaxBytes != -1 || cfg.MaxMsgs != -1 {
		t.Errorf("stream config: duplicates %s, max age %s, retention %s, discard %s, storage %s, max bytes %d, max msgs %d; "+
			"want %s, %s, limits, old, file, unlimited, unlimited",
			cfg.Duplicates, cfg.MaxAge, cfg.Retention, cfg.Discard, cfg.Storage, cfg.MaxBytes, cfg.MaxMsgs, broker.DefaultDuplicates, broker.DefaultMaxAge)
	}
}

// A stream an operator made or tuned keeps their settings; usersd only
// adds its subjects and widens a duplicate window shorter than its own.
func TestKeepsAnOperatorsStream(t *testing.T) {
	t.Parallel()
	s := natstest.New(t)
	ctx := t.Context()
	_, err := s.JetStream().CreateStream(ctx, jetstream.StreamConfig{
		Name: s.Stream, Subjects: []string{s.SubjectPrefix + "-other.>"}, MaxMsgs: 100_000, MaxAge: 90 * 24 * time.Hour,
		Duplicates: time.Minute, Storage: jetstream.MemoryStorage,
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := streamAfterPublishing(t, s)
	if strings.Join(cfg.Subjects, " ") != s.SubjectPrefix+"-other.> "+s.SubjectPrefix+".>" {
		t.Errorf("subjects %v, want the operator's and usersd's", cfg.Subjects)
	}
	if cfg.Duplicates != broker.DefaultDuplicates {
		t.Errorf("duplicate window %s, want it widened to %s", cfg.Duplicates, broker.DefaultDuplicates)
	}
	if cfg.MaxMsgs != 100_000 || cfg.MaxAge != 90*24*time.Hour || cfg.Storage != jetstream.MemoryStorage {
		t.Errorf("the operator's settings changed: max msgs %d, max age %s, storage %s", cfg.MaxMsgs, cfg.MaxAge, cfg.Storage)
	}
}

// Without a server, New still answers (serve starts) and Apply fails within
// its timeout (the runner retries).
func TestUnreachableServer(t *testing.T) {
	t.Parallel()
	p, err := broker.New(broker.Options{URL: "nats://127.0.0.1:1", AckTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatalf("New without a server: %v", err)
	}
	defer p.Close()
	start := time.Now()
	if err := p.Apply(t.Context(), nil, history(1)); err == nil {
		t.Fatal("Apply without a server succeeded")
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("Apply without a server took %s, want about its 500 ms timeout", took)
	}
}

// crashAfterAcks publishes each batch and then fails it, as a crash between
// the acknowledgements and the checkpoint's commit would, a given number of
// times.
type crashAfterAcks struct {
	*broker.Publisher
	crashes atomic.Int32
}

var errCrash = errors.New("crashed after the acknowledgements")

func (c *crashAfterAcks) Apply(ctx context.Context, tx pgx.Tx, events []domain.RecordedEvent) error {
	if err := c.Publisher.Apply(ctx, tx, events); err != nil {
		return err
	}
	if c.crashes.Add(-1) >= 0 {
		return errCrash
	}
	return nil
}

// The runner publishes from its checkpoint: batches that failed after
// JetStream stored them are published again, and dropped as duplicates.
func TestRunnerPublishesEachEventOnce(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.New(t)
	s := natstest.New(t)
	events := history(1000)
	p := &crashAfterAcks{Publisher: newPublisher(t, s)}
	p.crashes.Store(3)
	caughtUp := make(chan struct{}, 1)
	r := projections.NewRunner(pool, p, projections.SliceSource(events), projections.RunnerOptions{
		BatchSize: 300, MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond,
		OnProgress: func(pr projections.Progress) {
			if pr.CaughtUp && pr.Checkpoint == events[len(events)-1].Position {
				select {
				case caughtUp <- struct{}{}:
				default:
				}
			}
		},
	})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	select {
	case <-caughtUp:
	case <-time.After(time.Minute):
		t.Fatal("the runner did not catch up within a minute")
	}
	cancel()
	<-done
	if n := p.crashes.Load(); n >= 0 {
		t.Fatalf("%d crashes left: the test did not crash the runner", n+1)
	}
	checkOnce(t, s, p.Publisher, events)
}
