package benchmarks_test

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/adapters/eventstore"
	"github.com/usersd/usersd/domain"
)

// The rebuild benchmark replays a history a real service could have
// written: workspaces created, people invited (each new address first
// reserved in its account stream), e-mail outcomes, acceptances, role
// changes, suspensions, removals, resends, revocations, expiries, a few
// settings changes, and logins, by far the most frequent event, on each
// workspace's logins stream. A small simulation of every workspace's
// members keeps the events consistent (only a pending invitation is
// accepted, only a member logs in...), and workspaces differ in size the
// way real ones do: a few big ones, many small.

var (
	firstNames = strings.Fields("Ada Alan Anna Ben Carla Chen Dana Eli Emma Femi Grace Hugo Ines Ivan Jana Jon Kai Lea Liam Lina Maria Max Mia Nia Noah Olga Omar Pia Raj Rosa Sam Sara Tom Una Vera Wei Yara Yuki Zoe Zola")
	lastNames  = strings.Fields("Abe Baker Cohen Diaz Evans Fischer Garcia Hansen Ito Jones Kim Lopez Meyer Nagy Olsen Patel Quinn Rossi Silva Tanaka Ueda Varga Weber Xu Young Zhang")
	// invitedRoles is the spread of roles people are invited with.
	invitedRoles = []domain.Role{
		domain.RoleAgentUser, domain.RoleAgentUser, domain.RoleAgentUser, domain.RoleAgentUser,
		domain.RoleEditor, domain.RoleEditor, domain.RoleMonitor, domain.RoleMonitor, domain.RoleManager, domain.RoleAdmin,
	}
	userAgents = []string{
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/126.0",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) Safari/605.1.15",
		"Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Firefox/127.0",
	}
)

const invitationTTL = 7 * 24 * time.Hour

// person is a member or invitee of one simulated workspace.
type person struct {
	user        uuid.UUID
	email, name string
	role        domain.Role
	status      domain.Status
	// While invited: the invitation, its current attempt, whether that
	// attempt's e-mail outcome is recorded, and its expiry.
	inv       uuid.UUID
	attempt   int
	outcome   bool
	expiresAt time.Time
	expired   bool
	idx       int // in simWorkspace.people
}

type simWorkspace struct {
	id            uuid.UUID
	name          string
	owner         *person
	rev, loginRev uint64 // next revisions of its two streams
	people        []*person
	byUser        map[uuid.UUID]*person
	managersAdmin bool
}

func (w *simWorkspace) add(p *person) {
	p.idx = len(w.people)
	w.people = append(w.people, p)
	w.byUser[p.user] = p
}

func (w *simWorkspace) remove(p *person) {
	last := w.people[len(w.people)-1]
	w.people[p.idx], last.idx = last, p.idx
	w.people = w.people[:len(w.people)-1]
	delete(w.byUser, p.user)
}

// pick answers a random person for whom ok holds, or nil after a few
// tries: good enough to steer the mix, cheap for big workspaces.
func (w *simWorkspace) pick(r *rand.Rand, ok func(*person) bool) *person {
	for range 12 {
		if p := w.people[r.IntN(len(w.people))]; ok(p) {
			return p
		}
	}
	return nil
}

// storedEvent is one row of the events table: env until it is encoded
// (seedHistory encodes them in batches), data after.
type storedEvent struct {
	stream   string
	revision uint64
	env      domain.Envelope
	data     eventstore.EventData
}

// encoder turns a batch of events into what the store keeps, as
// eventstore.Codec.Encode does.
type encoder func(context.Context, ...domain.Envelope) ([]eventstore.EventData, error)

// history generates the events, in global order.
type history struct {
	r          *rand.Rand
	now        time.Time
	workspaces []*simWorkspace
	cumWeight  []float64 // for picking a workspace, skewed by size
	accounts   []*person // people with an account, for invitations across workspaces
	registered map[uuid.UUID]bool
	queue      []storedEvent
	seq        int
	// emitted counts the seeded events by type; bytes sums their data and
	// metadata sizes.
	emitted map[string]int
	bytes   int64
}

