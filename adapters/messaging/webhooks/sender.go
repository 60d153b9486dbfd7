package webhooks

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/adapters/messaging"
	"github.com/usersd/usersd/domain"
	projwebhooks "github.com/usersd/usersd/projections/webhooks"
)

// queueOffsets acknowledges a batch by deleting the rows handled, and only
// those: watermill-sql's queue adapter deletes every row the batch read,
// also those a stop left unhandled, which would then never be delivered.
// Before it answers the acknowledgement, the attempts logged so far are
// written (flush): a delivery leaves the queue only once its log row says
// what became of it.
type queueOffsets struct {
	wsql.PostgreSQLQueueOffsetsAdapter
	flush func() error
}

func (a queueOffsets) AckMessageQuery(p wsql.AckMessageQueryParams) (wsql.Query, error) {
	if err := a.flush(); err != nil {
		return wsql.Query{}, fmt.Errorf("log the batch's attempts: %w", err)
	}
	var handled []int64
	for _, r := range p.Rows {
		if r.Offset <= p.LastRow.Offset {
			handled = append(handled, r.Offset)
		}
	}
	return wsql.Query{Query: `DELETE FROM ` + a.MessagesTable(p.Topic) + ` WHERE "offset" = ANY($1)`, Args: []any{handled}}, nil
}

// send runs the router until ctx ends: a subscriber and a handler per
// partition, each delivering its messages one after another.
func (s *Service) send(ctx context.Context) error {
	wlog := messaging.NewLogAdapter(s.opts.Logger)
	poisonPub, err := wsql.NewPublisher(wsql.BeginnerFromPgx(s.pool), wsql.PublisherConfig{SchemaAdapter: wsql.PostgreSQLQueueSchema{}}, wlog)
	if err != nil {
		return fmt.Errorf("webhook poison queue publisher: %w", err)
	}
	router, err := messaging.NewRouter(ctx, s.opts.Logger, s.log)
	if err != nil {
		return err
	}
	// Outermost first: a delivery that fails after the last try is logged
	// failed (giveUp), then kept in the poison queue and acknowledged, so
	// that the next one goes; a stop is neither.
	poison, err := messaging.PoisonQueue(poisonPub, PoisonTopic)
	if err != nil {
		return err
	}
	// A receiver's failures are no errors of usersd's: each retry is
	// logged at debug level; giving up is a warning (giveUp).
	retry := s.opts.Retry.Middleware(quietErrors{wlog})
	router.AddMiddleware(router.EndWith(), poison, s.sender.giveUp, retry, middleware.Recoverer)
	// The log of attempts outlives the router: the subscribers' last
	// acknowledgements, at the stop, flush it.
	logCtx, stopLog := context.WithCancel(context.WithoutCancel(ctx))
	logDone := make(chan struct{})
	go func() { defer close(logDone); s.sender.attempts.run(logCtx) }()
	defer func() { stopLog(); <-logDone }()
	// The subscribers have connections of their own: each holds one while
	// it delivers a batch, retries and their backoff included, and 16 of
	// them would otherwise starve the service's pool (the API's reads).
	subPool, err := subscriberPool(ctx, s.pool)
	if err != nil {
		return err
	}
	defer subPool.Close()
	for p := range Partitions {
		sub, err := wsql.NewSubscriber(wsql.BeginnerFromPgx(subPool), wsql.SubscriberConfig{
			BackoffManager: &idleBackoff{
				errors: wsql.NewDefaultBackoffManager(s.opts.PollInterval, time.Second),
				least:  s.opts.PollInterval, most: s.opts.IdlePollInterval,
			},
			// The Retry middleware waits between tries inside one
			// delivery: the deadline must outlast them all.
			AckDeadline:    messaging.Ptr(time.Hour),
			ResendInterval: time.Second,
			RetryInterval:  time.Second,
			SchemaAdapter:  newQueueSchema(p),
			OffsetsAdapter: queueOffsets{offsets, s.sender.attempts.flushWithin},
		}, wlog)
		if err != nil {
			return fmt.Errorf("webhook subscriber %d: %w", p, err)
		}
		router.AddConsumerHandler(fmt.Sprintf("webhook_sender_%d", p), Topic, router.Subscriber(sub), s.sender.Handle)
	}
	return router.Run(ctx)
}

