package domain

import (
	"sort"
	"time"

	"github.com/google/uuid"
)

// rateWindow is the rolling period the invitation limits count over.
const rateWindow = 24 * time.Hour

// inviteLog remembers when invitations and resends were sent, and by whom,
// for the last rateWindow. Times arrive in order (they come from events), so
// counting is a binary search and forgetting trims the front: a check costs
// the same in a workspace of ten members as in one of a hundred thousand.
type inviteLog struct {
	all       []time.Time
	byInviter map[uuid.UUID][]time.Time
}

func newInviteLog() inviteLog {
	return inviteLog{byInviter: make(map[uuid.UUID][]time.Time)}
}

func (l *inviteLog) add(by uuid.UUID, at time.Time) {
	l.all = trimBefore(append(l.all, at), at.Add(-rateWindow))
	mine := trimBefore(append(l.byInviter[by], at), at.Add(-rateWindow))
	l.byInviter[by] = mine
}

// trimBefore drops the times before cutoff, reusing the slice.
func trimBefore(ts []time.Time, cutoff time.Time) []time.Time {
	i := sort.Search(len(ts), func(i int) bool { return !ts[i].Before(cutoff) })
	if i == 0 {
		return ts
	}
	return append(ts[:0], ts[i:]...)
}

// check refuses n more sends by inviter at now if either limit would be passed.
func (l *inviteLog) check(inviter uuid.UUID, n int, now time.Time, limits InviteLimits) error {
	if n == 0 {
		return nil
	}
	if err := limitError(l.all, n, now, limits.PerWorkspace, "this workspace"); err != nil {
		return err
	}
	return limitError(l.byInviter[inviter], n, now, limits.PerInviter, "you")
}

func limitError(ts []time.Time, n int, now time.Time, limit int, who string) error {
	if limit <= 0 {
		return nil
	}
	cutoff := now.Add(-rateWindow)
	first := sort.Search(len(ts), func(i int) bool { return ts[i].After(cutoff) })
	recent := ts[first:]
	if len(recent)+n <= limit {
		return nil
	}
	e := newError(CodeRateLimited, "%s may send %d invitations a day; %d were sent in the last 24 hours, so %d more do not fit", who, limit, len(recent), n)
	if n <= limit {
		// Room for n opens when enough of the oldest recent sends age out.
		e.RetryAt = recent[len(recent)+n-limit-1].Add(rateWindow)
	}
	return e
}
