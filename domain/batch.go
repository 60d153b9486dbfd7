package domain

import "github.com/google/uuid"

// Outcome is what an invitation batch did with one address.
type Outcome string

const (
	OutcomeInvited        Outcome = "invited"
	OutcomeAlreadyMember  Outcome = "already_member"
	OutcomeAlreadyInvited Outcome = "already_invited"
	OutcomeInvalid        Outcome = "invalid"
)

// BatchEntry is one distinct address of a batch: valid with its normal form,
// or invalid with the reason.
type BatchEntry struct {
	Input   string // as typed, trimmed
	Email   Email  // set when valid
	Problem string // set when invalid
}

// Valid reports whether the entry holds a usable address.
func (e BatchEntry) Valid() bool { return e.Problem == "" }

// ParseBatch turns what the inviter typed (one or more lists of addresses)
// into distinct entries in the order first seen: addresses are compared in
// their normal form, invalid inputs by their text. A batch with no address
// is empty_batch; one with more than MaxBatch distinct addresses is
// batch_too_large, and nothing of it is invited.
func ParseBatch(lists ...string) ([]BatchEntry, error) {
	var entries []BatchEntry
	seen := make(map[string]bool)
	for _, list := range lists {
		for _, input := range SplitAddressList(list) {
			e := BatchEntry{Input: input}
			key := "bad:" + input
			if email, err := NormalizeEmail(input); err != nil {
				e.Problem = err.(*Error).Message
			} else {
				e.Email = email
				key = "ok:" + string(email)
			}
			if seen[key] {
				continue
			}
			seen[key] = true
			if len(entries) == MaxBatch {
				return nil, fieldError("emails", CodeBatchTooLarge, "a batch holds at most %d addresses; split the list and send the rest in another batch", MaxBatch)
			}
			entries = append(entries, e)
		}
	}
	if len(entries) == 0 {
		return nil, fieldError("emails", CodeEmptyBatch, "type at least one e-mail address")
	}
	return entries, nil
}

// InviteResult is the answer for one address of a batch.
type InviteResult struct {
	Email        string // the normal form, or the input when invalid
	Outcome      Outcome
	UserID       uuid.UUID // zero when invalid
	InvitationID uuid.UUID // set for invited and already_invited
	Detail       string
	// Token is the link's secret for a new invitation. It exists only in
	// memory, on its way to the mailer; events hold its hash.
	Token string
}