// subscriberPool is a pool of a connection per partition, to the database
// of pool, as pool's role.
func subscriberPool(ctx context.Context, pool *pgxpool.Pool) (*pgxpool.Pool, error) {
	cfg := pool.Config().Copy()
	cfg.MaxConns, cfg.MinConns = Partitions, 0
	cfg.ConnConfig.RuntimeParams["application_name"] = "usersd webhook sender"
	p, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect the webhook sender: %w", err)
	}
	return p, nil
}

// idleBackoff is how often a partition looks for deliveries: at once while
// it finds some, then after least, doubling up to most while it finds none,
// so that 16 idle partitions cost 16 queries a second, not 160. A first
// delivery after a quiet while waits at most that long.
type idleBackoff struct {
	errors      wsql.BackoffManager
	least, most time.Duration
	idle        time.Duration
}

func (b *idleBackoff) HandleError(log watermill.LoggerAdapter, noMsg bool, err error) time.Duration {
	switch {
	case err != nil:
		b.idle = 0
		return b.errors.HandleError(log, noMsg, err)
	case !noMsg:
		b.idle = 0
		return 0
	}
	b.idle = min(max(2*b.idle, b.least), b.most)
	return b.idle
}

// quietErrors logs watermill's errors at debug level.
type quietErrors struct{ watermill.LoggerAdapter }

func (q quietErrors) Error(msg string, err error, f watermill.LogFields) {
	q.Debug(msg, f.Add(watermill.LogFields{"err": err}))
}

// sender delivers the queued deliveries.
type sender struct {
	pool     *pgxpool.Pool
	targets  *targets
	open     Opener
	client   *http.Client
	attempts *attemptLog
	now      func() time.Time
	log      *slog.Logger
}

// Opener opens the personal values of an event as the store keeps it
// (type, schema version, data): an erased person's come out empty, and
// the person is in the answer's Erased. usersd serve gives the event
// store's codec's.
type Opener func(ctx context.Context, typ string, version int, data []byte) (domain.RecordedEvent, error)

// Secrets answers a webhook's secret (keystore.WebhookSecrets).
type Secrets interface {
	Secret(ctx context.Context, webhook uuid.UUID) ([]byte, error)
}

func decode(msg *message.Message) (queued, error) {
	var q queued
	if err := json.Unmarshal(msg.Payload, &q); err != nil || q.Delivery == uuid.Nil || q.Webhook == uuid.Nil {
		return q, messaging.Permanent(fmt.Errorf("message %s is no webhook delivery", msg.UUID))
	}
	return q, nil
}

// failedDelivery is a delivery the receiver did not take.
type failedDelivery struct {
	status int // 0: no answer
	err    error
}

func (e *failedDelivery) Error() string {
	if e.status == 0 {
		return "no answer: " + e.err.Error()
	}
	return "answered " + strconv.Itoa(e.status)
}

// Handle is the router's handler: one attempt at a delivery. A webhook
// removed meanwhile is no failure: its delivery is dropped.
func (s *sender) Handle(msg *message.Message) error {
	ctx := msg.Context()
	q, err := decode(msg)
	if err != nil {
		return err
	}
	t, ok, err := s.targets.get(ctx, q.Webhook)
	if err != nil || !ok {
		return err
	}
	body, err := s.body(ctx, q)
	if err != nil {
		return err
	}
	started := s.now()
	status, err := s.post(ctx, t, q.EventID.String(), body)
	if ctx.Err() != nil {
		return ctx.Err() // a stop: the message comes back, nothing to log
	}
	delivered := err == nil && status >= 200 && status < 300
	s.attempts.record(projwebhooks.Attempt{Delivery: q.Delivery, Status: status, Delivered: delivered, At: started})
	if delivered {
		return nil
	}
	return &failedDelivery{status: status, err: err}
}

