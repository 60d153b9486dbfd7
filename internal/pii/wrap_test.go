package pii_test

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/usersd/usersd/internal/pii"
)

func TestParseKEK(t *testing.T) {
	t.Parallel()
	raw := bytes.Repeat([]byte{0xfb}, 32) // encodes differently in base64url and standard base64
	url := base64.RawURLEncoding.EncodeToString(raw)
	for _, s := range []string{url, url + "=", " " + url + "\n", base64.StdEncoding.EncodeToString(raw)} {
		k, err := pii.ParseKEK(s)
		if err != nil {
			t.Fatalf("ParseKEK(%q): %v", s, err)
		}
		want, _ := pii.NewKEK(raw)
		if k.ID() != want.ID() {
			t.Errorf("ParseKEK(%q): id %s, want %s", s, k.ID(), want.ID())
		}
	}
	for s, want := range map[string]string{
		"":            "is empty",
		"not base64!": "is not base64url",
		url[:20]:      "is 15 bytes, want 32",
		url + url[:4]: "is 35 bytes, want 32",
	} {
		_, err := pii.ParseKEK(s)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseKEK(%q): got %v, want %q", s, err, want)
		}
	}
}

func TestKEKIDNamesTheKeyWithoutShowingIt(t *testing.T) {
	t.Parallel()
	a, _ := pii.ParseKEK(pii.GenerateKEK())
	b, _ := pii.ParseKEK(pii.GenerateKEK())
	if a.ID() == b.ID() || len(a.ID()) != 16 {
		t.Fatalf("ids %q and %q: want two different 16-hex-digit ids", a.ID(), b.ID())
	}
	for _, s := range []string{fmt.Sprint(a), fmt.Sprintf("%#v", a)} {
		if !strings.Contains(s, a.ID()) {
			t.Errorf("formatted KEK %q: want it named by its id", s)
		}
	}
}

func TestKEKFormatsWithoutTheKey(t *testing.T) {
	t.Parallel()
	raw := bytes.Repeat([]byte{0x41}, 32)
	k, _ := pii.NewKEK(raw)
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%d"} {
		s := fmt.Sprintf(verb, k)
		if strings.Contains(s, "QUFB") || strings.Contains(s, "65 65") || strings.Contains(s, "4141") {
			t.Errorf("%s of a KEK: %q shows the key", verb, s)
		}
	}
}

func TestWrapAccountKey(t *testing.T) {
	t.Parallel()
	kek, _ := pii.ParseKEK(pii.GenerateKEK())
	other, _ := pii.ParseKEK(pii.GenerateKEK())
	jane, john := uuid.New(), uuid.New()
	key := pii.NewKey()
	w := pii.WrapAccountKey(kek, jane, key)
	if bytes.Contains(w, key[:]) {
		t.Fatal("the wrapped key holds the key in clear")
	}
	if w2 := pii.WrapAccountKey(kek, jane, key); bytes.Equal(w, w2) {
		t.Fatal("wrapping twice gave the same bytes: the nonce is not random")
	}
	got, err := pii.UnwrapAccountKey(kek, jane, w)
	if err != nil || *got != *key {
		t.Fatalf("UnwrapAccountKey: got %v, %v; want the key", got, err)
	}
	if _, err := pii.UnwrapAccountKey(kek, john, w); err == nil {
		t.Error("unwrap as another account: got no error (the account is not authenticated)")
	}
	if _, err := pii.UnwrapAccountKey(other, jane, w); err == nil || !strings.Contains(err.Error(), other.ID()) {
		t.Errorf("unwrap under another KEK: got %v, want an error naming that KEK's id", err)
	}
	altered := bytes.Clone(w)
	altered[len(altered)-1] ^= 1
	if _, err := pii.UnwrapAccountKey(kek, jane, altered); err == nil {
		t.Error("unwrap of altered bytes: got no error")
	}
	if _, err := pii.UnwrapAccountKey(kek, jane, w[:5]); err == nil {
		t.Error("unwrap of 5 bytes: got no error")
	}
	// An account key cannot be passed off as a server key, or the reverse.
	if _, err := pii.UnwrapServerKey(kek, jane.String(), w); err == nil {
		t.Error("an account key unwrapped as a server key")
	}
}

func TestWrapServerKey(t *testing.T) {
	t.Parallel()
	kek, _ := pii.ParseKEK(pii.GenerateKEK())
	secret := []byte("0123456789abcdef0123456789abcdef")
	w := pii.WrapServerKey(kek, "stream-names", secret)
	got, err := pii.UnwrapServerKey(kek, "stream-names", w)
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("UnwrapServerKey: %q, %v", got, err)
	}
	if _, err := pii.UnwrapServerKey(kek, "other", w); err == nil {
		t.Error("a server key unwrapped under another name")
	}
}
