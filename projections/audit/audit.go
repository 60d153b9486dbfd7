// Package audit is the audit history read model: one immutable,
// hash-chained entry per workspace event (every event but AccountRegistered
// and AccountDeleted, which belong to no workspace), which compliance
// auditors read, verify and export.
//
// Entries live in audit_entries (tables.sql, beside this file), which the
// database keeps append-only: triggers refuse UPDATE, DELETE and TRUNCATE
// to everyone. Each workspace has its own chain: seq counts 1, 2, 3... in
// global event order, and
//
//	hash = hex(sha256(prev_hash || canonical content))
//
// where prev_hash is the previous entry's hash ("" for the first) and the
// canonical content encodes every stored column but the hashes, in a fixed
// order: "usersd.audit.v1\n", then per column "<byte length>:<value>\n", or
// "-\n" for NULL (see appendCanonical). UUIDs are lower-case, times UTC RFC
// 3339 with nine fractional digits (stored with PostgreSQL's microseconds),
// details the canonical JSON of appendDetails (keys sorted, no spaces).
// The same events give the same hashes, whichever database, schema or batch
// sizes they are applied with, and the exports carry every field in that
// form, so an auditor can recompute a chain without us. Verify recomputes it
// in the database and names the first entry that does not match.
//
// Decisions the API relies on:
//   - List pages newest first (keyset on seq); Export streams oldest first,
//     the order in which a chain is checked, and ignores Limit and Cursor.
//   - From is inclusive, To exclusive.
//   - Actor and target are as they were: the actor from the event's
//     metadata, the target from the event, or, for events that carry no
//     address (InvitationEmailSent/Failed, UserLoggedIn), the last address
//     the projection saw for that user in that workspace.
//   - Details never hold secrets (no token hashes).
//   - Entries hold the events as stored (RecordedEvent.Stored): personal
//     values sealed for their person, and the hash covers the sealed
//     strings, so verifying needs no key and destroying a person's key
//     (their account's deletion) erases their values without changing a
//     byte of the chain. Readers open values with a keyring (open.go).
//     AccountDeleted has no entry; it purges the person's remembered
//     addresses.
//   - Text PostgreSQL cannot store (NUL characters, invalid UTF-8) is stored
//     with U+FFFD in their place rather than stopping the projection.
package audit

import (
	"context"
	"embed"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections"
)

// Projection builds the audit history.
type Projection struct{ projections.Declaration }

// New returns the audit projection: its tables, their keys and append-only
// triggers, and apart the filter indexes of audit_entries (actor, target,
// action, time), which a rebuild builds after its replay. Apply needs none
// of those: it reads through the primary key and the event_id key (and
// audit_user_emails_user_idx, in tables.sql, to purge a deleted account).
func New() *Projection {
	return &Projection{projections.Declare("audit", []string{"audit_entries", "audit_user_emails"},
		projections.SchemaFiles(sqlFiles), handling)}
}

// sqlFiles are the tables' DDL (tables.sql, indexes.sql).
//
//go:embed *.sql
var sqlFiles embed.FS

// candidate is an event of the batch that gets an entry unless it is
// already stored.
type candidate struct {
	rec *domain.RecordedEvent
	// env is the event as stored (storedOf): what the entry holds.
	env *domain.Envelope
	d   description
}

type userKey struct{ workspaceID, userID uuid.UUID }

// chainHead is where a workspace's chain stands: its last entry's seq and
// hash, and the position of the event it records.
type chainHead struct {
	seq      int64
	hash     string
	position domain.Position
}

// Apply appends an entry per workspace event of the batch, in order:
//
//  1. one round trip reads the chain head of each of the batch's
//     workspaces (its last entry, through the primary key) and the last
//     known address of each (workspace, user) whose event carries none;
//  2. only if some event lies at or before its workspace's head (a replay:
//     events come in global order, so the usual batch has none), a second
//     one looks those events up by id;
//  3. one binary COPY streams the new entries, each built and chained as
//     the previous ones are sent, so Go's work overlaps the server's;
//  4. one statement stores the addresses learnt, if any.
//
// An event already stored is skipped whole: it takes no seq, moves no chain
// and changes no address, so replaying a batch is a no-op. Should another
// writer store one of the events meanwhile (the runner's lock makes that a
// bug), the COPY fails on the event_id key and the batch is rolled back,
// rather than leaving a gap or a fork in the chain.
func (*Projection) Apply(ctx context.Context, tx pgx.Tx, events []domain.RecordedEvent) error {
	cands, err := candidates(events)
	if err != nil || len(cands) == 0 {
		return err
	}
	st, err := load(ctx, tx, cands)
	if err != nil {
		return err
	}
	if err := st.insert(ctx, tx, cands); err != nil {
		return err
	}
	if err := purgeEmails(ctx, tx, st.purged); err != nil {
		return err
	}
	return storeEmails(ctx, tx, st.learnt)
}

