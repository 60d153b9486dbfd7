package commands

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/usersd/usersd/domain"
)

// Observer is told of every use case the application handled: its name
// ("invite_users"), its outcome (Outcome) and how long it took.
// *metrics.Metrics counts them in usersd_command_outcomes_total.
type Observer interface {
	ObserveCommand(name, outcome string, took time.Duration)
}

// Instrumentation is what NewApplication decorates every handler with. A
// nil field leaves its part out.
type Instrumentation struct {
	// Logger gets a debug line per use case handled: its name, outcome and
	// duration, never the command's fields (addresses, names, tokens).
	Logger   *slog.Logger
	Observer Observer
}

// Outcomes of a use case besides a domain error's code.
const (
	OutcomeOK = "ok"
	// OutcomeCancelled: the caller left (its context ended) first.
	OutcomeCancelled = "cancelled"
	// OutcomeInternal: anything else, a fault of ours or of a store.
	OutcomeInternal = "internal"
)

// Outcome names how a use case ended: ok, the domain error's code
// (last_admin, rate_limited, ...), cancelled, or internal.
func Outcome(err error) string {
	switch {
	case err == nil:
		return OutcomeOK
	case domain.ErrorCode(err) != "":
		return string(domain.ErrorCode(err))
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return OutcomeCancelled
	}
	return OutcomeInternal
}

// instrument decorates h with in: the one place where every use case is
// logged and measured (and, later, traced).
func instrument[C, R any](name string, h Handler[C, R], in Instrumentation) Handler[C, R] {
	if in.Logger == nil && in.Observer == nil {
		return h
	}
	return instrumented[C, R]{name: name, next: h, in: in}
}

type instrumented[C, R any] struct {
	name string
	next Handler[C, R]
	in   Instrumentation
}

func (h instrumented[C, R]) Handle(ctx context.Context, cmd C) (R, error) {
	start := time.Now()
	r, err := h.next.Handle(ctx, cmd)
	took := time.Since(start)
	outcome := Outcome(err)
	if h.in.Observer != nil {
		h.in.Observer.ObserveCommand(h.name, outcome, took)
	}
	if h.in.Logger != nil && h.in.Logger.Enabled(ctx, slog.LevelDebug) {
		attrs := []slog.Attr{slog.String("command", h.name), slog.String("outcome", outcome), slog.Duration("took", took)}
		if outcome == OutcomeInternal {
			attrs = append(attrs, slog.Any("err", err))
		}
		h.in.Logger.LogAttrs(ctx, slog.LevelDebug, "command handled", attrs...)
	}
	return r, err
}
