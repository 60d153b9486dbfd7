// Package broker publishes the event history to NATS JetStream, for
// pipelines that outgrow one database (docs/integrations.md, "NATS
// JetStream").
//
// The Publisher is a projections.Projection: a projections.Runner feeds it
// batches from its own checkpoint, one replica at a time (the runner's
// advisory lock), and moves the checkpoint only after Apply returned, that
// is after JetStream acknowledged every message of the batch. Each message
// carries the event id as Nats-Msg-Id, so the one batch a crash can make the
// runner publish again is dropped by the stream's duplicate window.
//
// It is no read model: never rebuild it (a replay from the start would
// publish the whole history again, beyond the duplicate window).
package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/internal/positive"
	"github.com/usersd/usersd/projections"
	"github.com/usersd/usersd/projections/feed"
)

// The names production uses (docs/integrations.md). Tests give each a
// stream and a subject prefix of its own (Options).
const (
	// Name is the publisher's checkpoint key and lock name. Never rename
	// it: a new name would publish the whole history again.
	Name = "nats_jetstream"
	// StreamName is the JetStream stream the events go to.
	StreamName = "USERSD_EVENTS"
	// SubjectPrefix starts every subject: <prefix>.<workspace>.<type>.
	SubjectPrefix = "usersd.events"
	// GlobalToken stands for the workspace in the subject of an event
	// that belongs to none (AccountRegistered, AccountDeleted): it never
	// reads as a workspace id.
	GlobalToken = "global"
)

// The stream's settings when usersd creates it (Options overrides them).
const (
	// DefaultDuplicates is the duplicate window: how long JetStream
	// remembers a message id. A batch published again after a crash is
	// dropped if the runner resumes within it.
	DefaultDuplicates = time.Hour
	// DefaultMaxAge is how long the stream keeps a message: long enough
	// for a consumer to be down over a long weekend, short enough that a
	// person's data published before their erasure leaves the stream well
	// within the month the GDPR allows. Older history is in the event
	// feed (GET /v1/events).
	DefaultMaxAge = 7 * 24 * time.Hour
	// DefaultAckTimeout bounds the wait for a batch's acknowledgements.
	DefaultAckTimeout = 30 * time.Second
)

// BatchSize is the most events a runner should hand the publisher at once
// (projections.RunnerOptions.BatchSize): each batch costs a round trip to
// NATS and a commit of the checkpoint, and what a crash makes the runner
// publish again is one batch, which the duplicate window drops. It stays
// under nats.go's 4,000 acknowledgements in flight.
const BatchSize = 2000

// Options configure a Publisher. Only URL is required.
type Options struct {
	// URL is the NATS server, or servers comma-separated
	// (nats://[user:password@]host:4222, tls://...).
	URL string
	// Stream and SubjectPrefix default to StreamName and SubjectPrefix.
	// Tests give each its own, so they run side by side on one server.
	Stream, SubjectPrefix string
	// Duplicates and MaxAge are the stream's duplicate window and message
	// age limit when usersd creates it; default DefaultDuplicates and
	// DefaultMaxAge.
	Duplicates, MaxAge time.Duration
	// AckTimeout bounds the wait for the acknowledgements of a batch;
	// default DefaultAckTimeout.
	AckTimeout time.Duration
	// Logger receives connection changes. Default slog.Default().
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.Stream == "" {
		o.Stream = StreamName
	}
	if o.SubjectPrefix == "" {
		o.SubjectPrefix = SubjectPrefix
	}
	o.Duplicates = positive.Or(o.Duplicates, DefaultDuplicates)
	o.MaxAge = positive.Or(o.MaxAge, DefaultMaxAge)
	o.AckTimeout = positive.Or(o.AckTimeout, DefaultAckTimeout)
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Publisher publishes every event it is given to the stream, once per
// event id. A Runner calls Apply from one goroutine at a time.
type Publisher struct {
	opts Options
	nc   *nats.Conn
	js   jetstream.JetStream

	// Touched only by Apply (the runner's goroutine).
	ensured bool // the stream is known to exist as configured
	careful bool // the last batch failed: publish the next one message by message
}

var _ projections.Projection = (*Publisher)(nil)

// New connects to NATS. A server that does not answer yet is no error: the
// connection keeps trying in the background, and Apply fails (the runner
// retries) until it is up. A malformed URL is.
func New(opts Options) (*Publisher, error) {
	opts = opts.withDefaults()
	log := opts.Logger.With("component", "nats")
	nc, err := nats.Connect(opts.URL,
		nats.Name("usersd"),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		// No buffering while disconnected: a publish then fails at once
		// and the batch is retried from the checkpoint, rather than sent
		// later behind the publisher's back.
		nats.ReconnectBufSize(-1),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats: disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { log.Info("nats: connected", "server", c.ConnectedUrlRedacted()) }),
		// What the server refuses asynchronously (an authorization
		// violation, a slow consumer): otherwise only the retries show it.
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { log.Warn("nats: error", "err", err) }),
	)
	if err != nil {
		return nil, fmt.Errorf("nats: connect: %w", err)
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(opts.AckTimeout))
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("nats: jetstream: %w", err)
	}
	return &Publisher{opts: opts, nc: nc, js: js}, nil
}

