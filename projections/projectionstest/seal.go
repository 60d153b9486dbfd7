package projectionstest

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/google/uuid"

	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/internal/pii"
)

// Seal fills rec.Stored from rec.Envelope as the event store's codec does
// on the way in: every personal value of the event sealed for its subject,
// and a person-actor's e-mail address and request context sealed for that
// person (the system actor's stay plain), under keys of keys (made if
// missing). It is for projection tests, which build recorded events by
// hand instead of reading them from a store.
func Seal(t testing.TB, keys pii.Keyring, rec *domain.RecordedEvent) {
	t.Helper()
	ctx := context.Background()
	subjects := subjectsOf(rec.Envelope)
	got, err := keys.Ensure(ctx, subjects)
	if err != nil {
		t.Fatalf("projectionstest.Seal: keys for %v: %v", subjects, err)
	}
	seal := func(subject uuid.UUID, s string) string { return pii.Seal(got[subject], subject, s) }
	ev, err := domain.MapPersonal(rec.Event, func(v domain.PersonalValue) (string, error) {
		return seal(v.Subject, v.Value), nil
	})
	if err != nil {
		t.Fatalf("projectionstest.Seal: %v", err)
	}
	m := rec.Metadata
	if a := m.Actor.UserID; a != uuid.Nil {
		m.Actor.Email = seal(a, m.Actor.Email)
		if m.Request != nil {
			m.Request = &domain.RequestContext{IP: seal(a, m.Request.IP), UserAgent: seal(a, m.Request.UserAgent)}
		}
	}
	rec.Stored = domain.Envelope{Event: ev, Metadata: m}
}

// SealAll seals every event of events (Seal) and answers them.
func SealAll(t testing.TB, keys pii.Keyring, events []domain.RecordedEvent) []domain.RecordedEvent {
	t.Helper()
	for i := range events {
		Seal(t, keys, &events[i])
	}
	return events
}

// Reopen answers rec as the codec reads it back from the store with the
// keys as they are now: Envelope opened from Stored, with "" for the values
// of a person whose key is gone (listed in Erased). A test erases someone
// (MemoryKeyring.Destroy), reopens the history and replays it, as a rebuild
// after an erasure does.
func Reopen(t testing.TB, keys pii.Keyring, rec domain.RecordedEvent) domain.RecordedEvent {
	t.Helper()
	subjects := subjectsOf(rec.Stored)
	got, err := keys.Lookup(context.Background(), subjects)
	if err != nil {
		t.Fatalf("projectionstest.Reopen: keys for %v: %v", subjects, err)
	}
	var erased []uuid.UUID
	open := func(subject uuid.UUID, s string) string {
		plain, err := pii.Open(got[subject], subject, s)
		if errors.Is(err, pii.ErrErased) {
			if !slices.Contains(erased, subject) {
				erased = append(erased, subject)
			}
			return ""
		}
		if err != nil {
			t.Fatalf("projectionstest.Reopen: %v", err)
		}
		return plain
	}
	ev, err := domain.MapPersonal(rec.Stored.Event, func(v domain.PersonalValue) (string, error) {
		return open(v.Subject, v.Value), nil
	})
	if err != nil {
		t.Fatalf("projectionstest.Reopen: %v", err)
	}
	m := rec.Stored.Metadata
	if a := m.Actor.UserID; a != uuid.Nil {
		m.Actor.Email = open(a, m.Actor.Email)
		if m.Request != nil {
			m.Request = &domain.RequestContext{IP: open(a, m.Request.IP), UserAgent: open(a, m.Request.UserAgent)}
		}
	}
	rec.Envelope = domain.Envelope{Event: ev, Metadata: m}
	rec.Erased = erased
	return rec
}

// ReopenAll is Reopen of every event, in a new slice.
func ReopenAll(t testing.TB, keys pii.Keyring, events []domain.RecordedEvent) []domain.RecordedEvent {
	t.Helper()
	out := make([]domain.RecordedEvent, len(events))
	for i, rec := range events {
		out[i] = Reopen(t, keys, rec)
	}
	return out
}

// subjectsOf lists the people whose keys seal or open env's values.
func subjectsOf(env domain.Envelope) []uuid.UUID {
	var out []uuid.UUID
	add := func(u uuid.UUID) {
		if u != uuid.Nil && !slices.Contains(out, u) {
			out = append(out, u)
		}
	}
	for _, v := range domain.Personal(env.Event) {
		add(v.Subject)
	}
	add(env.Metadata.Actor.UserID)
	return out
}
