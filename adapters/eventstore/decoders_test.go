package eventstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/adapters/eventstore"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/internal/pii"
)

// referenceDecodeStored is eventstore.DecodeStored as it was with
// encoding/json throughout: the oracle the store's decoder must match on
// every input, and the baseline of BenchmarkDecodePage.
func referenceDecodeStored(r eventstore.RecordedEvent) (domain.RecordedEvent, error) {
	var meta domain.Metadata
	if len(r.Metadata) > 0 {
		if err := json.Unmarshal(r.Metadata, &meta); err != nil {
			return domain.RecordedEvent{}, err
		}
	}
	if meta.SchemaVersion == 0 {
		meta.SchemaVersion = 1
	}
	if meta.EventID == (uuid.UUID{}) {
		meta.EventID = r.ID
	}
	e, err := domain.DecodeEvent(r.Type, meta.SchemaVersion, r.Data)
	if err != nil {
		return domain.RecordedEvent{}, err
	}
	env := domain.Envelope{Event: e, Metadata: meta}
	return domain.RecordedEvent{Envelope: env, Stored: env, StreamID: r.StreamID, Revision: r.Revision, Position: r.Position}, nil
}

// assertDecodersAgree fails unless the store's decoder and encoding/json
// read r alike: both refuse it, or both answer the same values.
func assertDecodersAgree(t testing.TB, r eventstore.RecordedEvent) {
	t.Helper()
	want, wantErr := referenceDecodeStored(r)
	got, gotErr := eventstore.DecodeStored(r)
	switch {
	case (wantErr == nil) != (gotErr == nil):
		t.Fatalf("%s data %q metadata %q: encoding/json answers error %v, the store's decoder %v", r.Type, r.Data, r.Metadata, wantErr, gotErr)
	case wantErr == nil && !reflect.DeepEqual(got, want):
		t.Fatalf("%s data %q metadata %q:\n got %#v\nwant %#v (encoding/json)", r.Type, r.Data, r.Metadata, got, want)
	}
}

// fill sets every field of v to a value drawn from rnd: all the kinds the
// registered events and the metadata hold.
func fill(t testing.TB, v reflect.Value, rnd *rand.Rand) {
	switch {
	case v.Type() == reflect.TypeFor[time.Time]():
		v.Set(reflect.ValueOf(time.Unix(rnd.Int64N(4e9), rnd.Int64N(1e9)).In(time.FixedZone("", 3600*(rnd.IntN(25)-12)))))
		return
	case v.Type() == reflect.TypeFor[uuid.UUID]():
		v.Set(reflect.ValueOf(uuid.New()))
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			fill(t, v.Field(i), rnd)
		}
	case reflect.Pointer:
		if rnd.IntN(3) > 0 {
			v.Set(reflect.New(v.Type().Elem()))
			fill(t, v.Elem(), rnd)
		}
	case reflect.String:
		words := []string{"Viewer", "Admin", "jane@example.com", "Zoë <z@x.org>", "\u2028 & <b>", "tab\there", `quote"back\slash`, "日本", "😀", ""}
		v.SetString(words[rnd.IntN(len(words))] + fmt.Sprint(rnd.IntN(100)))
	case reflect.Int, reflect.Int64:
		v.SetInt(rnd.Int64N(1<<53) - 1<<52)
	case reflect.Bool:
		v.SetBool(rnd.IntN(2) == 0)
	case reflect.Slice:
		n := rnd.IntN(4)
		s := reflect.MakeSlice(v.Type(), n, n)
		for i := range n {
			fill(t, s.Index(i), rnd)
		}
		v.Set(s)
	default:
		t.Fatalf("fill: no values for %v: teach the test this kind", v.Type())
	}
}

// mixedEvents makes n events cycling through every registered type, each
// field filled, with a person's (sealed) or the system's metadata in turn,
// encoded by codec as the store keeps them.
func mixedEvents(t testing.TB, codec *eventstore.Codec, n int) []eventstore.RecordedEvent {
	t.Helper()
	rnd := rand.New(rand.NewPCG(1, 2))
	types := domain.EventTypes()
	envs := make([]domain.Envelope, n)
	for i := range envs {
		e := reflect.New(reflect.TypeOf(types[i%len(types)].Zero())).Elem()
		fill(t, e, rnd)
		var meta domain.Metadata
		fill(t, reflect.ValueOf(&meta).Elem(), rnd)
		if i%2 == 0 {
			meta.Actor = domain.Actor{System: true}
			meta.Request = nil
		}
		envs[i] = domain.Envelope{Event: e.Interface(), Metadata: meta}
	}
	data, err := codec.Encode(context.Background(), envs...)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]eventstore.RecordedEvent, n)
	for i, d := range data {
		out[i] = eventstore.RecordedEvent{ID: d.ID, StreamID: "s-" + d.Type, Revision: uint64(i), Position: domain.Position{Commit: uint64(i)}, Type: d.Type, Data: d.Data, Metadata: d.Metadata}
	}
	return out
}

