package messaging

import (
	"context"
	"fmt"
	"sync"

	"github.com/google/uuid"

	"github.com/usersd/usersd/commands"
)

// composer lets the partitions' handlers share reads of a workspace: while
// one read of a workspace runs, the handlers that need the same workspace
// gather for the next one. A batch invitation (one workspace, many e-mails)
// then costs one aggregate read for several e-mails instead of one each,
// all queued behind the aggregate's lock.
type composer struct {
	h      commands.Handler[commands.ComposeInvitationEmails, []commands.ComposedInvitationEmail]
	log    *deliveryLog
	mu     sync.Mutex
	queues map[uuid.UUID]*composeQueue
}

// composeQueue is a workspace whose read runs; next gathers the requests
// for the read after it.
type composeQueue struct{ next []composeRequest }

type composeRequest struct {
	ctx   context.Context
	cmd   commands.SendInvitationEmail
	reply chan composed
}

type composed struct {
	// done is true when the delivery log has the attempt already: a
	// redelivery, to send nothing.
	done bool
	mail commands.InvitationEmail
	err  error
}

func newComposer(h commands.Handler[commands.ComposeInvitationEmails, []commands.ComposedInvitationEmail], log *deliveryLog) *composer {
	return &composer{h: h, log: log, queues: map[uuid.UUID]*composeQueue{}}
}

// compose answers whether the attempt is in the delivery log already and,
// if not, its e-mail as commands.ComposeInvitationEmails composes it.
func (c *composer) compose(ctx context.Context, cmd commands.SendInvitationEmail) (bool, commands.InvitationEmail, error) {
	req := composeRequest{ctx: ctx, cmd: cmd, reply: make(chan composed, 1)}
	ws := cmd.WorkspaceID
	c.mu.Lock()
	if q, busy := c.queues[ws]; busy {
		q.next = append(q.next, req)
		c.mu.Unlock()
	} else {
		c.queues[ws] = &composeQueue{}
		c.mu.Unlock()
		go c.serve(ws, []composeRequest{req})
	}
	select {
	case x := <-req.reply:
		return x.done, x.mail, x.err
	case <-ctx.Done():
		return false, commands.InvitationEmail{}, ctx.Err()
	}
}

// serve reads workspace ws for batch, then for whoever gathered meanwhile,
// until no one waits.
func (c *composer) serve(ws uuid.UUID, batch []composeRequest) {
	for len(batch) > 0 {
		cmds := make([]commands.SendInvitationEmail, len(batch))
		for i, r := range batch {
			cmds[i] = r.cmd
		}
		// The first request's context: a stop ends them all alike. The
		// delivery log is read meanwhile: two round trips at once.
		ctx := batch[0].ctx
		type logged struct {
			done []bool
			err  error
		}
		ch := make(chan logged, 1)
		go func() {
			done, err := c.log.done(ctx, cmds)
			ch <- logged{done, err}
		}()
		mails := c.handleMany(ctx, ws, cmds)
		l := <-ch
		for i, r := range batch {
			switch {
			case l.err != nil:
				r.reply <- composed{err: l.err}
			case l.done[i]:
				r.reply <- composed{done: true}
			default:
				r.reply <- composed{mail: mails[i].Mail, err: mails[i].Err}
			}
		}
		c.mu.Lock()
		q := c.queues[ws]
		batch, q.next = q.next, nil
		if len(batch) == 0 {
			delete(c.queues, ws)
		}
		c.mu.Unlock()
	}
}

// handleMany composes cmds, one answer each (each carries the error of
// reading the workspace, if any), with a panic turned into errors: it runs
// on a goroutine of its own, out of the router's Recoverer's reach.
func (c *composer) handleMany(ctx context.Context, ws uuid.UUID, cmds []commands.SendInvitationEmail) (mails []commands.ComposedInvitationEmail) {
	defer func() {
		if p := recover(); p != nil {
			mails = make([]commands.ComposedInvitationEmail, len(cmds))
			for i := range mails {
				mails[i].Err = fmt.Errorf("compose panicked: %v", p)
			}
		}
	}()
	mails, _ = c.h.Handle(ctx, commands.ComposeInvitationEmails{WorkspaceID: ws, Emails: cmds})
	return mails
}
