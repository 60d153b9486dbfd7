package messaging

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Router is a watermill router of consumers that stops cleanly: the
// mailer's, and the webhook sender's (adapters/messaging/webhooks).
//
// Its subscribers subscribe on a context of their own (Subscriber) and its
// handlers see their messages end with another (the middleware EndWith
// adds first), which Run ends in order at a stop. First the subscribers:
// they hand out no more messages and acknowledge, on a context still
// alive, the ones already handled. (With the router's context, ended by
// the stop, the acknowledgement failed: an ERROR line, and those messages
// handed out again after the restart.) Then the handlers' contexts end,
// and the router waits for them. A message in hand at the stop stays
// unacknowledged and comes back.
type Router struct {
	*message.Router
	log                        *slog.Logger
	subCtx, handlersCtx        context.Context
	cancelSubs, cancelHandlers context.CancelFunc
	subs                       []message.Subscriber
}

// NewRouter returns a router whose watermill logs go to base (as
// NewLogAdapter does) and its own warnings to log, and whose contexts
// outlive ctx's cancellation (Run ends them in order).
func NewRouter(ctx context.Context, base, log *slog.Logger) (*Router, error) {
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 10 * time.Second}, NewLogAdapter(base))
	if err != nil {
		return nil, err
	}
	r := &Router{Router: router, log: log}
	r.subCtx, r.cancelSubs = context.WithCancel(context.WithoutCancel(ctx))
	r.handlersCtx, r.cancelHandlers = context.WithCancel(context.WithoutCancel(ctx))
	return r, nil
}

// Subscriber is sub subscribing on the router's own context, closed by
// Run at the stop.
func (r *Router) Subscriber(sub message.Subscriber) message.Subscriber {
	r.subs = append(r.subs, sub)
	return ownContext{sub, r.subCtx}
}

// EndWith is the middleware that ends each message's context with the
// handlers' context: add it first (outermost).
func (r *Router) EndWith() message.HandlerMiddleware { return endWith(r.handlersCtx) }

// subscriberCloseTimeout bounds the wait for the subscribers to
// acknowledge what was handled at a stop (a database that does not answer).
const subscriberCloseTimeout = 5 * time.Second

// Run runs the router until ctx ends or it fails, then stops it cleanly.
// The subscribers are closed only once the router has subscribed every
// handler or given up: watermill-sql's Subscribe and Close race on the
// subscriber's state otherwise (a stop right after a start).
func (r *Router) Run(ctx context.Context) error {
	defer r.cancelSubs()
	defer r.cancelHandlers()
	runReturned := make(chan struct{})
	stop := sync.OnceFunc(func() {
		select {
		case <-r.Running():
		case <-runReturned:
		}
		r.stop()
	})
	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		<-runCtx.Done()
		stop()
	})
	err := r.Router.Run(runCtx)
	close(runReturned)
	cancel()
	stop()
	wg.Wait()
	return err
}

func (r *Router) stop() {
	closed := make(chan struct{})
	go func() {
		var wg sync.WaitGroup
		for _, sub := range r.subs {
			wg.Go(func() { _ = sub.Close() })
		}
		wg.Wait()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(subscriberCloseTimeout):
		r.log.Warn("the subscribers did not stop in time; their last acknowledgements are dropped")
		r.cancelSubs()
	}
	r.cancelHandlers()
	_ = r.Close()
}

// ownContext subscribes with its own context rather than the router's.
type ownContext struct {
	message.Subscriber
	ctx context.Context
}

func (o ownContext) Subscribe(_ context.Context, topic string) (<-chan *message.Message, error) {
	return o.Subscriber.Subscribe(o.ctx, topic)
}

// endWith ends each message's context when ctx ends too.
func endWith(ctx context.Context) message.HandlerMiddleware {
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			mctx, cancel := context.WithCancel(msg.Context())
			defer cancel()
			defer context.AfterFunc(ctx, cancel)()
			msg.SetContext(mctx)
			return h(msg)
		}
	}
}

// Ptr is a pointer to v: watermill's configurations take some durations so.
func Ptr[T any](v T) *T { return &v }