// candidates are the events of the batch that get an entry, described.
func candidates(events []domain.RecordedEvent) ([]candidate, error) {
	cands := make([]candidate, 0, len(events))
	for i := range events {
		rec := &events[i]
		env := storedOf(rec)
		ok, err := handling.Applied(env.Event)
		var d description
		if ok {
			d, err = describe(env.Event)
		}
		if err != nil {
			return nil, fmt.Errorf("audit: event %s at %s: %w", env.Metadata.EventID, rec.Position, err)
		}
		if !ok {
			continue
		}
		if _, _, err := projections.PositionColumns(rec.Position); err != nil {
			return nil, fmt.Errorf("audit: event %s: %w", env.Metadata.EventID, err)
		}
		cands = append(cands, candidate{rec: rec, env: env, d: d})
	}
	return cands, nil
}

// insert COPYs the entries of the candidates not stored yet, chained from
// st's heads, which it moves on, with the addresses it learns and purges.
func (st *state) insert(ctx context.Context, tx pgx.Tx, cands []candidate) error {
	src := &entrySource{cands: cands, st: st, idx: -1}
	tag, err := tx.Conn().PgConn().CopyFrom(ctx, &copyStream{next: src.nextRow}, copyEntries)
	if err != nil {
		return fmt.Errorf("audit: insert entries: %w", err)
	}
	if n := tag.RowsAffected(); n != int64(src.added) {
		return fmt.Errorf("audit: inserted %d entries, want %d", n, src.added)
	}
	return nil
}

// storedOf answers the event as the store keeps it, personal values
// sealed: what an entry copies and hashes, so that the history holds no
// personal value in clear and its hashes never need a key to check. A zero
// Stored is an event from a source that fills only Envelope (a store or a
// test from before sealing, whose values are plain anyway): its Envelope is
// then what was stored.
func storedOf(rec *domain.RecordedEvent) *domain.Envelope {
	if rec.Stored.Event == nil {
		return &rec.Envelope
	}
	return &rec.Stored
}

// state is what Apply knows beyond the batch, and what it changes.
type state struct {
	stored map[uuid.UUID]struct{}
	heads  map[uuid.UUID]chainHead
	emails map[userKey]string
	// learnt holds the addresses the batch set, the last one per key.
	learnt map[userKey]string
	// purged are the people whose accounts the batch deleted: their
	// addresses go, in every workspace.
	purged []uuid.UUID
	// workspaces, if set, lists the workspaces where each person has an
	// address in emails (maybe twice, or purged since), so that a purge
	// need not look through every address: a rebuild's emails hold them
	// all (replay.go). Apply's hold the batch's only, and leave it nil.
	workspaces map[uuid.UUID][]uuid.UUID
}

// entrySource yields the batch's new entries one at a time, building and
// chaining each as the COPY asks for it (see copyStream).
type entrySource struct {
	cands []candidate
	st    *state
	idx   int
	added int
	r     row
	buf   []byte
}

// next makes the next new entry in s.r; false at the end.
func (s *entrySource) next() bool {
	for s.idx++; s.idx < len(s.cands); s.idx++ {
		c := s.cands[s.idx]
		if c.d.purge != uuid.Nil {
			s.st.purge(c.d.purge)
			continue
		}
		id := c.env.Metadata.EventID
		if _, dup := s.st.stored[id]; dup {
			continue
		}
		s.st.stored[id] = struct{}{} // the same event twice in one batch
		s.build(c)
		s.added++
		return true
	}
	return false
}

// purge forgets user's addresses: those loaded and those the batch learnt
// so far (an address learnt later in the batch is a new one, and stays).
func (st *state) purge(user uuid.UUID) {
	if st.workspaces != nil {
		for _, ws := range st.workspaces[user] {
			delete(st.emails, userKey{ws, user})
		}
		delete(st.workspaces, user)
	} else {
		for k := range st.emails {
			if k.userID == user {
				delete(st.emails, k)
			}
		}
	}
	for k := range st.learnt {
		if k.userID == user {
			delete(st.learnt, k)
		}
	}
	st.purged = append(st.purged, user)
}

// nextRow makes the next new entry and answers it; nil at the end.
func (s *entrySource) nextRow() *row {
	if !s.next() {
		return nil
	}
	return &s.r
}