// oddEvents are stored forms the codec never writes but a history may hold
// (events written in clear by older builds, by hand, by another tool), each
// as data, metadata.
var oddEvents = []struct{ typ, data, meta string }{
	{"UserInvited", `{"workspaceId":"6ba7b810-9dad-11d1-80b4-00c04fd430c8","email":"a@b.c","extra":{"x":[1,2,{"y":null}]},"role":"Admin"}`, `{"unknown":true,"schemaVersion":1}`},
	{"UserInvited", `{"WORKSPACEID":"6ba7b810-9dad-11d1-80b4-00c04fd430c8","EMAIL":"a@b.c","Role":"Admin","invitedat":"2024-02-29T23:59:59.999999999-07:00"}`, `{"EventId":"6ba7b810-9dad-11d1-80b4-00c04fd430c9","ACTOR":{"USERID":"6ba7b810-9dad-11d1-80b4-00c04fd430ca","Email":"x@y.z"}}`},
	{"MemberRemoved", `{"email":"\u00e9t\u00E9@x.com \ud83d\ude00 \ud800 \udc00x \u0000 \/","role":"\u0041dmin"}`, `{"actor":{"email":"\ud83d"},"request":{"userAgent":"\"\\\b\f\n\r\t"}}`},
	{"RoleChanged", `{"workspaceId":null,"email":null,"until":null,"fromRole":null}`, `{"eventId":null,"occurredAt":null,"request":null,"actor":null,"schemaVersion":null}`},
	{"RoleChanged", `{"until":"2024-01-01T00:00:00Z"}`, `{"occurredAt":"2024-01-01T00:00:00.5+14:00"}`},
	{"InvitationResent", `{"attempt":9007199254740993}`, ``},
	{"InvitationResent", `{"attempt":99999999999999999999}`, ``},
	{"InvitationResent", `{"attempt":1e3}`, ``},
	{"InvitationResent", `{"attempt":1.0}`, ``},
	{"InvitationResent", `{"attempt":-0}`, ``},
	{"InvitationResent", `{"attempt":"3"}`, ``},
	{"AuditDivergenceAccepted", `{"seq":-9223372036854775808}`, `{"schemaVersion":1}`},
	{"AuditDivergenceAccepted", `{"seq":9223372036854775808}`, ``},
	{"MemberSuspended", "{\"email\":\"bad \xff\xfe utf-8 \xc3\x28 \xed\xa0\x80\",\"role\":\"R\xe9le\"}", "{\"actor\":{\"email\":\"\xff\"}}"},
	{"MemberSuspended", `{"email":"first","email":"second","Email":"third"}`, `{"actor":{"email":"a"},"actor":{"system":true}}`},
	{"MemberSuspended", `{"userId":"{6ba7b810-9dad-11d1-80b4-00c04fd430c8}"}`, `{"eventId":"urn:uuid:6ba7b810-9dad-11d1-80b4-00c04fd430c8"}`},
	{"MemberSuspended", `{"userId":"6ba7b8109dad11d180b400c04fd430c8"}`, `{"eventId":"6BA7B810-9DAD-11D1-80B4-00C04FD430C8"}`},
	{"MemberSuspended", `{"userId":"not a uuid"}`, ``},
	{"MemberSuspended", `{"userId":12}`, ``},
	{"MemberSuspended", `{"email":12}`, ``},
	{"MemberSuspended", `{"email":"x"} trailing`, ``},
	{"MemberSuspended", `{"email":"x"}{}`, ``},
	{"MemberSuspended", ` {"email":"x"} `, "\t{}\n"},
	{"MemberSuspended", `null`, `null`},
	{"MemberSuspended", `[]`, ``},
	{"MemberSuspended", ``, ``},
	{"MemberSuspended", `{"email":"x",}`, ``},
	{"MemberSuspended", `{"email":"x"`, ``},
	{"AccountDeleted", `{"deletedAt":"2024-01-01"}`, ``},
	{"AccountDeleted", `{"deletedAt":"2024-01-01T00:00:00"}`, ``},
	{"AccountDeleted", `{"deletedAt":"2024-01-01T24:00:00Z"}`, ``},
	{"AccountDeleted", `{"deletedAt":"2024-01-01t00:00:00z"}`, ``},
	{"AccountDeleted", `{"deletedAt":"2024-01-01T00:00:00.Z"}`, ``},
	{"AccountDeleted", `{"deletedAt":"2024-01-01T00:00:00+24:00"}`, ``},
	{"AccountDeleted", `{"deletedAt":"0000-01-01T00:00:00Z"}`, `{"occurredAt":"9999-12-31T23:59:59.999999999-23:59"}`},
	{"AccountDeleted", `{"deletedAt":1700000000}`, ``},
	{"WebhookSubscribed", `{"events":null}`, ``},
	{"WebhookSubscribed", `{"events":[]}`, ``},
	{"WebhookSubscribed", `{"events":["a",null,"b"]}`, ``},
	{"WebhookSubscribed", `{"events":"a"}`, ``},
	{"WorkspaceSettingsChanged", `{"managersMayGrantAdmin":"true"}`, ``},
	{"WorkspaceSettingsChanged", `{"managersMayGrantAdmin":1}`, ``},
	{"WorkspaceSettingsChanged", `{"managersMayGrantAdmin":true}`, `{"schemaVersion":2}`},
	{"WorkspaceSettingsChanged", `{}`, `{"schemaVersion":-1}`},
	{"WorkspaceSettingsChanged", `{}`, `{"schemaVersion":"1"}`},
	{"NoSuchEvent", `{}`, ``},
}

