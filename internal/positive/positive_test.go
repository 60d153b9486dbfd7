package positive_test

import (
	"testing"
	"time"

	"github.com/usersd/usersd/internal/positive"
)

func TestOr(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ v, def, want time.Duration }{
		{time.Second, time.Minute, time.Second},
		{0, time.Minute, time.Minute},
		{-time.Second, time.Minute, time.Minute},
	} {
		if got := positive.Or(c.v, c.def); got != c.want {
			t.Errorf("Or(%s, %s) = %s, want %s", c.v, c.def, got, c.want)
		}
	}
}
