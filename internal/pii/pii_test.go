package pii_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/usersd/usersd/internal/pii"
)

func TestSealOpens(t *testing.T) {
	t.Parallel()
	k, jane, john := pii.NewKey(), uuid.New(), uuid.New()
	s := pii.Seal(k, jane, "jane@example.com")
	if !pii.IsSealed(s) || strings.Contains(s, "jane") {
		t.Fatalf("Seal: got %q, want a sealed value that does not show the address", s)
	}
	if s2 := pii.Seal(k, jane, "jane@example.com"); s2 == s {
		t.Fatal("Seal twice gave the same value: the nonce is not random")
	}
	got, err := pii.Open(k, jane, s)
	if err != nil || got != "jane@example.com" {
		t.Fatalf("Open: got %q, %v", got, err)
	}
	if _, err := pii.Open(k, john, s); err == nil {
		t.Fatal("Open for another subject: got no error, want one (the subject is authenticated)")
	}
	if _, err := pii.Open(pii.NewKey(), jane, s); err == nil {
		t.Fatal("Open with another key: got no error")
	}
	if _, err := pii.Open(nil, jane, s); !errors.Is(err, pii.ErrErased) {
		t.Fatalf("Open without a key: got %v, want ErrErased", err)
	}
	tampered := s[:len(s)-2] + "AA"
	if _, err := pii.Open(k, jane, tampered); err == nil {
		t.Fatal("Open of an altered value: got no error")
	}
	if _, err := pii.Open(k, jane, pii.Prefix+"%%%"); err == nil {
		t.Fatal("Open of a malformed value: got no error")
	}
	if got, err := pii.Open(nil, jane, "plain@example.com"); err != nil || got != "plain@example.com" {
		t.Fatalf("Open of a value written before sealing: got %q, %v; want it unchanged", got, err)
	}
	if pii.Seal(k, jane, "") != "" {
		t.Fatal(`Seal(""): want ""`)
	}
}

func TestMemoryKeyringRefusesDestroyedKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := pii.NewMemoryKeyring()
	jane, john := uuid.New(), uuid.New()
	keys, err := r.Ensure(ctx, []uuid.UUID{jane, john})
	if err != nil || keys[jane] == nil || keys[john] == nil {
		t.Fatalf("Ensure: got %v, %v", keys, err)
	}
	again, _ := r.Ensure(ctx, []uuid.UUID{jane})
	if *again[jane] != *keys[jane] {
		t.Fatal("Ensure made a second key for one subject")
	}
	if err := r.Destroy(ctx, jane); err != nil {
		t.Fatal(err)
	}
	var erased *pii.ErasedError
	if _, err := r.Ensure(ctx, []uuid.UUID{jane, john}); !errors.As(err, &erased) || len(erased.Subjects) != 1 || erased.Subjects[0] != jane {
		t.Fatalf("Ensure after Destroy: got %v, want an ErasedError naming jane", err)
	}
	found, _ := r.Lookup(ctx, []uuid.UUID{jane, john})
	if found[jane] != nil || found[john] == nil {
		t.Fatalf("Lookup after Destroy: got %v, want john's key only", found)
	}
}

// TestOpenerOpensAsOpen: an Opener answers what Open answers for each
// subject's key, or for none: the value, a plain value unchanged,
// ErrErased without a key, an error for a value sealed for someone else.
func TestOpenerOpensAsOpen(t *testing.T) {
	ctx := context.Background()
	r := pii.NewMemoryKeyring()
	jane, john, gone := uuid.New(), uuid.New(), uuid.New()
	keys, err := r.Ensure(ctx, []uuid.UUID{jane, john, gone})
	if err != nil {
		t.Fatal(err)
	}
	sealed := map[uuid.UUID]string{jane: pii.Seal(keys[jane], jane, "jane@example.com"), gone: pii.Seal(keys[gone], gone, "gone@example.com")}
	delete(keys, gone)
	o := pii.NewOpener(keys)
	for _, c := range []struct {
		subject uuid.UUID
		value   string
	}{{jane, sealed[jane]}, {jane, "plain@example.com"}, {gone, sealed[gone]}, {john, sealed[jane]}, {gone, ""}} {
		want, wantErr := pii.Open(keys[c.subject], c.subject, c.value)
		got, err := o.Open(c.subject, c.value)
		if got != want || (err == nil) != (wantErr == nil) || errors.Is(err, pii.ErrErased) != errors.Is(wantErr, pii.ErrErased) {
			t.Errorf("Open(%s, %q): got %q, %v; want %q, %v", c.subject, c.value, got, err, want, wantErr)
		}
	}
	if got, err := o.Open(jane, sealed[jane]); got != "jane@example.com" || err != nil {
		t.Errorf("Open of Jane's address: got %q, %v", got, err)
	}
}