// TestDecodersAgree: the store's decoder reads every registered event type,
// its metadata, and stored forms no build writes but a history may hold
// exactly as encoding/json does, and refuses exactly what encoding/json
// refuses.
func TestDecodersAgree(t *testing.T) {
	evs := mixedEvents(t, eventstore.NewCodec(pii.NewMemoryKeyring(), []byte("the decoders' stream-name key 32")), 10*len(domain.EventTypes()))
	for _, r := range evs {
		assertDecodersAgree(t, r)
	}
	plain := mixedEvents(t, eventstore.NewPlainCodecForBenchmark(pii.NewMemoryKeyring(), []byte("the decoders' stream-name key 32")), 10*len(domain.EventTypes()))
	for _, r := range plain {
		assertDecodersAgree(t, r)
	}
	failed := 0
	for _, o := range oddEvents {
		r := eventstore.RecordedEvent{ID: uuid.New(), StreamID: "odd", Type: o.typ, Data: []byte(o.data), Metadata: []byte(o.meta)}
		assertDecodersAgree(t, r)
		if _, err := referenceDecodeStored(r); err != nil {
			failed++
		}
	}
	// Both kinds of answer are compared, not only refusals.
	if failed == 0 || failed == len(oddEvents) {
		t.Fatalf("%d of %d odd events refused: the table should hold both kinds", failed, len(oddEvents))
	}
}

// FuzzDecodersAgree: whatever the bytes, the store's decoder and
// encoding/json read them alike. The type is drawn from the registered
// ones (and one unknown), so that the data is decoded rather than refused
// by name.
func FuzzDecodersAgree(f *testing.F) {
	types := append(domain.EventTypeNames(), "NoSuchEvent")
	index := func(name string) uint8 {
		return uint8(slices.Index(types, name))
	}
	for _, r := range mixedEvents(f, eventstore.NewPlainCodecForBenchmark(pii.NewMemoryKeyring(), []byte("the decoders' stream-name key 32")), len(types)) {
		f.Add(index(r.Type), r.Data, r.Metadata)
	}
	for _, o := range oddEvents {
		f.Add(index(o.typ), []byte(o.data), []byte(o.meta))
	}
	f.Fuzz(func(t *testing.T, typ uint8, data, meta []byte) {
		assertDecodersAgree(t, eventstore.RecordedEvent{ID: uuid.New(), StreamID: "fuzz", Type: types[int(typ)%len(types)], Data: data, Metadata: meta})
	})
}

// BenchmarkDecodePage decodes a page of 1,000 mixed events as the store
// keeps them (personal values sealed, half of them caused by a person):
// with encoding/json (the decoder before, as a baseline in the same run),
// with the store's decoder, one event at a time on one goroutine, and
// through Codec.Decode as a rebuild does (opening included, on every core).
func BenchmarkDecodePage(b *testing.B) {
	const n = 1000
	codec := eventstore.NewCodec(pii.NewMemoryKeyring(), []byte("the decoders' stream-name key 32"))
	page := mixedEvents(b, codec, n)
	size := 0
	for _, r := range page {
		size += len(r.Data) + len(r.Metadata)
	}
	perEvent := func(decode func(eventstore.RecordedEvent) (domain.RecordedEvent, error)) func(b *testing.B) {
		return func(b *testing.B) {
			b.SetBytes(int64(size))
			for b.Loop() {
				for _, r := range page {
					if _, err := decode(r); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "events/s")
		}
	}
	b.Run("stored/encoding-json", perEvent(referenceDecodeStored))
	b.Run("stored/store-decoder", perEvent(eventstore.DecodeStored))
	b.Run("Codec.Decode", func(b *testing.B) {
		b.SetBytes(int64(size))
		ctx := context.Background()
		for b.Loop() {
			if _, err := codec.Decode(ctx, page...); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "events/s")
	})
}