// mix describes the seeded events by type, "<type> <share of n>%", in the
// order of the types' names.
func (h *history) mix(n int) string {
	var mix []string
	types := domain.EventTypeNames()
	slices.Sort(types)
	for _, t := range types {
		if c := h.emitted[t]; c > 0 {
			mix = append(mix, fmt.Sprintf("%s %.1f%%", t, 100*float64(c)/float64(n)))
		}
	}
	return strings.Join(mix, ", ")
}

func newHistory(seed uint64, workspaces int) *history {
	return newShapedHistory(seed, workspaces, 10)
}

// newShapedHistory is newHistory with the i-th workspace's share of the
// events proportional to 1/(i+offset): the smaller offset, the bigger the
// biggest workspaces beside the rest.
func newShapedHistory(seed uint64, workspaces int, offset float64) *history {
	h := &history{
		r:          rand.New(rand.NewPCG(seed, 0x75736572)),
		now:        time.Date(2024, 1, 1, 8, 0, 0, 0, time.UTC),
		registered: make(map[uuid.UUID]bool),
		emitted:    make(map[string]int),
	}
	total := 0.0
	for i := range workspaces {
		// Zipf-like sizes: with offset 10 and 1,000 workspaces the biggest
		// sees ~100× the events of the smallest.
		total += 1 / (float64(i) + offset)
		h.cumWeight = append(h.cumWeight, total)
	}
	for i := range workspaces {
		h.createWorkspace(i)
	}
	return h
}

// next answers the next event of the history.
func (h *history) next() storedEvent {
	for len(h.queue) == 0 {
		h.step()
	}
	e := h.queue[0]
	h.queue = h.queue[1:]
	return e
}

func (h *history) id() uuid.UUID {
	var u uuid.UUID
	binary.LittleEndian.PutUint64(u[0:8], h.r.Uint64())
	binary.LittleEndian.PutUint64(u[8:16], h.r.Uint64())
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return u
}

// eventID makes a UUIDv7 on the simulated clock, as the service's ids are.
func (h *history) eventID() uuid.UUID {
	u := h.id()
	ms := uint64(h.now.UnixMilli())
	for i := range 6 {
		u[i] = byte(ms >> (40 - 8*i))
	}
	u[6] = u[6]&0x0f | 0x70
	return u
}

func (h *history) tokenHash() string {
	var b [32]byte
	for i := 0; i < 32; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], h.r.Uint64())
	}
	return hex.EncodeToString(b[:])
}

// meta makes the metadata of an event caused by actor (nil: the system).
func (h *history) meta(actor *person, correlation string) domain.Metadata {
	m := domain.Metadata{EventID: h.eventID(), SchemaVersion: domain.SchemaVersion, OccurredAt: h.now, CorrelationID: correlation}
	if actor == nil {
		m.Actor = domain.Actor{System: true}
		return m
	}
	m.Actor = domain.Actor{UserID: actor.user, Email: actor.email}
	return m
}

// withRequest adds what is known of the request, as for an invitee's
// acceptance through the web page.
func (h *history) withRequest(m domain.Metadata) domain.Metadata {
	m.Request = &domain.RequestContext{
		IP:        fmt.Sprintf("10.%d.%d.%d", h.r.IntN(256), h.r.IntN(256), 1+h.r.IntN(254)),
		UserAgent: userAgents[h.r.IntN(len(userAgents))],
	}
	return m
}

func (h *history) correlation() string { return fmt.Sprintf("c-%08x", h.r.Uint32()) }

func (h *history) emit(stream string, revision uint64, e domain.Event, meta domain.Metadata) {
	h.queue = append(h.queue, storedEvent{stream: stream, revision: revision, env: domain.Envelope{Event: e, Metadata: meta}})
}

func (h *history) emitWS(w *simWorkspace, e domain.Event, meta domain.Metadata) {
	h.emit(eventstore.WorkspaceStream(w.id), w.rev, e, meta)
	w.rev++
}

// byOwner emits e on w's stream as the owner's own action, in a
// correlation of its own.
func (h *history) byOwner(w *simWorkspace, e domain.Event) {
	h.emitWS(w, e, h.meta(w.owner, h.correlation()))
}

