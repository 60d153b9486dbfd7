package domain_test

import (
	"testing"

	"github.com/usersd/usersd/domain"
)

// TestEmailASCII is the form SMTP without SMTPUTF8 can carry.
func TestEmailASCII(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in, want string
		ok       bool
	}{
		{"jane@example.com", "jane@example.com", true},
		{"jane@münchen.de", "jane@xn--mnchen-3ya.de", true},
		{"jörg@münchen.de", "jörg@xn--mnchen-3ya.de", false},
		{"иван@пример.рф", "иван@xn--e1afmkfd.xn--p1ai", false},
	} {
		e, err := domain.NormalizeEmail(c.in)
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := e.ASCII(); got != c.want || ok != c.ok {
			t.Errorf("%q.ASCII(): got %q, %v; want %q, %v", e, got, ok, c.want, c.ok)
		}
	}
}