// body opens the queued event and builds what is POSTed.
func (s *sender) body(ctx context.Context, q queued) ([]byte, error) {
	pos, err := domain.ParsePosition(q.Position)
	if err != nil {
		return nil, messaging.Permanent(fmt.Errorf("delivery %s: %w", q.Delivery, err))
	}
	rec, err := s.open(ctx, q.Type, q.Version, q.Data)
	if err != nil {
		return nil, fmt.Errorf("open the event of delivery %s: %w", q.Delivery, err)
	}
	rec.Metadata.EventID, rec.Metadata.OccurredAt, rec.Position = q.EventID, q.OccurredAt, pos
	return Body(rec)
}

// maxAnswer bounds how much of an answer is read (and dropped), so that
// the connection can serve the next delivery.
const maxAnswer = 64 << 10

// post POSTs body, signed, to t's URL and answers the status.
func (s *sender) post(ctx context.Context, t target, id string, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, bytes.NewReader(body))
	if err != nil {
		return 0, messaging.Permanent(err)
	}
	now := s.now()
	h := req.Header
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "usersd-webhooks/1")
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	h.Set(HeaderSignature, Sign(t.secret, id, now, body))
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswer))
	return resp.StatusCode, nil
}

// giveUp is the middleware between the poison queue and Retry: a delivery
// that still fails after the last try is logged failed before the poison
// queue keeps it. A stop is no failure.
func (s *sender) giveUp(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		out, err := h(msg)
		if err == nil || msg.Context().Err() != nil {
			return out, err
		}
		q, derr := decode(msg)
		if derr != nil {
			return out, err
		}
		s.log.Warn("webhook: gave up on a delivery", "delivery", q.Delivery, "webhook", q.Webhook, "event", q.EventID, "err", err)
		ferr := s.attempts.flushWithin()
		if ferr == nil {
			ferr = projwebhooks.GaveUp(context.WithoutCancel(msg.Context()), s.pool, q.Delivery)
		}
		if ferr != nil {
			return out, errors.Join(err, ferr)
		}
		return out, err
	}
}

