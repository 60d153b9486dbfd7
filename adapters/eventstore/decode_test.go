package eventstore_test

import (
	"context"
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/usersd/usersd/adapters/eventstore"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/internal/pii"
)

// TestCodecDecodesABigPageAsOneByOne: a page big enough to be decoded on
// several goroutines decodes to exactly what decoding each event alone
// gives, in order: values opened, an erased person's "" and Erased, the
// sealed Stored. A page with two events that do not decode fails with the
// first one's error, as a loop in order would.
func TestCodecDecodesABigPageAsOneByOne(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4)) // several decoders, whatever the machine
	ctx := context.Background()
	keys := pii.NewMemoryKeyring()
	codec := eventstore.NewCodec(keys, []byte("a fourth stream-name key, 32 B.."))
	ws := uuid.New()
	people := []uuid.UUID{uuid.New(), uuid.New(), uuid.New()}
	var envs []domain.Envelope
	for i := range 2000 {
		u := people[i%len(people)]
		envs = append(envs, domain.Envelope{
			Event:    domain.MemberSuspended{WorkspaceID: ws, UserID: u, Email: fmt.Sprintf("p%d@x.com", i%len(people)), Role: "Viewer"},
			Metadata: personMeta(people[(i+1)%len(people)], fmt.Sprintf("a%d@x.com", i)),
		})
	}
	data, err := codec.Encode(ctx, envs...)
	if err != nil {
		t.Fatal(err)
	}
	if err := keys.Destroy(ctx, people[1]); err != nil {
		t.Fatal(err)
	}
	raw := make([]eventstore.RecordedEvent, len(data))
	for i, d := range data {
		raw[i] = eventstore.RecordedEvent{ID: d.ID, StreamID: "workspace-" + ws.String(), Revision: uint64(i), Type: d.Type, Data: d.Data, Metadata: d.Metadata}
	}
	page, err := codec.Decode(ctx, raw...)
	if err != nil {
		t.Fatal(err)
	}
	erased := 0
	for i, r := range raw {
		one, err := codec.DecodeOne(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(page[i], one) {
			t.Fatalf("event %d of the page: got %+v, want %+v (decoded alone)", i, page[i], one)
		}
		erased += len(page[i].Erased)
	}
	if erased == 0 {
		t.Fatal("no event read an erased person: the test erased no one")
	}

	bad := append([]eventstore.RecordedEvent(nil), raw...)
	for _, i := range []int{1700, 900} {
		bad[i].Type = "NoSuchEvent"
	}
	if _, err := codec.Decode(ctx, bad...); err == nil || !strings.Contains(err.Error(), "@900") {
		t.Errorf("a page with events 900 and 1700 undecodable: got %v, want event 900's error", err)
	}
}
