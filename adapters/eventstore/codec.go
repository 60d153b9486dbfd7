package eventstore

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"sync"

	jsonv1 "github.com/go-json-experiment/json/v1"
	"github.com/google/uuid"

	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/internal/pii"
)

// Codec turns domain events into what the store keeps and back, sealing
// every personal value under its person's key on the way in (the events'
// personal fields, and a person actor's address and request context) and
// opening it on the way out. It works on batches so that a batch costs one
// round trip to the keyring whatever its size. It also names the streams
// that carry an address, with a keyed hash, so that a stream name cannot be
// matched against a list of addresses without the server's key.
type Codec struct {
	keys      pii.Keyring
	streamKey []byte
	// plain makes Encode write every value in clear, as usersd did before
	// sealing: the baseline of the sealing benchmarks, and nothing else.
	// Only export_test.go sets it, so no build of the service can.
	plain bool
}

// NewCodec returns a codec sealing with keys' data keys and naming account
// streams with streamKey (the keyring's server key "stream-names"; at least
// 16 bytes).
func NewCodec(keys pii.Keyring, streamKey []byte) *Codec {
	if keys == nil {
		panic("eventstore: nil keyring")
	}
	if len(streamKey) < 16 {
		panic("eventstore: a stream-name key needs at least 16 bytes")
	}
	return &Codec{keys: keys, streamKey: append([]byte(nil), streamKey...)}
}

// Keys is the keyring the codec seals with.
func (c *Codec) Keys() pii.Keyring { return c.keys }

// AccountStream names the stream that reserves an e-mail address:
// HMAC-SHA256 of the address under the stream-name key. Stream names end up
// in logs and metrics, and outlive an erasure: a plain hash of an address
// could be recomputed from a guessed address; this one cannot without the
// key.
func (c *Codec) AccountStream(e domain.Email) string {
	m := hmac.New(sha256.New, c.streamKey)
	m.Write([]byte(e))
	return AccountPrefix + hex.EncodeToString(m.Sum(nil))
}