// newClient is the HTTP client of deliveries: it dials through the guard
// (every connection's address is checked, whatever the name resolved to),
// never through a proxy, follows no redirect (a 3xx is a failure), and
// gives up on a receiver after timeout.
func newClient(g Guard, timeout time.Duration, tlsCfg *tls.Config) *http.Client {
	dialer := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second, Control: g.Control}
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		TLSClientConfig:       tlsCfg,
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
		MaxIdleConns:          4 * Partitions,
		MaxIdleConnsPerHost:   Partitions,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	return &http.Client{
		Transport:     tr,
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// target is where a webhook delivers, and its secret.
type target struct {
	url    string
	secret []byte
	at     time.Time
}

// targetTTL is how long a webhook's target is trusted from memory: a
// removal stops its deliveries within it (the log then refuses the
// attempt too).
const targetTTL = time.Second

// targets remembers the webhooks' targets for targetTTL.
type targets struct {
	hooks   *projwebhooks.Queries
	secrets Secrets
	now     func() time.Time
	mu      sync.Mutex
	byID    map[uuid.UUID]target
}

// get answers webhook's target; false once it was removed.
func (t *targets) get(ctx context.Context, webhook uuid.UUID) (target, bool, error) {
	t.mu.Lock()
	c, ok := t.byID[webhook]
	t.mu.Unlock()
	if ok && t.now().Sub(c.at) < targetTTL {
		return c, true, nil
	}
	found, ok, err := t.hooks.Lookup(ctx, webhook)
	if err != nil || !ok {
		t.forget(webhook)
		return target{}, false, err
	}
	if c.secret == nil {
		if c.secret, err = t.secrets.Secret(ctx, webhook); err != nil {
			if _, still, lerr := t.hooks.Lookup(ctx, webhook); lerr == nil && !still {
				return target{}, false, nil // removed, secret and all, meanwhile
			}
			return target{}, false, err
		}
	}
	c.url, c.at = found.URL, t.now()
	t.mu.Lock()
	if len(t.byID) > 10_000 {
		clear(t.byID)
	}
	t.byID[webhook] = c
	t.mu.Unlock()
	return c, true, nil
}

func (t *targets) forget(webhook uuid.UUID) {
	t.mu.Lock()
	delete(t.byID, webhook)
	t.mu.Unlock()
}

// attemptLog records the sender's attempts in the delivery log, in the
// background: a partition goes on with its next delivery while the rows of
// the last ones are written, all the partitions' together (one statement
// for what came meanwhile). The acknowledgement of a batch waits for them
// (queueOffsets), so an acknowledged delivery always has its row.
type attemptLog struct {
	pool    *pgxpool.Pool
	mu      sync.Mutex
	pending []pendingAttempt
	wake    chan struct{}
}

// pendingAttempt is an attempt to write, or, with done set, a flush: done
// is told once every attempt recorded before it is written.
type pendingAttempt struct {
	attempt projwebhooks.Attempt
	done    chan error
}

func newAttemptLog(pool *pgxpool.Pool) *attemptLog {
	return &attemptLog{pool: pool, wake: make(chan struct{}, 1)}
}

func (l *attemptLog) push(p pendingAttempt) {
	l.mu.Lock()
	l.pending = append(l.pending, p)
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// record logs a, soon.
func (l *attemptLog) record(a projwebhooks.Attempt) { l.push(pendingAttempt{attempt: a}) }

// flushTimeout bounds a flush's wait (a database that does not answer):
// the batch is then not acknowledged, and comes back.
const flushTimeout = 30 * time.Second

// flushWithin waits until every attempt recorded so far is written.
func (l *attemptLog) flushWithin() error {
	done := make(chan error, 1)
	l.push(pendingAttempt{done: done})
	select {
	case err := <-done:
		return err
	case <-time.After(flushTimeout):
		return errors.New("the delivery log did not answer in time")
	}
}

// run writes what is recorded until ctx ends; what is pending then is not
// written, and its flushes fail.
func (l *attemptLog) run(ctx context.Context) {
	for {
		select {
		case <-l.wake:
		case <-ctx.Done():
			l.answer(l.take(), ctx.Err())
			return
		}
		batch := l.take()
		var attempts []projwebhooks.Attempt
		for _, p := range batch {
			if p.done == nil {
				attempts = append(attempts, p.attempt)
			}
		}
		var err error
		if len(attempts) > 0 {
			err = projwebhooks.Attempted(ctx, l.pool, attempts)
		}
		if err != nil {
			// Written with the next batch: a flush answers only once
			// everything before it is written.
			l.requeue(attempts)
		}
		l.answer(batch, err)
	}
}

// requeue puts attempts back ahead of what was recorded since.
func (l *attemptLog) requeue(attempts []projwebhooks.Attempt) {
	l.mu.Lock()
	defer l.mu.Unlock()
	again := make([]pendingAttempt, 0, len(attempts)+len(l.pending))
	for _, a := range attempts {
		again = append(again, pendingAttempt{attempt: a})
	}
	l.pending = append(again, l.pending...)
}

func (l *attemptLog) take() []pendingAttempt {
	l.mu.Lock()
	defer l.mu.Unlock()
	batch := l.pending
	l.pending = nil
	return batch
}

func (l *attemptLog) answer(batch []pendingAttempt, err error) {
	for _, p := range batch {
		if p.done != nil {
			p.done <- err
		}
	}
}