// newPerson makes someone with a fresh address and reserves it.
func (h *history) newPerson(correlation string, actor *person) *person {
	first, last := firstNames[h.r.IntN(len(firstNames))], lastNames[h.r.IntN(len(lastNames))]
	h.seq++
	p := &person{
		user:  h.id(),
		email: fmt.Sprintf("%s.%s.%d@%s.example.com", strings.ToLower(first), strings.ToLower(last), h.seq, strings.ToLower(last)),
		name:  first + " " + last,
	}
	h.emit(testCodec.AccountStream(domain.Email(p.email)), 0,
		domain.AccountRegistered{UserID: p.user, Email: p.email}, h.meta(actor, correlation))
	h.registered[p.user] = true
	h.accounts = append(h.accounts, p)
	return p
}

func (h *history) createWorkspace(i int) {
	c := h.correlation()
	owner := h.newPerson(c, nil)
	owner.role, owner.status = domain.RoleAdmin, domain.StatusActive
	w := &simWorkspace{
		id: h.id(), name: fmt.Sprintf("%s %s workspace %d", lastNames[i%len(lastNames)], firstNames[i%len(firstNames)], i),
		owner: owner, byUser: make(map[uuid.UUID]*person),
	}
	w.add(owner)
	h.workspaces = append(h.workspaces, w)
	h.emitWS(w, domain.WorkspaceCreated{
		WorkspaceID: w.id, Name: w.name, OwnerUserID: owner.user, OwnerEmail: owner.email,
		OwnerName: owner.name, CreatedAt: h.now,
	}, h.meta(nil, c))
}

