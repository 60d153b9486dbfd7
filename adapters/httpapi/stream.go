package httpapi

import (
	"net/http"
	"sync"
	"time"

	"github.com/usersd/usersd/internal/positive"
)

// Streamed answers are written over a long time, as fast as the client
// reads them: the audit exports (NDJSON, CSV), and the event feed and the
// evidence exports to come. Every one follows the same rules, so that no
// number of slow or stalled clients can take the replica down:
//
//   - It holds no database connection while it waits on the client: its
//     producer reads a page, releases the connection, then writes (see
//     audit.Export). A stream holds a goroutine and about a page of memory.
//   - It takes a slot (openStream): at most StreamLimits.PerReplica streams
//     run in the replica and StreamLimits.PerCaller for one caller; beyond
//     that the request answers 429 too_many_requests with Retry-After.
//   - Its writes have a deadline renewed on progress: each write must be
//     taken by the client within StreamLimits.WriteTimeout, or the
//     connection is cut and the slot freed. This replaces the server's
//     write timeout, which bounds an ordinary answer as a whole (see
//     Timeouts). (The server's read timeout ends with the request's body:
//     net/http lifts it before the handler runs.)

// StreamLimits bounds the streamed answers of one replica. Zero fields take
// the defaults.
type StreamLimits struct {
	// PerReplica is how many streams may run at once (default 16).
	PerReplica int
	// PerCaller is how many of them one caller may run (default 2).
	PerCaller int
	// WriteTimeout is how long one write may wait for the client to take
	// it (default 30 s): a client that reads nothing for that long is cut
	// off.
	WriteTimeout time.Duration
}

// Defaults of StreamLimits.
const (
	DefaultStreamsPerReplica  = 16
	DefaultStreamsPerCaller   = 2
	DefaultStreamWriteTimeout = 30 * time.Second
)

// streamRetryAfter is the Retry-After of a stream refused for want of a
// slot: exports take seconds to minutes, and no one can say which ends
// first.
const streamRetryAfter = 10 * time.Second

func (l StreamLimits) withDefaults() StreamLimits {
	l.PerReplica = positive.Or(l.PerReplica, DefaultStreamsPerReplica)
	l.PerCaller = positive.Or(l.PerCaller, DefaultStreamsPerCaller)
	l.WriteTimeout = positive.Or(l.WriteTimeout, DefaultStreamWriteTimeout)
	return l
}

// streamSlots counts the streams running, in all and by caller.
type streamSlots struct {
	limits StreamLimits

	mu       sync.Mutex
	open     int
	byCaller map[string]int
}

func newStreamSlots(l StreamLimits) *streamSlots {
	return &streamSlots{limits: l, byCaller: make(map[string]int)}
}

// acquire takes a slot for caller, if one is free under both limits.
func (g *streamSlots) acquire(caller string) (release func(), ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.open >= g.limits.PerReplica || g.byCaller[caller] >= g.limits.PerCaller {
		return nil, false
	}
	g.open++
	g.byCaller[caller]++
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			defer g.mu.Unlock()
			g.open--
			if g.byCaller[caller]--; g.byCaller[caller] == 0 {
				delete(g.byCaller, caller)
			}
		})
	}, true
}

// stream is one streamed answer in progress; it is the io.Writer its
// producer writes to. The status and headers go out with the first byte,
// so that a producer failing before any output can still answer a problem.
type stream struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	header  func(http.Header)
	timeout time.Duration
	release func()

	// keepAlive: the server sets each request's write deadline (it has a
	// WriteTimeout), so the connection may serve another request after
	// the stream's deadline; else it closes after the stream.
	keepAlive bool
	started   bool
	// writeErr is the first write that failed: the client left or
	// stopped reading, which is no fault of ours.
	writeErr error
}

// takeSlot takes one of the slots of long reads (streams, and scans of a
// whole history such as a verify) for caller, or answers 429: such reads
// hold the database or a connection for long, and too many at once would
// starve every other request.
func (s *Server) takeSlot(caller string) (release func(), err error) {
	release, ok := s.streams.acquire(caller)
	if !ok {
		p := newProblem(codeTooManyRequests, "too many exports or verifications are running, yours or this server's; try again when one has finished")
		p.retryAt = time.Now().Add(streamRetryAfter)
		return nil, p
	}
	return release, nil
}

// openStream takes a stream slot for caller, or answers why it cannot
// (429). header sets
// the answer's headers when the first byte goes out. The caller must
// close the stream, and call finish once everything is written.
func (s *Server) openStream(w http.ResponseWriter, r *http.Request, caller string, header func(http.Header)) (*stream, error) {
	release, err := s.takeSlot(caller)
	if err != nil {
		return nil, err
	}
	rc := http.NewResponseController(w)
	srv, _ := r.Context().Value(http.ServerContextKey).(*http.Server)
	return &stream{
		w: w, rc: rc, header: header, timeout: s.cfg.Streams.WriteTimeout, release: release,
		keepAlive: srv != nil && srv.WriteTimeout > 0,
	}, nil
}

func (st *stream) start() {
	st.started = true
	st.header(st.w.Header())
	if !st.keepAlive {
		st.w.Header().Set("Connection", "close")
	}
	st.w.WriteHeader(http.StatusOK)
}

// Write sends b, which the client must take within the write timeout.
func (st *stream) Write(b []byte) (int, error) {
	if !st.started {
		st.start()
	}
	_ = st.rc.SetWriteDeadline(time.Now().Add(st.timeout))
	n, err := st.w.Write(b)
	if err != nil && st.writeErr == nil {
		st.writeErr = err
	}
	return n, err
}

// Flush sends what the server buffers, under the same deadline: a feed
// that waits for news flushes each line (or heartbeat) it writes.
func (st *stream) Flush() error {
	if !st.started {
		st.start()
	}
	_ = st.rc.SetWriteDeadline(time.Now().Add(st.timeout))
	err := st.rc.Flush()
	if err != nil && st.writeErr == nil {
		st.writeErr = err
	}
	return err
}

// finish ends a complete answer: the headers if nothing was written, and
// the last buffered bytes, still under the write timeout.
func (st *stream) finish() error {
	return st.Flush()
}

// close frees the slot. The write deadline stays, renewed once more: the
// server still writes the answer's last bytes after the handler, and a
// client that stalls then must not hold the connection forever.
func (st *stream) close() {
	_ = st.rc.SetWriteDeadline(time.Now().Add(st.timeout))
	st.release()
}

// abortStream ends a started stream that failed: too late for a problem,
// the connection is cut so that the client sees an incomplete transfer
// rather than a short, valid-looking answer. A client that left or stopped
// reading is no fault of ours (logged as information, not an error).
func (s *Server) abortStream(r *http.Request, st *stream, what string, err error) {
	if st.writeErr != nil || r.Context().Err() != nil {
		s.log.InfoContext(r.Context(), what+" ended: the client left or stopped reading", "request_id", requestID(r.Context()), "err", err)
	} else {
		s.log.ErrorContext(r.Context(), what+" failed midway", "request_id", requestID(r.Context()), "err", err)
	}
	panic(http.ErrAbortHandler)
}
