package esdbtest

import (
	"context"
	"math"

	api "github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The page size of a subscription's catch-up reads and the size of its
// live buffer (KurrentDB's Enumerator.DefaultReadBatchSize and
// DefaultLiveBufferSize).
const (
	readBatchSize  = 32
	liveBufferSize = 32
)

// subscription is one catch-up subscription to $all, served as KurrentDB
// 24.10.5/25.1 and later serve it (Enumerator.AllSubscriptionFiltered and
// AllSubscription):
//
//   - confirmation first, then a catch-up that reads the log in pages of up
//     to 32 matching events and, with a filter, at most the search window
//     of records considered (matching or not);
//   - with a filter, a checkpoint whenever the records considered reach
//     the checkpoint interval (window × multiplier, as the client asks),
//     and one when the catch-up reaches the end. A catch-up checkpoint is
//     the last event sent or, after a page with no match, the start of
//     that page (prepare position 0): it lags the end of the log;
//   - caught-up at the end, then live events; while live, a checkpoint at
//     every interval-th record committed since the subscription started;
//   - when more than the live buffer (32 events) piled up since the
//     subscription last looked, it has fallen behind: a checkpoint, another
//     catch-up, and a second caught-up (the server sends no fell-behind);
//   - a follower serves it from its own copy, with its lag.
type subscription struct {
	s       *Server
	ctx     context.Context
	out     api.Streams_ReadServer
	match   func(*record) bool
	drop    chan struct{}
	pending error // an error the first page read answers

	filtered bool
	window   int // records considered per page
	interval int // records considered per checkpoint

	checkpoint     tfpos  // the last event or checkpoint sent on
	lastCheckpoint *tfpos // the last checkpoint message sent
	liveIndex      int    // the next log index to handle live
	liveCount      int    // events committed since the subscription started
}

func (s *Server) subscribe(o *api.ReadReq_Options_AllOptions, f *api.ReadReq_Options_FilterOptions, match func(*record) bool, out api.Streams_ReadServer) error {
	ctx := out.Context()
	sub := &subscription{s: s, ctx: ctx, out: out, match: match, window: math.MaxInt}
	if f != nil {
		sub.filtered = true
		sub.window = readBatchSize // the client's NoMaxSearchWindow
		if w, ok := f.GetWindow().(*api.ReadReq_Options_FilterOptions_Max); ok {
			sub.window = int(w.Max)
		}
		if sub.window == 0 || f.GetCheckpointIntervalMultiplier() == 0 {
			return status.Error(codes.Unknown, "Exception was thrown by handler.")
		}
		sub.interval = sub.window * int(f.GetCheckpointIntervalMultiplier())
	}

	st := s.st
	st.mu.Lock()
	if fault, ok := s.takeFaultLocked(OpSubscribe); ok {
		err := s.faultErrorLocked(ctx, fault)
		if fault == AccessDenied { // checked before anything is sent
			st.mu.Unlock()
			return err
		}
		sub.pending = err
	}
	s.subscriptions++
	sub.drop = s.drop
	v := st.visibleLocked(s)
	sub.liveIndex = v
	confirmed := st.lastIndexedLocked(v)
	st.mu.Unlock()

	if err := out.Send(&api.ReadResp{Content: &api.ReadResp_Confirmation{Confirmation: &api.ReadResp_SubscriptionConfirmation{
		SubscriptionId: uuid.NewString(),
	}}}); err != nil {
		return err
	}
	if sub.pending != nil {
		return sub.pending
	}

	switch {
	case o.GetStart() != nil:
		sub.checkpoint = headOfTf
	case o.GetEnd() != nil:
		sub.checkpoint = confirmed
	case o.GetPosition().GetCommitPosition() == math.MaxUint64 && o.GetPosition().GetPreparePosition() == math.MaxUint64:
		// (2^64-1, 2^64-1) is the server's Position.End: a subscription
		// from the checkpoint some versions sent (KDB-710) starts live at
		// the end, past everything not yet delivered.
		sub.checkpoint = confirmed
	default:
		p := o.GetPosition()
		sub.checkpoint = tfposOf(p.GetCommitPosition(), p.GetPreparePosition())
	}
	live := !sub.checkpoint.less(confirmed)
	for {
		if !live {
			if err := sub.catchUp(); err != nil {
				return err
			}
		}
		live = false
		if err := sub.goLive(); err != nil {
			return err
		}
	}
}

func (sub *subscription) send(m *api.ReadResp) error { return sub.out.Send(m) }

func (sub *subscription) sendEvent(r *record) error {
	sub.checkpoint = posOf(r)
	return sub.send(eventResp(r))
}

// sendCheckpoint sends a checkpoint unless it is the head of the log or
// not past the last one sent.
func (sub *subscription) sendCheckpoint(p tfpos) error {
	if p == headOfTf || (sub.lastCheckpoint != nil && !sub.lastCheckpoint.less(p)) {
		return nil
	}
	sub.lastCheckpoint = &p
	return sub.send(&api.ReadResp{Content: &api.ReadResp_Checkpoint_{Checkpoint: &api.ReadResp_Checkpoint{
		CommitPosition: uint64(p.commit), PreparePosition: uint64(p.prepare),
	}}})
}

func (sub *subscription) dropped() error {
	select {
	case <-sub.drop:
		return status.Error(codes.Unavailable, "esdbtest: subscription dropped")
	case <-sub.ctx.Done():
		return status.FromContextError(sub.ctx.Err()).Err()
	default:
		return nil
	}
}

// page is one catch-up read (KurrentDB's AllReader): from cur, up to 32
// matching events among at most window records considered; next is the
// position after the last record considered (prepare 0); end tells that
// it reached the end of the log.
type page struct {
	events     []*record
	considered int
	cur, next  tfpos
	end        bool
}

func (st *store) pageLocked(from tfpos, v, window int, match func(*record) bool) (page, error) {
	i, err := st.seekLocked(from, v)
	if err != nil {
		return page{}, err
	}
	p := page{cur: from, next: from}
	for len(p.events) < readBatchSize && p.considered < window {
		if i >= v {
			p.end = true
			break
		}
		r := st.log[i]
		i++
		if !r.event {
			continue
		}
		p.considered++
		if match(r) {
			p.events = append(p.events, r)
		}
		p.next = tfpos{int64(r.next()), 0}
	}
	return p, nil
}

// catchUp reads pages from the checkpoint to the end of the log.
func (sub *subscription) catchUp() error {
	st := sub.s.st
	counter := 0
	from := sub.checkpoint
	if from.commit < 0 && from.prepare < 0 {
		from = tfpos{0, 0}
	}
	for {
		if err := sub.dropped(); err != nil {
			return err
		}
		st.mu.Lock()
		_, err := sub.s.routeLocked(sub.ctx, false)
		var p page
		if err == nil {
			p, err = st.pageLocked(from, st.visibleLocked(sub.s), sub.window, sub.match)
		}
		st.mu.Unlock()
		if err != nil {
			return err
		}
		for _, r := range p.events {
			if !sub.checkpoint.less(posOf(r)) {
				continue // only the event the subscription started from
			}
			if err := sub.sendEvent(r); err != nil {
				return err
			}
		}
		if !sub.filtered {
			if p.end {
				return nil
			}
			from = p.next
			continue
		}
		if sub.checkpoint.less(p.cur) && p.cur.less(p.next) {
			sub.checkpoint = p.cur
		}
		counter += p.considered
		if p.end {
			if first := (tfpos{0, 0}); sub.checkpoint.less(first) && first.less(p.next) {
				sub.checkpoint = first
			}
			return sub.sendCheckpoint(sub.checkpoint)
		}
		if counter >= sub.interval {
			counter %= sub.interval
			if err := sub.sendCheckpoint(sub.checkpoint); err != nil {
				return err
			}
		}
		from = p.next
	}
}

// goLive sends caught-up, then what is committed, until the subscription
// falls behind (nil: catch up again), drops or ends.
func (sub *subscription) goLive() error {
	if err := sub.send(&api.ReadResp{Content: &api.ReadResp_CaughtUp_{CaughtUp: &api.ReadResp_CaughtUp{}}}); err != nil {
		return err
	}
	st := sub.s.st
	for {
		st.mu.Lock()
		v, changed := st.visibleLocked(sub.s), st.changed
		var items []*record
		for _, r := range st.log[min(sub.liveIndex, v):v] {
			if r.event {
				items = append(items, r)
			}
		}
		st.mu.Unlock()
		sub.liveIndex = max(sub.liveIndex, v)

		if len(items) > liveBufferSize {
			// The live buffer overflowed: the oldest were dropped. Catch up
			// from the last position sent; the newest stay buffered.
			dropped := len(items) - liveBufferSize
			sub.liveCount += dropped
			sub.liveIndex = items[dropped].index
			if sub.filtered {
				if err := sub.sendCheckpoint(sub.checkpoint); err != nil {
					return err
				}
			}
			return nil
		}
		for _, r := range items {
			sub.liveCount++
			if sub.checkpoint.less(posOf(r)) && sub.match(r) {
				if err := sub.sendEvent(r); err != nil {
					return err
				}
			}
			if sub.filtered && sub.liveCount%sub.interval == 0 {
				if cp := posOf(r); !cp.less(sub.checkpoint) {
					sub.checkpoint = cp
					if err := sub.sendCheckpoint(cp); err != nil {
						return err
					}
				}
			}
		}
		select {
		case <-sub.ctx.Done():
			return status.FromContextError(sub.ctx.Err()).Err()
		case <-sub.drop:
			return status.Error(codes.Unavailable, "esdbtest: subscription dropped")
		case <-changed:
		}
	}
}