// build makes the entry of c in s.r and moves its chain.
func (s *entrySource) build(c candidate) {
	rec, d, st := c.rec, c.d, s.st
	key := userKey{d.workspaceID, d.targetID}
	targetEmail := d.targetEmail
	if d.lookup {
		targetEmail = st.emails[key]
	} else if d.targetID != uuid.Nil && d.targetEmail != "" {
		e := clean(d.targetEmail)
		if old, had := st.emails[key]; old != e {
			if !had && st.workspaces != nil {
				st.workspaces[key.userID] = append(st.workspaces[key.userID], key.workspaceID)
			}
			st.emails[key] = e
			st.learnt[key] = e
		}
	}
	fill(&s.r, c.env, rec.Position, d, targetEmail)
	h := st.heads[d.workspaceID]
	s.r.seq = h.seq + 1
	s.r.prevHash = h.hash
	s.r.hash, s.buf = computeHash(s.buf, s.r.prevHash, &s.r)
	st.heads[d.workspaceID] = chainHead{seq: s.r.seq, hash: s.r.hash, position: rec.Position}
}

// fill sets every column of r but seq and the hashes from the event as
// stored.
func fill(r *row, env *domain.Envelope, pos domain.Position, d description, targetEmail string) {
	m := &env.Metadata
	*r = row{
		workspaceID: pgUUID(d.workspaceID),
		eventID:     pgUUID(m.EventID),
		// PostgreSQL keeps microseconds; hash what is stored.
		occurredAt:      m.OccurredAt.UTC().Truncate(time.Microsecond),
		actorID:         pgUUID(m.Actor.UserID),
		actorEmail:      pgText(m.Actor.Email),
		actorSystem:     m.Actor.System,
		action:          domain.EventName(env.Event),
		targetID:        pgUUID(d.targetID),
		targetEmail:     pgText(targetEmail),
		details:         appendDetails(r.details[:0], d.details),
		correlationID:   pgText(m.CorrelationID),
		causationID:     pgText(m.CausationID),
		commitPosition:  int64(pos.Commit),
		preparePosition: int64(pos.Prepare),
	}
	if m.Request != nil {
		r.requestIP = pgText(m.Request.IP)
		r.requestUserAgent = pgText(m.Request.UserAgent)
	}
}

// pgUUID maps uuid.Nil to NULL.
func pgUUID(u uuid.UUID) pgtype.UUID { return pgtype.UUID{Bytes: u, Valid: u != uuid.Nil} }

// pgText maps "" to NULL and makes the rest storable.
func pgText(s string) pgtype.Text { return pgtype.Text{String: clean(s), Valid: s != ""} }

// load reads the chain heads of the candidates' workspaces, the last known
// address of every (workspace, user) whose event carries none, and which
// candidates are stored already. Every look-up is a LATERAL ... LIMIT 1,
// which keeps it a probe of an index per key: the planner cannot turn it
// into a join over a whole table, whatever its statistics say.
func load(ctx context.Context, tx pgx.Tx, cands []candidate) (*state, error) {
	st := &state{
		stored: make(map[uuid.UUID]struct{}),
		heads:  make(map[uuid.UUID]chainHead),
		emails: make(map[userKey]string),
		learnt: make(map[userKey]string),
	}
	var wsIDs, lookWS, lookUser []pgtype.UUID
	seenWS := make(map[uuid.UUID]struct{})
	seenLook := make(map[userKey]struct{})
	for _, c := range cands {
		if c.d.purge != uuid.Nil {
			continue
		}
		if _, ok := seenWS[c.d.workspaceID]; !ok {
			seenWS[c.d.workspaceID] = struct{}{}
			wsIDs = append(wsIDs, pgUUID(c.d.workspaceID))
		}
		k := userKey{c.d.workspaceID, c.d.targetID}
		if _, ok := seenLook[k]; c.d.lookup && !ok {
			seenLook[k] = struct{}{}
			lookWS = append(lookWS, pgUUID(k.workspaceID))
			lookUser = append(lookUser, pgUUID(k.userID))
		}
	}

	var b pgx.Batch
	b.Queue(`SELECT w.id, e.seq, e.hash, e.commit_position, e.prepare_position
		FROM unnest($1::uuid[]) AS w(id)
		CROSS JOIN LATERAL (
			SELECT seq, hash, commit_position, prepare_position FROM audit_entries
			WHERE workspace_id = w.id ORDER BY seq DESC LIMIT 1) e`, wsIDs)
	if len(lookWS) > 0 {
		b.Queue(`SELECT k.workspace_id, k.user_id, e.email
			FROM unnest($1::uuid[], $2::uuid[]) AS k(workspace_id, user_id)
			CROSS JOIN LATERAL (
				SELECT email FROM audit_user_emails
				WHERE workspace_id = k.workspace_id AND user_id = k.user_id LIMIT 1) e`, lookWS, lookUser)
	}
	br := tx.SendBatch(ctx, &b)
	defer br.Close()
	var ws, user uuid.UUID
	var h chainHead
	var commit, prepare int64
	if err := collect(br, []any{&ws, &h.seq, &h.hash, &commit, &prepare}, func() {
		h.position = domain.Position{Commit: uint64(commit), Prepare: uint64(prepare)}
		st.heads[ws] = h
	}); err != nil {
		return nil, fmt.Errorf("audit: read chain heads: %w", err)
	}
	if len(lookWS) > 0 {
		var email string
		if err := collect(br, []any{&ws, &user, &email}, func() { st.emails[userKey{ws, user}] = email }); err != nil {
			return nil, fmt.Errorf("audit: read e-mail addresses: %w", err)
		}
	}
	if err := br.Close(); err != nil {
		return nil, fmt.Errorf("audit: read chain heads: %w", err)
	}

	return st, st.loadStored(ctx, tx, cands)
}

