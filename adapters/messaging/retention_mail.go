package messaging

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/commands"
)

// The e-mail pipeline's tasks of the retention sweeper (retention.go).

// deliveryKey is a delivery-log row's key.
type deliveryKey struct {
	inv     uuid.UUID
	attempt int32
}

// pruneDeliveries settles the delivery-log rows no longer needed, then
// deletes those settled longer than Retention.Deliveries ago.
func (s *Sweeper) pruneDeliveries(ctx context.Context, pool *pgxpool.Pool, batch int) (int64, error) {
	settleErr := s.settleDeliveries(ctx, pool, batch)
	n, err := deleteInBatches(ctx, pool, batch, `
		DELETE FROM mail_deliveries WHERE (invitation_id, attempt) IN (
			SELECT invitation_id, attempt FROM mail_deliveries
			WHERE settled_at < now() - $1 * interval '1 microsecond' LIMIT $2)`,
		microseconds(s.opts.Retention.Deliveries), batch)
	return n, errors.Join(settleErr, err)
}

// settleDeliveries looks at up to MaxChecks rows whose outcome is recorded
// and that are not settled yet, from where the last sweep stopped (the end
// of the log starts the next sweep at its beginning), and settles those
// whose attempt the mailer would not send any more: the workspace says its
// link no longer works (ComposeInvitationEmails answers ErrEmailNotNeeded,
// the check the mailer makes before every e-mail). Such a link never works
// again (accepted, revoked and replaced are final; an expired attempt can
// only be followed by a resend's new one), so a message of that attempt
// delivered again later sends nothing without the row. A row whose outcome
// is not recorded yet is never settled: the delivery log records from its
// rows.
func (s *Sweeper) settleDeliveries(ctx context.Context, pool *pgxpool.Pool, batch int) error {
	var errs []error
	for checked := 0; checked < s.opts.MaxChecks; {
		rows, err := pool.Query(ctx, `
			SELECT invitation_id, attempt, workspace_id FROM mail_deliveries
			WHERE (invitation_id, attempt) > ($1, $2) AND recorded_at IS NOT NULL AND settled_at IS NULL
			ORDER BY invitation_id, attempt LIMIT $3`, s.cursor.inv, s.cursor.attempt, min(batch, s.opts.MaxChecks-checked))
		if err != nil {
			return errors.Join(append(errs, fmt.Errorf("read the delivery log: %w", err))...)
		}
		byWS := map[uuid.UUID][]commands.SendInvitationEmail{}
		var order []uuid.UUID
		var k deliveryKey
		var ws uuid.UUID
		found := 0
		_, err = pgx.ForEachRow(rows, []any{&k.inv, &k.attempt, &ws}, func() error {
			if _, ok := byWS[ws]; !ok {
				order = append(order, ws)
			}
			byWS[ws] = append(byWS[ws], commands.SendInvitationEmail{WorkspaceID: ws, InvitationID: k.inv, Attempt: int(k.attempt)})
			found++
			return nil
		})
		if err != nil {
			return errors.Join(append(errs, fmt.Errorf("read the delivery log: %w", err))...)
		}
		if found == 0 {
			s.cursor = deliveryKey{} // the end: the next sweep starts over
			break
		}
		checked += found
		s.cursor = k
		var invs []uuid.UUID
		var attempts []int32
		for _, ws := range order {
			res, err := s.compose.Handle(ctx, commands.ComposeInvitationEmails{WorkspaceID: ws, Emails: byWS[ws]})
			if err != nil {
				// Undecided: looked at again by a later sweep.
				errs = append(errs, fmt.Errorf("workspace %s: %w", ws, err))
				continue
			}
			for i, r := range res {
				if errors.Is(r.Err, commands.ErrEmailNotNeeded) {
					invs, attempts = append(invs, byWS[ws][i].InvitationID), append(attempts, int32(byWS[ws][i].Attempt))
				}
			}
		}
		if len(invs) > 0 {
			tag, err := pool.Exec(ctx, `
				UPDATE mail_deliveries d SET settled_at = now()
				FROM unnest($1::uuid[], $2::int[]) AS k(invitation_id, attempt)
				WHERE d.invitation_id = k.invitation_id AND d.attempt = k.attempt AND d.settled_at IS NULL`, invs, attempts)
			if err != nil {
				return errors.Join(append(errs, fmt.Errorf("settle delivery-log rows: %w", err))...)
			}
			s.settled += tag.RowsAffected()
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return errors.Join(errs...)
}

// queueKey is a watermill-sql message's key; tx is its xid8 in decimal.
type queueKey struct {
	tx     string
	offset int64
}

// messageInvitation is the invitation a queue message (alias m) names,
// NULL when its payload names none that parses.
const messageInvitation = `CASE WHEN m.payload::jsonb->>'invitationId' ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
	THEN (m.payload::jsonb->>'invitationId')::uuid END`

// invitationHasRows is true when the invitation k.inv still has rows in
// the delivery log or the development mailbox. A queue message is kept
// while it does: an account's erasure finds those rows through the
// messages of the person's invitations (purge.go), and the messages are
// the only place that ties an invitation to its person.
const invitationHasRows = `(EXISTS (SELECT 1 FROM mail_deliveries d WHERE d.invitation_id = k.inv)
	OR EXISTS (SELECT 1 FROM dev_mailbox b WHERE b.invitation_id = k.inv))`

// deleteMessages deletes the messages keyed by keys from table.
func deleteMessages(ctx context.Context, pool *pgxpool.Pool, table string, keys []queueKey) (int64, error) {
	if len(keys) == 0 {
		return 0, nil
	}
	txs, offs := make([]string, len(keys)), make([]int64, len(keys))
	for i, k := range keys {
		txs[i], offs[i] = k.tx, k.offset
	}
	tag, err := pool.Exec(ctx, `DELETE FROM `+ident(table)+` WHERE (transaction_id, "offset") IN (
		SELECT k.t::xid8, k.o FROM unnest($1::text[], $2::bigint[]) AS k(t, o))`, txs, offs)
	if err != nil {
		return 0, fmt.Errorf("delete from %s: %w", table, err)
	}
	return tag.RowsAffected(), nil
}

// pruneOutbox deletes, partition by partition, the messages every consumer
// group has acknowledged (the mailer's group must be among them) whose
// invitation has no delivery-log or mailbox row left. watermill-sql reads
// a group's messages after its offset only, in (transaction id, offset)
// order: an acknowledged message is never read again.
func (s *Sweeper) pruneOutbox(ctx context.Context, pool *pgxpool.Pool, batch int) (int64, error) {
	var total int64
	for p := range Partitions {
		n, err := s.prunePartition(ctx, pool, batch, PartitionTopic(p))
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

func (s *Sweeper) prunePartition(ctx context.Context, pool *pgxpool.Pool, batch int, topic string) (int64, error) {
	bound, ok, err := acknowledgedByAll(ctx, pool, topic)
	if err != nil || !ok {
		return 0, err
	}
	table := "watermill_" + topic
	var total int64
	cursor := queueKey{tx: "0"}
	for {
		rows, err := pool.Query(ctx, `
			SELECT m.transaction_id::text, m."offset", `+invitationHasRows+`
			FROM `+ident(table)+` m CROSS JOIN LATERAL (SELECT `+messageInvitation+` AS inv) k
			WHERE (m.transaction_id, m."offset") > ($1::xid8, $2) AND (m.transaction_id, m."offset") <= ($3::xid8, $4)
			ORDER BY m.transaction_id, m."offset" LIMIT $5`, cursor.tx, cursor.offset, bound.tx, bound.offset, batch)
		if err != nil {
			return total, fmt.Errorf("read %s: %w", table, err)
		}
		var free []queueKey
		var k queueKey
		var needed bool
		seen := 0
		_, err = pgx.ForEachRow(rows, []any{&k.tx, &k.offset, &needed}, func() error {
			seen++
			if !needed {
				free = append(free, k)
			}
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("read %s: %w", table, err)
		}
		n, err := deleteMessages(ctx, pool, table, free)
		total += n
		if err != nil || seen < batch {
			return total, err
		}
		cursor = k
	}
}

// acknowledgedByAll answers the key of the last message of topic that
// every consumer group has acknowledged; ok is false when the mailer's
// group has none yet (nothing is known to be consumed).
func acknowledgedByAll(ctx context.Context, pool *pgxpool.Pool, topic string) (bound queueKey, ok bool, err error) {
	rows, err := pool.Query(ctx, `SELECT consumer_group, last_processed_transaction_id::text, coalesce(offset_acked, 0) FROM `+ident("watermill_offsets_"+topic))
	if err != nil {
		return bound, false, fmt.Errorf("read the offsets of %s: %w", topic, err)
	}
	var group, tx string
	var off int64
	var low uint64
	first := true
	_, err = pgx.ForEachRow(rows, []any{&group, &tx, &off}, func() error {
		x, err := strconv.ParseUint(tx, 10, 64)
		if err != nil {
			return fmt.Errorf("transaction id %q: %w", tx, err)
		}
		if first || x < low || (x == low && off < bound.offset) {
			low, bound, first = x, queueKey{tx: tx, offset: off}, false
		}
		if group == ConsumerGroup {
			ok = true
		}
		return nil
	})
	if err != nil {
		return queueKey{}, false, fmt.Errorf("read the offsets of %s: %w", topic, err)
	}
	return bound, ok, nil
}

// prunePoison deletes the poison queue's messages older than
// Retention.Poison whose invitation has no delivery-log or mailbox row
// left, each once its failure is recorded. Most have it recorded already
// (the mailer logs a failure before the poison queue keeps the message);
// for one that has not (its failure could not be logged), the sweeper
// records it now, InvitationEmailFailed, which records nothing when the
// attempt has an outcome already or its invitation is closed. A message
// whose recording fails is kept for the next sweep; one that is no
// SendInvitationEmail has nothing to record.
func (s *Sweeper) prunePoison(ctx context.Context, pool *pgxpool.Pool, batch int) (int64, error) {
	table := "watermill_" + TopicInvitationEmailsPoison
	var total int64
	var errs []error
	cursor := queueKey{tx: "0"}
	for {
		rows, err := pool.Query(ctx, `
			SELECT m.transaction_id::text, m."offset", coalesce(m.payload::text, ''), coalesce(m.metadata::jsonb->>'reason_poisoned', '')
			FROM `+ident(table)+` m CROSS JOIN LATERAL (SELECT `+messageInvitation+` AS inv) k
			WHERE (m.transaction_id, m."offset") > ($1::xid8, $2) AND m.created_at < localtimestamp - $3 * interval '1 microsecond'
				AND NOT `+invitationHasRows+`
			ORDER BY m.transaction_id, m."offset" LIMIT $4`, cursor.tx, cursor.offset, microseconds(s.opts.Retention.Poison), batch)
		if err != nil {
			return total, fmt.Errorf("read the poison queue: %w", err)
		}
		type poisoned struct {
			key    queueKey
			cmd    commands.SendInvitationEmail
			reason string
		}
		var msgs []poisoned
		var m poisoned
		var payload string
		_, err = pgx.ForEachRow(rows, []any{&m.key.tx, &m.key.offset, &payload, &m.reason}, func() error {
			m.cmd = commands.SendInvitationEmail{}
			if json.Unmarshal([]byte(payload), &m.cmd) != nil {
				m.cmd = commands.SendInvitationEmail{}
			}
			msgs = append(msgs, m)
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("read the poison queue: %w", err)
		}
		byWS := map[uuid.UUID][]commands.EmailOutcome{}
		var order []uuid.UUID
		for _, m := range msgs {
			c := m.cmd
			if c.WorkspaceID == uuid.Nil || c.InvitationID == uuid.Nil || c.Attempt < 1 {
				continue
			}
			if _, ok := byWS[c.WorkspaceID]; !ok {
				order = append(order, c.WorkspaceID)
			}
			failure := "kept in the poison queue"
			if m.reason != "" {
				failure += ": " + m.reason
			}
			byWS[c.WorkspaceID] = append(byWS[c.WorkspaceID], commands.EmailOutcome{InvitationID: c.InvitationID, Attempt: c.Attempt, Failure: failure})
		}
		unrecorded := map[uuid.UUID]bool{}
		for _, ws := range order {
			_, err := s.record.Handle(ctx, commands.RecordEmailOutcomes{WorkspaceID: ws, Outcomes: byWS[ws], Meta: commands.Meta{CorrelationID: "usersd-retention"}})
			if err != nil {
				unrecorded[ws] = true
				errs = append(errs, fmt.Errorf("record the failures of workspace %s: %w", ws, err))
			}
		}
		var done []queueKey
		for _, m := range msgs {
			if !unrecorded[m.cmd.WorkspaceID] || m.cmd.WorkspaceID == uuid.Nil {
				done = append(done, m.key)
			}
		}
		n, err := deleteMessages(ctx, pool, table, done)
		total += n
		if err != nil {
			return total, errors.Join(append(errs, err)...)
		}
		if len(msgs) < batch {
			return total, errors.Join(errs...)
		}
		cursor = msgs[len(msgs)-1].key
	}
}
