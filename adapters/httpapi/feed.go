package httpapi

import (
	"compress/gzip"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/internal/positive"
	"github.com/usersd/usersd/projections/feed"
)

// The event feed, GET /v1/events: every event from a position, as NDJSON
// lines of projections/feed, read through Config.Events. It is a stream
// (stream.go): a slot, a write deadline renewed on progress, and no
// database connection held while the client reads (feed.Copy). A followed
// feed ends cleanly, with a last heartbeat, when the server shuts down
// (EndFeeds).

// GET /v1/events?after=&types=&workspace=&limit=&follow= (system or
// events:read).
func (s *Server) eventFeed(w http.ResponseWriter, r *http.Request, p principal) error {
	q, err := feedQuery(r.URL.Query())
	if err != nil {
		return err
	}
	q.Heartbeat = s.feedHeartbeat()
	q.Stop = s.feedsEnd
	zip := acceptsGzip(r.Header.Get("Accept-Encoding"))
	w.Header().Set("Vary", "Accept-Encoding")
	st, err := s.openStream(w, r, p.caller(), func(h http.Header) {
		h.Set("Content-Type", "application/x-ndjson")
		h.Set("Cache-Control", "no-store")
		// A proxy that buffers answers (nginx) would hold a followed
		// feed's lines back.
		h.Set("X-Accel-Buffering", "no")
		if zip {
			h.Set("Content-Encoding", "gzip")
		}
	})
	if err != nil {
		return err
	}
	defer st.close()
	out := feedSink{st: st}
	if zip {
		// The fastest level: a feed is read as fast as it is made, and
		// NDJSON compresses well even so.
		out.gz, _ = gzip.NewWriterLevel(st, gzip.BestSpeed)
	}
	if _, err := feed.Copy(r.Context(), s.cfg.Events, q, out); err != nil {
		if !st.started {
			return err
		}
		s.abortStream(r, st, "event feed", err)
	}
	if err := out.finish(); err != nil {
		s.abortStream(r, st, "event feed", err)
	}
	return nil
}

// feedQuery reads the feed's parameters; each bad one is a 400 naming it.
func feedQuery(v url.Values) (feed.Query, error) {
	var q feed.Query
	if raw := v.Get("after"); raw != "" {
		pos, err := domain.ParsePosition(raw)
		if err != nil {
			return q, invalidParam("after", "want a position as the API answers them, such as 1234-5 (the last one you read)")
		}
		q.After = pos
	}
	types, err := feed.ParseTypes(strings.Join(v["types"], ","))
	if err != nil {
		return q, paramProblem(err)
	}
	q.Filter.Types = types
	if raw := v.Get("workspace"); raw != "" {
		id, err := uuid.Parse(raw)
		if err != nil || len(raw) != 36 {
			return q, invalidParam("workspace", "want a workspace id (a UUID)")
		}
		q.Filter.Workspace = id
	}
	if q.Limit, err = queryLimit(v, feed.MaxLimit); err != nil {
		return q, err
	}
	switch v.Get("follow") {
	case "true":
		q.Follow = true
	case "false":
	default:
		if v.Has("follow") {
			return q, invalidParam("follow", "want true or false")
		}
	}
	return q, nil
}

// feedHeartbeat is a followed feed's longest silence: the configured one,
// and always well within the write timeout, which would otherwise cut an
// idle feed.
func (s *Server) feedHeartbeat() time.Duration {
	return min(positive.Or(s.cfg.FeedHeartbeat, feed.DefaultHeartbeat), s.cfg.Streams.WriteTimeout/2)
}

// EndFeeds ends every followed event feed, those running and those to
// come, with a last heartbeat: the position each client resumes from
// elsewhere. Call it when the server shuts down
// (http.Server.RegisterOnShutdown): a followed feed never ends otherwise,
// and Shutdown would wait for it. Calling it again does nothing.
func (s *Server) EndFeeds() {
	s.endFeedsOnce.Do(func() { close(s.feedsEnd) })
}

// acceptsGzip reports whether an Accept-Encoding header accepts gzip: named
// (or x-gzip) with a q above zero.
func acceptsGzip(header string) bool {
	for part := range strings.SplitSeq(header, ",") {
		coding, params, _ := strings.Cut(part, ";")
		coding = strings.ToLower(strings.TrimSpace(coding))
		if coding != "gzip" && coding != "x-gzip" {
			continue
		}
		name, value, _ := strings.Cut(strings.TrimSpace(params), "=")
		if strings.EqualFold(strings.TrimSpace(name), "q") {
			if q, err := strconv.ParseFloat(strings.TrimSpace(value), 64); err == nil && q <= 0 {
				return false
			}
		}
		return true
	}
	return false
}

// feedSink is what a feed writes to: the stream, through gzip when the
// client accepts it.
type feedSink struct {
	st *stream
	gz *gzip.Writer
}

func (f feedSink) Write(b []byte) (int, error) {
	if f.gz != nil {
		return f.gz.Write(b)
	}
	return f.st.Write(b)
}

// Flush sends everything written so far: a followed feed's client reads
// each batch as it comes.
func (f feedSink) Flush() error {
	if f.gz != nil {
		if err := f.gz.Flush(); err != nil {
			return err
		}
	}
	return f.st.Flush()
}

// finish ends the answer: gzip's trailer, then the last bytes.
func (f feedSink) finish() error {
	if f.gz != nil {
		if err := f.gz.Close(); err != nil {
			return err
		}
	}
	return f.st.finish()
}
