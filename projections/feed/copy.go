package feed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections"
)

// Defaults of Query.
const (
	// DefaultHeartbeat is how long a followed feed stays silent at most:
	// api.md asks for a heartbeat line at least every 15 s, and this
	// leaves room for a slow write.
	DefaultHeartbeat = 10 * time.Second
	// DefaultBatchSize is how many events a feed reads at a time.
	DefaultBatchSize = 1000
	// MaxLimit is the largest Query.Limit a caller may ask for.
	MaxLimit = 1_000_000
)

// flushAt is how much a batch's lines may hold before they are written:
// writes go out in pieces of about this size.
const flushAt = 32 << 10

// Query is what a feed reads.
type Query struct {
	// After is the position the feed starts after (exclusive); the zero
	// Position starts at the beginning.
	After domain.Position
	// Filter selects the events written.
	Filter Filter
	// Limit ends the feed after this many events; zero: no limit.
	Limit int
	// Follow keeps the feed open at the end of the history: new events
	// are written as they come, each batch flushed, and a heartbeat line
	// (AppendHeartbeat) whenever nothing was written for Heartbeat.
	// Without Follow the feed ends at the end of the history as it stood
	// when the feed reached it.
	Follow bool
	// Heartbeat is a followed feed's longest silence; zero:
	// DefaultHeartbeat.
	Heartbeat time.Duration
	// Stop, when closed, ends a followed feed as if it had come to its
	// end: a last heartbeat with the position reached, then Copy returns
	// nil (a server that stops ends its feeds so).
	Stop <-chan struct{}
	// BatchSize is how many events are read at a time; zero:
	// DefaultBatchSize.
	BatchSize int
}

// Sink is where a feed writes its lines: Flush sends what it buffers.
type Sink interface {
	io.Writer
	Flush() error
}

// Result says how far a feed went.
type Result struct {
	// Events is how many event lines were written.
	Events int
	// Reached is the position read up to: every event up to it that the
	// filter keeps was written. A client resumes after it.
	Reached domain.Position
}

// Copy writes the lines of the events after q.After that q.Filter keeps,
// in global order, to out, until the end of the history (or, following,
// until ctx ends or q.Stop closes), or q.Limit events.
//
// Reading and writing take turns through a hand-over of one batch: the
// source reads the next batch (and releases what it read it with: a pooled
// database connection is held only during a read) while the lines of the
// last one are written, and it waits, holding nothing, while the client is
// slow. The source's error, or out's, is returned; ctx's end is returned as
// ctx.Err().
func Copy(ctx context.Context, src projections.Source, q Query, out Sink) (Result, error) {
	if q.Heartbeat <= 0 {
		q.Heartbeat = DefaultHeartbeat
	}
	if q.BatchSize <= 0 {
		q.BatchSize = DefaultBatchSize
	}
	res := Result{Reached: q.After}

	subCtx, cancel := context.WithCancel(ctx)
	batches := make(chan projections.Batch, 1)
	subErr := make(chan error, 1)
	go func() {
		subErr <- src.Subscribe(subCtx, q.After, q.BatchSize, func(ctx context.Context, b projections.Batch) error {
			select {
			case batches <- b:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	subscribed := true
	defer func() {
		cancel()
		if subscribed {
			<-subErr
		}
	}()

	var (
		heartbeat <-chan time.Time
		timer     *time.Timer
		stop      <-chan struct{} // only a followed feed stops early
	)
	if q.Follow {
		stop = q.Stop
		// The answer's headers go out now: a client following an idle
		// history learns at once that it is connected.
		if err := out.Flush(); err != nil {
			return res, err
		}
		timer = time.NewTimer(q.Heartbeat)
		defer timer.Stop()
		heartbeat = timer.C
	}
	w := lineWriter{out: out}
	for {
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-stop:
			w.buf = AppendHeartbeat(w.buf, res.Reached)
			return res, w.flush()
		case err := <-subErr:
			subscribed = false
			if ctx.Err() != nil {
				return res, ctx.Err()
			}
			if err == nil {
				err = errors.New("the subscription ended")
			}
			return res, fmt.Errorf("read the events after %s: %w", res.Reached, err)
		case <-heartbeat:
			w.buf = AppendHeartbeat(w.buf, res.Reached)
			if err := w.flush(); err != nil {
				return res, err
			}
			timer.Reset(q.Heartbeat)
		case b := <-batches:
			done, err := w.batch(b, q, &res)
			if err != nil {
				return res, err
			}
			if done || (!q.Follow && b.CaughtUp) {
				return res, w.flush()
			}
			// A followed feed flushes each batch that wrote something:
			// its client waits for it. Silence is the heartbeat's.
			if q.Follow && w.wrote {
				if err := w.flush(); err != nil {
					return res, err
				}
				timer.Reset(q.Heartbeat)
			}
		}
	}
}

// lineWriter gathers a batch's lines and writes them in pieces.
type lineWriter struct {
	out Sink
	buf []byte
	// wrote is set when a batch wrote a line.
	wrote bool
}

// batch writes the lines of b's events that q keeps, counting them in res,
// and moves res.Reached to the end of b (or to the last event written, at
// the limit). done is true at q.Limit.
func (w *lineWriter) batch(b projections.Batch, q Query, res *Result) (done bool, err error) {
	w.wrote = false
	for _, ev := range b.Events {
		if !q.Filter.Keeps(ev) {
			continue
		}
		if w.buf, err = AppendLine(w.buf, ev); err != nil {
			return false, err
		}
		w.wrote = true
		res.Events++
		if q.Limit > 0 && res.Events >= q.Limit {
			res.Reached = ev.Position
			return true, nil
		}
		if len(w.buf) >= flushAt {
			if err := w.write(); err != nil {
				return false, err
			}
		}
	}
	res.Reached = b.Checkpoint
	return false, w.write()
}

// write hands what is gathered to the sink.
func (w *lineWriter) write() error {
	if len(w.buf) == 0 {
		return nil
	}
	_, err := w.out.Write(w.buf)
	w.buf = w.buf[:0]
	return err
}

// flush writes what is gathered and flushes the sink.
func (w *lineWriter) flush() error {
	if err := w.write(); err != nil {
		return err
	}
	return w.out.Flush()
}
