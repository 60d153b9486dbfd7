package eventstoretest

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/adapters/eventstore"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/internal/pii"
)

var sealedAt = time.Date(2026, 12, 1, 9, 30, 0, 0, time.UTC)

// personMeta is the metadata of a request a person made.
func personMeta(actor uuid.UUID, email string) domain.Metadata {
	return domain.Metadata{EventID: uuid.New(), SchemaVersion: domain.SchemaVersion, OccurredAt: sealedAt,
		Actor:   domain.Actor{UserID: actor, Email: email},
		Request: &domain.RequestContext{IP: "203.0.113.7", UserAgent: "Firefox/140 (Jane's laptop)"}}
}

// sealedValuesStayOpaque appends sealed events to store and checks the raw
// bytes it keeps, then what decodes before and after the person's key is
// destroyed. Sealing is the codec's, but whether a store keeps any other copy (an index, a log of appends) is the store's: every store runs it.
func sealedValuesStayOpaque(t *testing.T, store eventstore.Store) {
	ctx := context.Background()
	keys := pii.NewMemoryKeyring()
	codec := eventstore.NewCodec(keys, []byte("another stream-name key, 32 B..."))
	ws, jane, admin := uuid.New(), uuid.New(), uuid.New()
	const janeEmail, janeName, adminEmail = "Jane.Doe@Example.COM", "Jane Marguerite Doe", "root.admin@example.com"
	accepted := domain.InvitationAccepted{WorkspaceID: ws, InvitationID: uuid.New(), UserID: jane, Email: janeEmail,
		Name: janeName, Role: "Editor", AcceptedAt: sealedAt}
	failed := domain.InvitationEmailFailed{WorkspaceID: ws, InvitationID: uuid.New(), UserID: jane, Attempt: 1,
		Reason: "550 5.1.1 <" + janeEmail + ">: mailbox unksealedAtn"}
	byJane := personMeta(jane, janeEmail)
	byAdmin := personMeta(admin, adminEmail)
	data, err := codec.Encode(ctx, domain.Envelope{Event: accepted, Metadata: byJane}, domain.Envelope{Event: failed, Metadata: byAdmin})
	if err != nil {
		t.Fatal(err)
	}
	stream := eventstore.WorkspaceStream(ws)
	if _, err := store.Append(ctx, stream, eventstore.NoStream{}, data...); err != nil {
		t.Fatal(err)
	}
	raw, err := store.ReadStream(ctx, stream, eventstore.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range raw {
		stored := strings.ToLower(string(r.Data) + string(r.Metadata))
		for _, secret := range []string{janeEmail, janeName, adminEmail, "203.0.113.7", "Firefox/140 (Jane's laptop)"} {
			if strings.Contains(stored, strings.ToLower(secret)) {
				t.Errorf("%s@%d: stored bytes contain %q:\n%s\n%s", r.StreamID, r.Revision, secret, r.Data, r.Metadata)
			}
		}
		if !bytes.Contains(r.Data, []byte(pii.Prefix)) || !bytes.Contains(r.Metadata, []byte(pii.Prefix)) {
			t.Errorf("%s@%d: want sealed values in data and metadata, got\n%s\n%s", r.StreamID, r.Revision, r.Data, r.Metadata)
		}
	}

	recs, err := codec.Decode(ctx, raw...)
	if err != nil {
		t.Fatal(err)
	}
	if got := recs[0].Event; got != accepted {
		t.Errorf("decoded %+v, want %+v", got, accepted)
	}
	if got := recs[1].Event; got != failed {
		t.Errorf("decoded %+v, want %+v", got, failed)
	}
	if m := recs[0].Metadata; m.Actor.Email != janeEmail || *m.Request != *byJane.Request {
		t.Errorf("decoded metadata %+v %+v, want the actor's address and request opened", m.Actor, m.Request)
	}
	if s := recs[0].Stored.Event.(domain.InvitationAccepted); !pii.IsSealed(s.Email) || !pii.IsSealed(s.Name) {
		t.Errorf("Stored: got %+v, want the values as stored (sealed)", s)
	}
	if len(recs[0].Erased) != 0 {
		t.Errorf("Erased: got %v before any erasure", recs[0].Erased)
	}

	if err := keys.Destroy(ctx, jane); err != nil {
		t.Fatal(err)
	}
	recs, err = codec.Decode(ctx, raw...)
	if err != nil {
		t.Fatalf("decode after erasure: %v", err)
	}
	a := recs[0].Event.(domain.InvitationAccepted)
	if a.Email != "" || a.Name != "" || a.UserID != jane || a.Role != "Editor" {
		t.Errorf("after erasure: got %+v, want the address and name empty, the rest kept", a)
	}
	if m := recs[0].Metadata; m.Actor.Email != "" || m.Request.IP != "" || m.Request.UserAgent != "" || m.Actor.UserID != jane {
		t.Errorf("after erasure: actor %+v request %+v, want the erased actor's address and request empty", m.Actor, m.Request)
	}
	if !slices.Equal(recs[0].Erased, []uuid.UUID{jane}) {
		t.Errorf("Erased: got %v, want [jane]", recs[0].Erased)
	}
	if f := recs[1].Event.(domain.InvitationEmailFailed); f.Reason != "" {
		t.Errorf("after erasure: reason %q, want empty", f.Reason)
	}
	if m := recs[1].Metadata; m.Actor.Email != adminEmail || !slices.Equal(recs[1].Erased, []uuid.UUID{jane}) {
		t.Errorf("after erasure: another actor's address %q (want it kept), erased %v", m.Actor.Email, recs[1].Erased)
	}
	if _, err := codec.Encode(ctx, domain.Envelope{Event: accepted, Metadata: byAdmin}); !errors.Is(err, pii.ErrErased) {
		t.Errorf("encode for an erased person: got %v, want ErrErased (nothing is sealed for them any more)", err)
	}
}