// Close closes the connection to NATS.
func (p *Publisher) Close() { p.nc.Close() }

// Name is the checkpoint key (Name).
func (*Publisher) Name() string { return Name }

// Subject is the subject of an event: <prefix>.<workspace id>.<type>, or
// <prefix>.global.<type> for an event of no workspace.
func (p *Publisher) Subject(e domain.Event) string {
	return subject(p.opts.SubjectPrefix, e)
}

func subject(prefix string, e domain.Event) string {
	ws := GlobalToken
	if id, ok := domain.WorkspaceOf(e); ok && id != uuid.Nil {
		ws = id.String()
	}
	return prefix + "." + ws + "." + domain.EventName(e)
}

// Apply publishes the batch and returns once JetStream has stored every
// message (or recognised it as a duplicate); any failure fails the batch,
// which the runner then publishes again from its checkpoint. tx is the
// runner's, which moves the checkpoint after Apply: the publisher writes
// nothing in it.
//
// The messages of a batch go out pipelined, each but the first expecting
// its predecessor as the stream's last message (Nats-Expected-Last-Msg-Id),
// so a message lost on the way makes the server refuse every one after it
// rather than store them out of order. After a failure the next batch goes
// out one message at a time, each waiting for its acknowledgement: the
// messages already stored come back as duplicates and the rest follow in
// order, whatever the stream's last message is.
func (p *Publisher) Apply(ctx context.Context, tx pgx.Tx, events []domain.RecordedEvent) error {
	if len(events) == 0 {
		return nil
	}
	if tx != nil {
		// The checkpoint's commit need not wait for the disk: if a crash
		// of the database loses it, the batch is published again and
		// dropped as duplicates.
		if _, err := tx.Exec(ctx, `SET LOCAL synchronous_commit TO off`); err != nil {
			return fmt.Errorf("nats: %w", err)
		}
	}
	err := p.publish(ctx, events)
	if err != nil {
		// Check the stream again (it may have been deleted) and go
		// carefully next time.
		p.ensured, p.careful = false, true
		return err
	}
	p.careful = false
	return nil
}

