// Package natstest gives each test a JetStream stream and a subject prefix
// of its own on the test NATS server, so tests run in parallel without
// seeing each other's messages, and reads back what a stream holds.
package natstest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// EnvURL names the variable holding the test NATS server's URL (JetStream
// enabled); default nats://127.0.0.1:4222.
const EnvURL = "USERSD_TEST_NATS_URL"

const defaultURL = "nats://127.0.0.1:4222"

// URL is the test server's URL.
func URL() string {
	if u := os.Getenv(EnvURL); u != "" {
		return u
	}
	return defaultURL
}

// Space is a test's own stream name and subject prefix on the test server.
type Space struct {
	URL, Stream, SubjectPrefix string
	js                         jetstream.JetStream
}

// New answers a fresh stream name and subject prefix (the stream itself is
// created by whoever publishes first) and deletes the stream when the test
// ends. A test that cannot reach the server, or finds it without
// JetStream, fails.
func New(t testing.TB) *Space {
	t.Helper()
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	id := hex.EncodeToString(b)
	nc, err := nats.Connect(URL(), nats.Name("usersd test"))
	if err != nil {
		t.Fatalf("natstest: connect to %s (%s): %v", URL(), EnvURL, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.AccountInfo(ctx); err != nil {
		nc.Close()
		t.Fatalf("natstest: the server at %s (%s) answers without JetStream (start it with -js, as .ci/run does): %v", URL(), EnvURL, err)
	}
	ensureAnchor(ctx, t, js)
	s := &Space{URL: URL(), Stream: "USERSD_TEST_" + id, SubjectPrefix: "usersdtest." + id + ".events", js: js}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := js.DeleteStream(ctx, s.Stream); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			t.Errorf("natstest: delete stream %s: %v", s.Stream, err)
		}
		nc.Close()
	})
	return s
}

// anchorStream is a stream the tests never delete. NATS 2.9 (Debian's)
// removes an account's stream directory with its last stream, and a stream
// created meanwhile by a test running beside fails ("could not create
// storage directory"): with this one always there, no test's stream is the
// last.
const anchorStream = "USERSD_TEST_ANCHOR"

func ensureAnchor(ctx context.Context, t testing.TB, js jetstream.JetStream) {
	t.Helper()
	_, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: anchorStream, Subjects: []string{"usersdtest.anchor"}, Storage: jetstream.FileStorage, MaxMsgs: 1,
	})
	if err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		t.Fatalf("natstest: create stream %s: %v", anchorStream, err)
	}
}

// JetStream is the test's own JetStream context (a connection of its own).
func (s *Space) JetStream() jetstream.JetStream { return s.js }

// Message is one message of a stream.
type Message struct {
	Seq     uint64
	Subject string
	ID      string // Nats-Msg-Id
	Data    []byte
}

// Count answers how many messages the stream holds (0 when it does not
// exist yet).
func (s *Space) Count(ctx context.Context) (uint64, error) {
	st, err := s.js.Stream(ctx, s.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.Msgs, nil
}

// Messages reads every message the stream holds, in order.
func (s *Space) Messages(t testing.TB) []Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := s.js.Stream(ctx, s.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	if err != nil {
		t.Fatalf("natstest: stream %s: %v", s.Stream, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatalf("natstest: stream %s: %v", s.Stream, err)
	}
	want := info.State.Msgs
	if want == 0 {
		return nil
	}
	c, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatalf("natstest: consumer of %s: %v", s.Stream, err)
	}
	var out []Message
	for uint64(len(out)) < want {
		batch, err := c.Fetch(int(min(1000, want-uint64(len(out)))), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatalf("natstest: fetch from %s: %v", s.Stream, err)
		}
		n := 0
		for m := range batch.Messages() {
			md, err := m.Metadata()
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, Message{Seq: md.Sequence.Stream, Subject: m.Subject(), ID: m.Headers().Get(jetstream.MsgIDHeader), Data: m.Data()})
			n++
		}
		if err := batch.Error(); err != nil {
			t.Fatalf("natstest: fetch from %s: %v", s.Stream, err)
		}
		if n == 0 {
			t.Fatalf("natstest: %s holds %d messages, read %d", s.Stream, want, len(out))
		}
	}
	return out
}
