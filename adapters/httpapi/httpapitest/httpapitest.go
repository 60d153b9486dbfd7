// Package httpapitest helps tests and benchmarks that call the HTTP API
// over the network, as its clients do: the benchmarks of the API alone
// (adapters/httpapi) and of the whole service (cmd/usersd).
package httpapitest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// StatusError is Exchange's answer to a status other than the one wanted:
// a caller that retries some statuses asks Status, never the message.
type StatusError struct {
	Status, Want int
	err          error
}

func (e *StatusError) Error() string { return e.err.Error() }

// Exchange sends r with client and reads its whole answer. It fails if
// the request does, or if the status is not want (the error names the
// request, the status and the body); otherwise it decodes the body into
// out, unless out is nil.
func Exchange(client *http.Client, r *http.Request, want int, out any) error {
	res, err := client.Do(r)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	if res.StatusCode != want {
		return &StatusError{Status: res.StatusCode, Want: want, err: fmt.Errorf("%s %s: %d %s, want %d", r.Method, r.URL.RequestURI(), res.StatusCode, raw, want)}
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(raw, out)
}

// Invitations is the part of POST /v1/workspaces/{ws}/invitations' answer
// the benchmarks read.
type Invitations struct {
	Results  []struct{ Outcome string }
	Position string
}

// InvitedOne fails unless the answer is one address, invited.
func (inv Invitations) InvitedOne() error {
	if len(inv.Results) != 1 || inv.Results[0].Outcome != "invited" {
		return fmt.Errorf("outcome %+v, want invited", inv.Results)
	}
	return nil
}

// FromClients runs send n times (i from 0 to n-1) from clients goroutines
// (c is the client), each client taking the next i until none is left or
// a send has failed, and answers the elapsed time; the first failure fails
// the benchmark, named by what.
func FromClients(tb testing.TB, clients int, what string, n int, send func(c int, i int64) error) time.Duration {
	tb.Helper()
	var taken atomic.Int64
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	start := time.Now()
	for c := range clients {
		wg.Go(func() {
			for {
				i := taken.Add(1) - 1
				if i >= int64(n) || failed.Load() != nil {
					return
				}
				if err := send(c, i); err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
			}
		})
	}
	wg.Wait()
	d := time.Since(start)
	if err := failed.Load(); err != nil {
		tb.Fatalf("%s: %v", what, *err)
	}
	return d
}