// publish publishes the batch pipelined, or one message at a time after a
// failure. AckTimeout bounds the whole of a pipelined batch, and each
// message of a careful one (which takes a round trip per message).
func (p *Publisher) publish(ctx context.Context, events []domain.RecordedEvent) error {
	if !p.ensured {
		tctx, cancel := context.WithTimeout(ctx, p.opts.AckTimeout)
		err := p.ensureStream(tctx)
		cancel()
		if err != nil {
			return err
		}
		p.ensured = true
	}
	if p.careful {
		for _, e := range events {
			m, err := p.message(e)
			if err != nil {
				return err
			}
			tctx, cancel := context.WithTimeout(ctx, p.opts.AckTimeout)
			ack, err := p.js.PublishMsg(tctx, m)
			cancel()
			if err != nil {
				return fmt.Errorf("nats: publish event %s at %s: %w", e.Metadata.EventID, e.Position, err)
			}
			if err := p.checkStream(ack, e); err != nil {
				return err
			}
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, p.opts.AckTimeout)
	defer cancel()
	// Each message goes out as soon as it is encoded, so the server
	// stores the first while the rest are encoded.
	futures := make([]jetstream.PubAckFuture, len(events))
	for i, e := range events {
		m, err := p.message(e)
		if err != nil {
			return err
		}
		if i > 0 {
			m.Header.Set(jetstream.ExpectedLastMsgIDHeader, events[i-1].Metadata.EventID.String())
		}
		f, err := p.js.PublishMsgAsync(m)
		if err != nil {
			return fmt.Errorf("nats: publish event %s at %s: %w", e.Metadata.EventID, e.Position, err)
		}
		futures[i] = f
	}
	for i, f := range futures {
		select {
		case ack := <-f.Ok():
			if err := p.checkStream(ack, events[i]); err != nil {
				return err
			}
		case err := <-f.Err():
			return fmt.Errorf("nats: publish event %s at %s: %w", events[i].Metadata.EventID, events[i].Position, err)
		case <-ctx.Done():
			return fmt.Errorf("nats: wait for the acknowledgements of %d events after %s: %w", len(events)-i, events[i].Position, ctx.Err())
		}
	}
	return nil
}

// checkStream fails unless the message went to the publisher's stream.
// (JetStream lets one stream only hold a subject: if another holds
// usersd's, ours is not what it should be.)
func (p *Publisher) checkStream(ack *jetstream.PubAck, e domain.RecordedEvent) error {
	if ack.Stream != p.opts.Stream {
		return fmt.Errorf("nats: event %s went to stream %s, not %s", e.Metadata.EventID, ack.Stream, p.opts.Stream)
	}
	return nil
}

// message is the event's message: its subject, its id, and its line of the event feed as the body (feed.Line, which
// shows nothing readable of an erased person).
func (p *Publisher) message(e domain.RecordedEvent) (*nats.Msg, error) {
	body, err := feed.Line(e)
	if err != nil {
		return nil, fmt.Errorf("encode event %s at %s: %w", e.Metadata.EventID, e.Position, err)
	}
	m := &nats.Msg{Subject: p.Subject(e.Event), Data: body, Header: nats.Header{}}
	m.Header.Set(jetstream.MsgIDHeader, e.Metadata.EventID.String())
	return m, nil
}

// ensureStream creates the stream, or brings an existing one to what
// publishing needs: usersd's subjects and a duplicate window at least
// Duplicates long (within its age limit). Everything else an operator set
// (retention, limits, replicas, placement) stays as it is.
func (p *Publisher) ensureStream(ctx context.Context) error {
	subjects := p.opts.SubjectPrefix + ".>"
	s, err := p.js.Stream(ctx, p.opts.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		_, err = p.js.CreateStream(ctx, jetstream.StreamConfig{
			Name:        p.opts.Stream,
			Description: "usersd's event history, one message per event (docs/integrations.md)",
			Subjects:    []string{subjects},
			Retention:   jetstream.LimitsPolicy,
			Discard:     jetstream.DiscardOld,
			Storage:     jetstream.FileStorage,
			MaxAge:      p.opts.MaxAge,
			MaxMsgs:     -1,
			MaxBytes:    -1,
			Duplicates:  p.opts.Duplicates,
			Replicas:    1,
		})
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return p.ensureStream(ctx) // another replica made it meanwhile
		}
		if err != nil {
			return fmt.Errorf("nats: create stream %s: %w", p.opts.Stream, err)
		}
		p.opts.Logger.Info("nats: created the stream", "stream", p.opts.Stream, "subjects", subjects,
			"max_age", p.opts.MaxAge, "duplicate_window", p.opts.Duplicates)
		return nil
	}
	if err != nil {
		return fmt.Errorf("nats: look up stream %s: %w", p.opts.Stream, err)
	}
	cfg := s.CachedInfo().Config
	changed := false
	if !slices.Contains(cfg.Subjects, subjects) {
		cfg.Subjects = append(cfg.Subjects, subjects)
		changed = true
	}
	want := p.opts.Duplicates
	if cfg.MaxAge > 0 && cfg.MaxAge < want {
		want = cfg.MaxAge
	}
	if cfg.Duplicates < want {
		cfg.Duplicates = want
		changed = true
	}
	if !changed {
		return nil
	}
	if _, err := p.js.UpdateStream(ctx, cfg); err != nil {
		return fmt.Errorf("nats: update stream %s: %w", p.opts.Stream, err)
	}
	p.opts.Logger.Info("nats: updated the stream", "stream", p.opts.Stream, "subjects", cfg.Subjects, "duplicate_window", cfg.Duplicates)
	return nil
}
