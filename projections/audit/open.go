package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/internal/pii"
)

// Entries hold personal values as the events store them: sealed for their
// person (internal/pii), or plain for events written before sealing. The
// hashes cover those stored strings, so Verify needs no key, and erasing a
// person (destroying their key) changes no byte of the history. Readers
// open the values for display with the keys there are now: a value whose
// key is gone is shown as null and its person as erased.

// Keys answers the data keys of the people whose values an answer opens:
// the Lookup of a pii.Keyring. Reading never makes a key.
type Keys interface {
	Lookup(ctx context.Context, subjects []uuid.UUID) (map[uuid.UUID]*pii.Key, error)
}

// StoredValues are an entry's values that may be personal, exactly as
// stored and hashed: what an auditor needs, beside the entry's other
// fields, to recompute its hash without any key (VerifyExport). Sealed
// values tell nothing without their person's key.
type StoredValues struct {
	ActorEmail       string
	TargetEmail      string
	RequestIP        string
	RequestUserAgent string
	// Details is the canonical JSON of the details as stored.
	Details json.RawMessage
}

// errNoKeys is a caller's mistake: an answer cannot be opened without keys.
var errNoKeys = errors.New("audit: no keyring to open personal values with")

// openRows turns stored rows into entries for display, with one Lookup for
// every person whose sealed values they hold.
func openRows(ctx context.Context, keys Keys, rows []row) ([]Entry, error) {
	if keys == nil {
		return nil, errNoKeys
	}
	var subjects []uuid.UUID
	add := func(u uuid.UUID) {
		if !slices.Contains(subjects, u) {
			subjects = append(subjects, u)
		}
	}
	for i := range rows {
		r := &rows[i]
		if r.actorID.Valid && (isSealedText(r.actorEmail) || isSealedText(r.requestIP) || isSealedText(r.requestUserAgent)) {
			add(r.actorID.Bytes)
		}
		if r.targetID.Valid && (isSealedText(r.targetEmail) || bytes.Contains(r.details, []byte(pii.Prefix))) {
			add(r.targetID.Bytes)
		}
	}
	var got map[uuid.UUID]*pii.Key
	if len(subjects) > 0 {
		var err error
		if got, err = keys.Lookup(ctx, subjects); err != nil {
			return nil, fmt.Errorf("audit: keys to open personal values: %w", err)
		}
	}
	out := make([]Entry, len(rows))
	for i := range rows {
		out[i] = rows[i].opened(got)
	}
	return out, nil
}

func isSealedText(t pgtype.Text) bool { return t.Valid && pii.IsSealed(t.String) }

// opened is the entry of r for display: its personal values opened with
// keys, "" (shown null) where they cannot be, Sealed holding them as
// stored.
func (r *row) opened(keys map[uuid.UUID]*pii.Key) Entry {
	e := r.entry()
	e.Sealed = &StoredValues{
		ActorEmail:       r.actorEmail.String,
		TargetEmail:      r.targetEmail.String,
		RequestIP:        r.requestIP.String,
		RequestUserAgent: r.requestUserAgent.String,
		Details:          e.Details,
	}
	e.Actor.Email = openValue(keys, e.Actor.ID, e.Actor.Email, &e.Actor.Erased)
	if e.Request != nil {
		e.Request = &domain.RequestContext{
			IP:        openValue(keys, e.Actor.ID, e.Request.IP, &e.Actor.Erased),
			UserAgent: openValue(keys, e.Actor.ID, e.Request.UserAgent, &e.Actor.Erased),
		}
	}
	if e.Target != nil {
		e.Target.Email = openValue(keys, e.Target.ID, e.Target.Email, &e.Target.Erased)
		if names := personalDetails[e.Action]; len(names) > 0 && bytes.Contains(e.Details, []byte(pii.Prefix)) {
			e.Details = openDetails(e.Details, names, func(s string) string {
				return openValue(keys, e.Target.ID, s, &e.Target.Erased)
			})
		}
	}
	return e
}

// openValue opens s, sealed for subject; a plain value is answered as it
// is. A value whose key is gone answers "" and sets erased. One that does
// not open (altered: Verify names its entry) answers "" too, never the
// sealed text.
func openValue(keys map[uuid.UUID]*pii.Key, subject uuid.UUID, s string, erased *bool) string {
	if !pii.IsSealed(s) {
		return s
	}
	plain, err := pii.Open(keys[subject], subject, s)
	if err != nil {
		if errors.Is(err, pii.ErrErased) {
			*erased = true
		}
		return ""
	}
	return plain
}

// openDetails answers the canonical details with the named string values
// opened by open; one it answers "" for becomes null.
func openDetails(canonical []byte, names []string, open func(string) string) []byte {
	fields, err := readFields(canonical)
	if err != nil {
		return canonical // not what Apply writes: shown as stored
	}
	for i, f := range fields {
		if f.kind != kindString || !slices.Contains(names, f.key) {
			continue
		}
		if v := open(f.s); v != "" {
			fields[i].s = v
		} else if f.s != "" {
			fields[i] = field{key: f.key, kind: kindNull}
		}
	}
	return appendDetails(make([]byte, 0, len(canonical)), fields)
}
