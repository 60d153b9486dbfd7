package domain_test

import (
	"math"
	"testing"

	"github.com/usersd/usersd/domain"
)

func TestPositionCompare(t *testing.T) {
	t.Parallel()
	p := func(c, q uint64) domain.Position { return domain.Position{Commit: c, Prepare: q} }
	cases := []struct {
		a, b domain.Position
		want int
	}{
		{p(0, 0), p(0, 0), 0},
		{p(7, 3), p(7, 3), 0},
		{p(0, 0), p(0, 1), -1},
		{p(1, 2), p(1, 3), -1},
		{p(1, 3), p(1, 2), 1},
		{p(1, 99), p(2, 0), -1},
		{p(2, 0), p(1, 99), 1},
		{p(math.MaxUint64, 0), p(math.MaxUint64-1, math.MaxUint64), 1},
		{p(math.MaxUint64, math.MaxUint64), p(math.MaxUint64, math.MaxUint64), 0},
	}
	for _, c := range cases {
		t.Run(c.a.String()+"_vs_"+c.b.String(), func(t *testing.T) {
			t.Parallel()
			if got := c.a.Compare(c.b); got != c.want {
				t.Errorf("%v.Compare(%v): got %d, want %d", c.a, c.b, got, c.want)
			}
			if got := c.b.Compare(c.a); got != -c.want {
				t.Errorf("%v.Compare(%v): got %d, want %d", c.b, c.a, got, -c.want)
			}
			if got := c.a.Less(c.b); got != (c.want < 0) {
				t.Errorf("%v.Less(%v): got %v, want %v", c.a, c.b, got, c.want < 0)
			}
		})
	}
}

func TestPositionIsZero(t *testing.T) {
	t.Parallel()
	if !(domain.Position{}).IsZero() {
		t.Errorf("Position{}.IsZero(): got false, want true")
	}
	for _, p := range []domain.Position{{Commit: 1}, {Prepare: 1}} {
		if p.IsZero() {
			t.Errorf("%v.IsZero(): got true, want false", p)
		}
		if !(domain.Position{}).Less(p) {
			t.Errorf("Position{}.Less(%v): got false, want true (zero lies before every event)", p)
		}
	}
}

func TestPositionStringRoundTrip(t *testing.T) {
	t.Parallel()
	cases := []struct {
		p    domain.Position
		want string
	}{
		{domain.Position{}, "0-0"},
		{domain.Position{Commit: 12, Prepare: 34}, "12-34"},
		{domain.Position{Commit: 5}, "5-0"},
		{domain.Position{Commit: math.MaxUint64, Prepare: math.MaxUint64}, "18446744073709551615-18446744073709551615"},
	}
	for _, c := range cases {
		t.Run(c.want, func(t *testing.T) {
			t.Parallel()
			if got := c.p.String(); got != c.want {
				t.Fatalf("String(): got %q, want %q", got, c.want)
			}
			got, err := domain.ParsePosition(c.want)
			if err != nil {
				t.Fatalf("ParsePosition(%q): got error %v, want %+v", c.want, err, c.p)
			}
			if got != c.p {
				t.Fatalf("ParsePosition(%q): got %+v, want %+v", c.want, got, c.p)
			}
		})
	}
}

func TestParsePositionErrors(t *testing.T) {
	t.Parallel()
	for _, s := range []string{
		"", "12", "12-", "-34", "-", "a-1", "1-b", "1-2-3", "-1-2", "1--2", " 1-2", "1-2 ", "+1-2", "1.5-2",
		"18446744073709551616-0", "0-18446744073709551616", "0x10-1", "1_000-1",
	} {
		t.Run(s, func(t *testing.T) {
			t.Parallel()
			got, err := domain.ParsePosition(s)
			if err == nil {
				t.Fatalf("ParsePosition(%q): got %+v, want an error", s, got)
			}
			if got != (domain.Position{}) {
				t.Fatalf("ParsePosition(%q): got %+v with the error, want the zero position", s, got)
			}
		})
	}
}