func (h *history) pickWorkspace() *simWorkspace {
	x := h.r.Float64() * h.cumWeight[len(h.cumWeight)-1]
	lo, hi := 0, len(h.cumWeight)-1
	for lo < hi {
		mid := (lo + hi) / 2
		if h.cumWeight[mid] < x {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return h.workspaces[lo]
}

func otherRole(r *rand.Rand, from domain.Role) domain.Role {
	for {
		if to := invitedRoles[r.IntN(len(invitedRoles))]; to != from {
			return to
		}
	}
}

// step advances the clock and makes one thing happen in one workspace.
func (h *history) step() {
	h.now = h.now.Add(time.Duration(h.r.ExpFloat64() * float64(3*time.Second))).Truncate(time.Microsecond)
	w := h.pickWorkspace()
	r := h.r
	active := func(p *person) bool { return p.status == domain.StatusActive }
	invited := func(p *person) bool { return p.status == domain.StatusInvited }
	notOwner := func(ok func(*person) bool) func(*person) bool {
		return func(p *person) bool { return p != w.owner && ok(p) }
	}
	joined := func(p *person) bool { return p.status != domain.StatusInvited }
	suspended := func(p *person) bool { return p.status == domain.StatusSuspended }

	switch x := r.IntN(890); {
	case x < 420:
		h.login(w, w.pick(r, active))
	case x < 530:
		h.invite(w)
	case x < 630:
		if p := w.pick(r, func(p *person) bool { return invited(p) && !p.outcome }); p != nil {
			h.emailOutcome(w, p)
		} else {
			h.invite(w)
		}
	case x < 715:
		p := w.pick(r, func(p *person) bool { return invited(p) && !p.expired })
		switch {
		case p == nil:
			h.invite(w)
		case h.now.Before(p.expiresAt):
			h.accept(w, p)
		default:
			h.expire(w, p)
		}
	case x < 805:
		if p := w.pick(r, notOwner(joined)); p != nil {
			to := otherRole(r, p.role)
			h.byOwner(w, domain.RoleChanged{WorkspaceID: w.id, UserID: p.user, Email: p.email,
				FromRole: string(p.role), ToRole: string(to), ChangedBy: w.owner.user})
			p.role = to
		} else {
			h.invite(w)
		}
	case x < 830:
		if p := w.pick(r, notOwner(active)); p != nil {
			p.status = domain.StatusSuspended
			h.byOwner(w, domain.MemberSuspended{WorkspaceID: w.id, UserID: p.user, Email: p.email, Role: string(p.role)})
		} else {
			h.invite(w)
		}
	case x < 845:
		if p := w.pick(r, suspended); p != nil {
			p.status = domain.StatusActive
			h.byOwner(w, domain.MemberReactivated{WorkspaceID: w.id, UserID: p.user, Email: p.email, Role: string(p.role)})
		} else {
			h.login(w, w.pick(r, active))
		}
	case x < 865:
		if p := w.pick(r, notOwner(joined)); p != nil {
			w.remove(p)
			h.byOwner(w, domain.MemberRemoved{WorkspaceID: w.id, UserID: p.user, Email: p.email, Role: string(p.role)})
		} else {
			h.invite(w)
		}
	case x < 875:
		if p := w.pick(r, invited); p != nil {
			p.attempt++
			p.outcome, p.expired, p.expiresAt = false, false, h.now.Add(invitationTTL)
			h.byOwner(w, domain.InvitationResent{WorkspaceID: w.id, InvitationID: p.inv, UserID: p.user, Email: p.email,
				Attempt: p.attempt, ResentBy: w.owner.user, TokenHash: h.tokenHash(), ResentAt: h.now, ExpiresAt: p.expiresAt})
		} else {
			h.invite(w)
		}
	case x < 880:
		if p := w.pick(r, invited); p != nil {
			w.remove(p)
			h.byOwner(w, domain.InvitationRevoked{WorkspaceID: w.id, InvitationID: p.inv, UserID: p.user, Email: p.email, Role: string(p.role)})
		} else {
			h.invite(w)
		}
	case x < 888:
		// The expiry job marks the invitations whose time is up.
		if p := w.pick(r, func(p *person) bool { return invited(p) && !p.expired && !h.now.Before(p.expiresAt) }); p != nil {
			h.expire(w, p)
		} else {
			h.invite(w)
		}
	default:
		w.managersAdmin = !w.managersAdmin
		h.byOwner(w, domain.WorkspaceSettingsChanged{WorkspaceID: w.id, ManagersMayGrantAdmin: w.managersAdmin})
	}
}

func (h *history) login(w *simWorkspace, p *person) {
	if p == nil {
		p = w.owner
	}
	// The platform reports logins, as the system.
	h.emit(eventstore.LoginsStream(w.id), w.loginRev, domain.UserLoggedIn{WorkspaceID: w.id, UserID: p.user, LoggedInAt: h.now},
		h.meta(nil, ""))
	w.loginRev++
}

// invite invites someone new, or now and then someone who already has an
// account through another workspace.
func (h *history) invite(w *simWorkspace) {
	c := h.correlation()
	var p *person
	if len(h.accounts) > 100 && h.r.IntN(10) == 0 {
		a := h.accounts[h.r.IntN(len(h.accounts))]
		if _, member := w.byUser[a.user]; !member {
			p = &person{user: a.user, email: a.email, name: a.name}
		}
	}
	if p == nil {
		p = h.newPerson(c, w.owner)
	}
	p.role, p.status = invitedRoles[h.r.IntN(len(invitedRoles))], domain.StatusInvited
	p.inv, p.attempt, p.outcome, p.expired, p.expiresAt = h.id(), 1, false, false, h.now.Add(invitationTTL)
	w.add(p)
	h.emitWS(w, domain.UserInvited{
		WorkspaceID: w.id, InvitationID: p.inv, UserID: p.user, Email: p.email, Role: string(p.role),
		InvitedBy: w.owner.user, InviterRole: string(domain.RoleAdmin), TokenHash: h.tokenHash(),
		InvitedAt: h.now, ExpiresAt: p.expiresAt,
	}, h.meta(w.owner, c))
}

func (h *history) emailOutcome(w *simWorkspace, p *person) {
	p.outcome = true
	if h.r.IntN(20) == 0 {
		h.emitWS(w, domain.InvitationEmailFailed{WorkspaceID: w.id, InvitationID: p.inv, UserID: p.user, Attempt: p.attempt,
			Reason: "550 5.1.1 mailbox unavailable"}, h.meta(nil, h.correlation()))
		return
	}
	h.emitWS(w, domain.InvitationEmailSent{WorkspaceID: w.id, InvitationID: p.inv, UserID: p.user, Attempt: p.attempt},
		h.meta(nil, h.correlation()))
}

func (h *history) accept(w *simWorkspace, p *person) {
	inv := p.inv
	p.status, p.inv = domain.StatusActive, uuid.Nil
	h.emitWS(w, domain.InvitationAccepted{WorkspaceID: w.id, InvitationID: inv, UserID: p.user,
		Email: p.email, Name: p.name, Role: string(p.role), AcceptedAt: h.now}, h.withRequest(h.meta(p, h.correlation())))
}

func (h *history) expire(w *simWorkspace, p *person) {
	p.expired = true
	h.emitWS(w, domain.InvitationExpired{WorkspaceID: w.id, InvitationID: p.inv, UserID: p.user, Email: p.email,
		ExpiredAt: h.now}, h.meta(nil, h.correlation()))
}

// seedHistory writes n events of a fresh history straight into the events
// table: binary COPY in transactions of perTx events, each generated while
// the previous ones stream to the server. tx_id and position take their
// defaults, so the global order is the order of generation. Events are
// encoded with testCodec. It answers the generator, for its statistics.
func seedHistory(tb testing.TB, ctx context.Context, pool *pgxpool.Pool, n, workspaces, perTx int) *history {
	tb.Helper()
	return seedHistoryWith(tb, ctx, pool, n, workspaces, perTx, testCodec.Encode)
}

// encodeBatch is how many events seedHistoryWith encodes at a time: one
// round trip to a keyring in the database per batch.
const encodeBatch = 1000

// seedHistoryWith is seedHistory with the events encoded by encode, a
// batch at a time. The same arguments give the same events whatever
// encode does.
func seedHistoryWith(tb testing.TB, ctx context.Context, pool *pgxpool.Pool, n, workspaces, perTx int, encode encoder) *history {
	tb.Helper()
	h := newHistory(1, workspaces)
	seedFrom(tb, ctx, pool, h, n, perTx, encode)
	return h
}

// seedFrom writes the next n events of h as seedHistoryWith does.
func seedFrom(tb testing.TB, ctx context.Context, pool *pgxpool.Pool, h *history, n, perTx int, encode encoder) {
	tb.Helper()
	var encoded []storedEvent
	next := func() (storedEvent, error) {
		if len(encoded) == 0 {
			encoded = make([]storedEvent, 0, encodeBatch)
			envs := make([]domain.Envelope, 0, encodeBatch)
			for range encodeBatch {
				e := h.next()
				encoded = append(encoded, e)
				envs = append(envs, e.env)
			}
			data, err := encode(ctx, envs...)
			if err != nil {
				return storedEvent{}, err
			}
			for i := range encoded {
				encoded[i].data = data[i]
			}
		}
		// Counted as seeded: the last batch may be encoded beyond n.
		e := encoded[0]
		encoded = encoded[1:]
		h.emitted[domain.EventName(e.env.Event)]++
		h.bytes += int64(len(e.data.Data) + len(e.data.Metadata))
		return e, nil
	}
	cols := []string{"event_id", "stream_id", "revision", "type", "data", "metadata"}
	for done := 0; done < n; {
		chunk := min(perTx, n-done)
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SET LOCAL synchronous_commit = off"); err != nil {
				return err
			}
			i := 0
			row := make([]any, len(cols))
			copied, err := tx.CopyFrom(ctx, pgx.Identifier{"events"}, cols, pgx.CopyFromFunc(func() ([]any, error) {
				if i == chunk {
					return nil, nil
				}
				i++
				e, err := next()
				if err != nil {
					return nil, err
				}
				row[0] = pgtype.UUID{Bytes: e.data.ID, Valid: true}
				row[1], row[2], row[3] = e.stream, int64(e.revision), e.data.Type
				row[4], row[5] = e.data.Data, e.data.Metadata
				return row, nil
			}))
			if err == nil && copied != int64(chunk) {
				err = fmt.Errorf("copied %d events, want %d", copied, chunk)
			}
			return err
		})
		if err != nil {
			tb.Fatalf("seed events %d..%d: %v", done, done+chunk, err)
		}
		done += chunk
	}
	for _, sql := range []string{"VACUUM (ANALYZE) events", "CHECKPOINT"} {
		if _, err := pool.Exec(ctx, sql); err != nil {
			tb.Fatalf("%s: %v", sql, err)
		}
	}
}