// loadStored notes which candidates are stored already. Only an event at
// or before its workspace's head can be; its id then decides, whatever the
// positions say.
func (st *state) loadStored(ctx context.Context, tx pgx.Tx, cands []candidate) error {
	var maybe []pgtype.UUID
	for _, c := range cands {
		if h, ok := st.heads[c.d.workspaceID]; ok && c.d.purge == uuid.Nil && c.rec.Position.Compare(h.position) <= 0 {
			maybe = append(maybe, pgUUID(c.env.Metadata.EventID))
		}
	}
	if len(maybe) == 0 {
		return nil
	}
	rows, _ := tx.Query(ctx, `SELECT k.id
		FROM unnest($1::uuid[]) AS k(id)
		CROSS JOIN LATERAL (SELECT FROM audit_entries WHERE event_id = k.id LIMIT 1) e`, maybe)
	var id uuid.UUID
	_, err := pgx.ForEachRow(rows, []any{&id}, func() error {
		st.stored[id] = struct{}{}
		return nil
	})
	if err != nil {
		return fmt.Errorf("audit: read stored event ids: %w", err)
	}
	return nil
}

// collect scans every row of the batch's next result into dst, calling
// each after every row.
func collect(br pgx.BatchResults, dst []any, each func()) error {
	rows, err := br.Query()
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := rows.Scan(dst...); err != nil {
			return err
		}
		each()
	}
	return rows.Err()
}

// purgeEmails deletes the addresses of people whose accounts were
// deleted, in every workspace (through audit_user_emails_user_idx). Their
// entries stay as they are: what they hold was sealed for them, and their
// destroyed key has erased it.
func purgeEmails(ctx context.Context, tx pgx.Tx, users []uuid.UUID) error {
	if len(users) == 0 {
		return nil
	}
	ids := make([]pgtype.UUID, len(users))
	for i, u := range users {
		ids[i] = pgUUID(u)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM audit_user_emails WHERE user_id = ANY($1::uuid[])`, ids); err != nil {
		return fmt.Errorf("audit: purge e-mail addresses of deleted accounts: %w", err)
	}
	return nil
}

// storeEmails records the addresses the batch learnt. An address that did
// not change writes nothing; a sealed one is sealed anew by every event (a
// fresh nonce), so it changes with each event that carries it: one row
// write per (workspace, user) per batch, whichever value it holds.
func storeEmails(ctx context.Context, tx pgx.Tx, learnt map[userKey]string) error {
	if len(learnt) == 0 {
		return nil
	}
	eWS := make([]pgtype.UUID, 0, len(learnt))
	eUser := make([]pgtype.UUID, 0, len(learnt))
	eMail := make([]string, 0, len(learnt))
	for k, e := range learnt {
		eWS = append(eWS, pgUUID(k.workspaceID))
		eUser = append(eUser, pgUUID(k.userID))
		eMail = append(eMail, e)
	}
	// A MERGE, not INSERT ... ON CONFLICT, which inserts speculatively (a
	// confirmation record per new row in the WAL); the runner's lock makes
	// it the table's one writer.
	_, err := tx.Exec(ctx, `MERGE INTO audit_user_emails a
		USING (SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[]) AS k(workspace_id, user_id, email)) k
		ON a.workspace_id = k.workspace_id AND a.user_id = k.user_id
		WHEN MATCHED AND a.email IS DISTINCT FROM k.email THEN UPDATE SET email = k.email
		WHEN NOT MATCHED THEN INSERT (workspace_id, user_id, email) VALUES (k.workspace_id, k.user_id, k.email)`, eWS, eUser, eMail)
	if err != nil {
		return fmt.Errorf("audit: store e-mail addresses: %w", err)
	}
	return nil
}