// Encode turns domain events and their metadata into what the store keeps:
// the type's registered name, its registered schema version in the
// metadata, and every personal value sealed. It asks the keyring once for
// every person of the batch; a person whose key was destroyed gets nothing
// sealed for them any more: the answer is then an error matching
// pii.ErrErased (a *pii.ErasedError naming them).
func (c *Codec) Encode(ctx context.Context, envs ...domain.Envelope) ([]EventData, error) {
	if c.plain {
		return c.encodePlain(envs)
	}
	var subjects []uuid.UUID
	seen := make(map[uuid.UUID]bool)
	add := func(s uuid.UUID) {
		if !seen[s] {
			seen[s] = true
			subjects = append(subjects, s)
		}
	}
	for _, env := range envs {
		for _, p := range domain.Personal(env.Event) {
			if p.Value == "" {
				continue
			}
			if p.Subject == uuid.Nil {
				// Sealing it for nobody would leave it with no key to
				// destroy: refuse rather than write it.
				return nil, fmt.Errorf("encode %s: personal value %q has no subject", domain.EventName(env.Event), p.Field)
			}
			add(p.Subject)
		}
		if s, ok := actorSubject(env.Metadata); ok && actorHasPersonal(env.Metadata) {
			add(s)
		}
	}
	var keys map[uuid.UUID]*pii.Key
	if len(subjects) > 0 {
		var err error
		if keys, err = c.keys.Ensure(ctx, subjects); err != nil {
			return nil, fmt.Errorf("keys of %d people: %w", len(subjects), err)
		}
	}
	seal := func(subject uuid.UUID, v string) string {
		if v == "" {
			return ""
		}
		return pii.Seal(keys[subject], subject, v)
	}
	out := make([]EventData, len(envs))
	for i, env := range envs {
		sealed, err := domain.MapPersonal(env.Event, func(p domain.PersonalValue) (string, error) {
			return seal(p.Subject, p.Value), nil
		})
		if err != nil {
			return nil, err
		}
		meta := env.Metadata
		if s, ok := actorSubject(meta); ok {
			meta.Actor.Email = seal(s, meta.Actor.Email)
			if meta.Request != nil {
				meta.Request = &domain.RequestContext{IP: seal(s, meta.Request.IP), UserAgent: seal(s, meta.Request.UserAgent)}
			}
		}
		out[i], err = encodeOne(sealed, meta)
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// encodePlain is Encode without sealing (Codec.plain).
func (c *Codec) encodePlain(envs []domain.Envelope) ([]EventData, error) {
	out := make([]EventData, len(envs))
	for i, env := range envs {
		var err error
		if out[i], err = encodeOne(env.Event, env.Metadata); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// EncodeOne encodes one event; see Encode.
func (c *Codec) EncodeOne(ctx context.Context, e domain.Event, meta domain.Metadata) (EventData, error) {
	out, err := c.Encode(ctx, domain.Envelope{Event: e, Metadata: meta})
	if err != nil {
		return EventData{}, err
	}
	return out[0], nil
}

// actorSubject answers the person an event's actor is: their address and
// request context are theirs. The system actor's stay as they are.
func actorSubject(meta domain.Metadata) (uuid.UUID, bool) {
	return meta.Actor.UserID, meta.Actor.UserID != uuid.Nil
}

func actorHasPersonal(meta domain.Metadata) bool {
	return meta.Actor.Email != "" || (meta.Request != nil && (meta.Request.IP != "" || meta.Request.UserAgent != ""))
}

func encodeOne(e domain.Event, meta domain.Metadata) (EventData, error) {
	data, err := domain.EncodeEvent(e)
	if err != nil {
		return EventData{}, err
	}
	t, _ := domain.TypeOf(e) // EncodeEvent refuses a type that is not registered
	meta.SchemaVersion = t.Version
	md, err := json.Marshal(meta)
	if err != nil {
		return EventData{}, fmt.Errorf("encode metadata of %s: %w", t.Name, err)
	}
	return EventData{ID: meta.EventID, Type: t.Name, Data: data, Metadata: md}, nil
}

// Decode turns stored events back into domain events: Stored as the store
// keeps them, Envelope with every personal value opened. A value sealed for
// a person whose key was destroyed opens as "", and that person is in the
// event's Erased. A plain value (an event written before sealing existed)
// reads as it is in both. It asks the keyring once for the whole batch, and
// only when the batch holds a sealed value.
func (c *Codec) Decode(ctx context.Context, raws ...RecordedEvent) ([]domain.RecordedEvent, error) {
	out := make([]domain.RecordedEvent, len(raws))
	err := inParallel(len(raws), func(i int) error {
		var err error
		out[i], err = decodeStored(raws[i])
		return err
	})
	if err != nil {
		return nil, err
	}
	var subjects []uuid.UUID
	seen := make(map[uuid.UUID]bool)
	for i := range out {
		for _, s := range sealedSubjects(out[i].Stored) {
			if !seen[s] {
				seen[s] = true
				subjects = append(subjects, s)
			}
		}
	}
	if len(subjects) == 0 {
		return out, nil
	}
	keys, err := c.keys.Lookup(ctx, subjects)
	if err != nil {
		return nil, fmt.Errorf("keys of %d people: %w", len(subjects), err)
	}
	opener := pii.NewOpener(keys)
	err = inParallel(len(out), func(i int) error {
		if err := openRecorded(&out[i], opener); err != nil {
			return fmt.Errorf("%s@%d: %w", out[i].StreamID, out[i].Revision, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// parallelChunk is the fewest events worth a goroutine of their own:
// decoding one costs microseconds, starting a goroutine about one.
const parallelChunk = 256

// inParallel calls f for 0..n-1, spread in contiguous chunks over up to
// GOMAXPROCS goroutines when n is large enough to pay for them: a
// rebuild's pages (thousands of events) are decoded on every core, while
// the live runner's few events stay on the caller's. f(i) must touch only
// what belongs to i. The error is that of the lowest i that failed, as a
// loop in order would answer.
func inParallel(n int, f func(i int) error) error {
	workers := min(runtime.GOMAXPROCS(0), n/parallelChunk)
	if workers <= 1 {
		for i := range n {
			if err := f(i); err != nil {
				return err
			}
		}
		return nil
	}
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := w*n/workers, (w+1)*n/workers
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := lo; i < hi; i++ {
				if err := f(i); err != nil {
					errs[w] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// DecodeOne decodes one event; see Decode.
func (c *Codec) DecodeOne(ctx context.Context, r RecordedEvent) (domain.RecordedEvent, error) {
	out, err := c.Decode(ctx, r)
	if err != nil {
		return domain.RecordedEvent{}, err
	}
	return out[0], nil
}

// DecodeStored decodes an event as the store keeps it and opens nothing:
// Envelope and Stored are the same, personal values sealed. It needs no
// key: what a copy of the history that must stay erasable writes (usersd
// events export).
func DecodeStored(r RecordedEvent) (domain.RecordedEvent, error) { return decodeStored(r) }

// unmarshal decodes what the store holds. go-json-experiment/json in its
// v1 mode reads every input as encoding/json does (the same values, the
// same inputs refused; only the errors' wording differs), about twice as
// fast: decoding was half a rebuild's CPU. TestDecodersAgree and
// FuzzDecodersAgree hold it to encoding/json.
func unmarshal(data []byte, v any) error { return jsonv1.Unmarshal(data, v) }

// decodeStored decodes an event as stored; Envelope and Stored are the same.
func decodeStored(r RecordedEvent) (domain.RecordedEvent, error) {
	var meta domain.Metadata
	if len(r.Metadata) > 0 {
		if err := unmarshal(r.Metadata, &meta); err != nil {
			return domain.RecordedEvent{}, fmt.Errorf("decode metadata of %s@%d: %w", r.StreamID, r.Revision, err)
		}
	}
	if meta.SchemaVersion == 0 {
		meta.SchemaVersion = 1
	}
	if meta.EventID == [16]byte{} {
		meta.EventID = r.ID
	}
	e, err := domain.DecodeEventWith(r.Type, meta.SchemaVersion, r.Data, unmarshal)
	if err != nil {
		return domain.RecordedEvent{}, fmt.Errorf("%s@%d: %w", r.StreamID, r.Revision, err)
	}
	env := domain.Envelope{Event: e, Metadata: meta}
	return domain.RecordedEvent{
		Envelope: env, Stored: env,
		StreamID: r.StreamID, Revision: r.Revision, Position: r.Position,
	}, nil
}

// sealedSubjects lists the people whose keys open the sealed values of env.
func sealedSubjects(env domain.Envelope) []uuid.UUID {
	var out []uuid.UUID
	for _, p := range domain.Personal(env.Event) {
		if pii.IsSealed(p.Value) {
			out = append(out, p.Subject)
		}
	}
	if s, ok := actorSubject(env.Metadata); ok {
		m := env.Metadata
		if pii.IsSealed(m.Actor.Email) || (m.Request != nil && (pii.IsSealed(m.Request.IP) || pii.IsSealed(m.Request.UserAgent))) {
			out = append(out, s)
		}
	}
	return out
}

// openRecorded opens rec's Envelope in place (Stored keeps the sealed
// values), noting the people whose keys are gone.
func openRecorded(rec *domain.RecordedEvent, keys *pii.Opener) error {
	erased := make(map[uuid.UUID]bool)
	open := func(subject uuid.UUID, v string) (string, error) {
		plain, err := keys.Open(subject, v)
		if errors.Is(err, pii.ErrErased) {
			if !erased[subject] {
				erased[subject] = true
				rec.Erased = append(rec.Erased, subject)
			}
			return "", nil
		}
		return plain, err
	}
	e, err := domain.MapPersonal(rec.Stored.Event, func(p domain.PersonalValue) (string, error) {
		return open(p.Subject, p.Value)
	})
	if err != nil {
		return err
	}
	meta := rec.Stored.Metadata
	if s, ok := actorSubject(meta); ok {
		if meta.Actor.Email, err = open(s, meta.Actor.Email); err != nil {
			return fmt.Errorf("actor: %w", err)
		}
		if r := meta.Request; r != nil {
			opened := domain.RequestContext{}
			if opened.IP, err = open(s, r.IP); err != nil {
				return fmt.Errorf("request: %w", err)
			}
			if opened.UserAgent, err = open(s, r.UserAgent); err != nil {
				return fmt.Errorf("request: %w", err)
			}
			meta.Request = &opened
		}
	}
	rec.Envelope = domain.Envelope{Event: e, Metadata: meta}
	return nil
}

// Reseal answers, for each stored event holding a plain personal value (one
// written before sealing existed), the event with every such value sealed,
// in order: what a rewrite of the history stores in its place. A plain
// value of a person whose key was destroyed becomes "": the rewrite erases
// it. Events with nothing plain are left out, so that resealing twice
// changes nothing.
func (c *Codec) Reseal(ctx context.Context, raws ...RecordedEvent) ([]EventData, error) {
	var subjects []uuid.UUID
	seen := make(map[uuid.UUID]bool)
	type todo struct {
		rec    domain.RecordedEvent
		plains []uuid.UUID
	}
	var todos []todo
	for _, r := range raws {
		rec, err := decodeStored(r)
		if err != nil {
			return nil, err
		}
		var plains []uuid.UUID
		for _, p := range domain.Personal(rec.Event) {
			if p.Value != "" && !pii.IsSealed(p.Value) {
				plains = append(plains, p.Subject)
			}
		}
		if s, ok := actorSubject(rec.Metadata); ok {
			m := rec.Metadata
			if plain := func(v string) bool { return v != "" && !pii.IsSealed(v) }; plain(m.Actor.Email) || (m.Request != nil && (plain(m.Request.IP) || plain(m.Request.UserAgent))) {
				plains = append(plains, s)
			}
		}
		if len(plains) == 0 {
			continue
		}
		for _, s := range plains {
			if !seen[s] {
				seen[s] = true
				subjects = append(subjects, s)
			}
		}
		todos = append(todos, todo{rec, plains})
	}
	if len(todos) == 0 {
		return nil, nil
	}
	keys, erased, err := c.ensureAlive(ctx, subjects)
	if err != nil {
		return nil, err
	}
	out := make([]EventData, len(todos))
	for i, t := range todos {
		reseal := func(subject uuid.UUID, v string) string {
			switch {
			case v == "" || pii.IsSealed(v):
				return v
			case erased[subject]:
				return ""
			default:
				return pii.Seal(keys[subject], subject, v)
			}
		}
		e, err := domain.MapPersonal(t.rec.Event, func(p domain.PersonalValue) (string, error) {
			return reseal(p.Subject, p.Value), nil
		})
		if err != nil {
			return nil, err
		}
		meta := t.rec.Metadata
		if s, ok := actorSubject(meta); ok {
			meta.Actor.Email = reseal(s, meta.Actor.Email)
			if meta.Request != nil {
				meta.Request = &domain.RequestContext{IP: reseal(s, meta.Request.IP), UserAgent: reseal(s, meta.Request.UserAgent)}
			}
		}
		// Decoding upcast the event to its current version: it is
		// stored back in that shape, with that version.
		if out[i], err = encodeOne(e, meta); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// ensureAlive answers the keys of the subjects that are not erased, making
// the missing ones, and the erased subjects.
func (c *Codec) ensureAlive(ctx context.Context, subjects []uuid.UUID) (map[uuid.UUID]*pii.Key, map[uuid.UUID]bool, error) {
	erased := make(map[uuid.UUID]bool)
	for {
		var alive []uuid.UUID
		for _, s := range subjects {
			if !erased[s] {
				alive = append(alive, s)
			}
		}
		if len(alive) == 0 {
			return nil, erased, nil
		}
		keys, err := c.keys.Ensure(ctx, alive)
		var gone *pii.ErasedError
		if !errors.As(err, &gone) || len(gone.Subjects) == 0 {
			return keys, erased, err
		}
		for _, s := range gone.Subjects {
			erased[s] = true
		}
	}
}
