package eventstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/domain"
)

// PLACEHOLDER (helper "delete"): the seal helper owns Accounts.Delete and
// the "person-" stream prefix; this minimal version lets the DeleteAccount
// command be tested before that lands. The lead keeps one of the two.

// personStream names the stream of one account's deletion.
func personStream(userID uuid.UUID) string { return PersonPrefix + userID.String() }

// Delete appends AccountDeleted to person-<userID>, once: a second call
// reads the first one back and answers its time and position.
func (a *Accounts) Delete(ctx context.Context, userID uuid.UUID, meta domain.Metadata, at time.Time) (time.Time, domain.Position, error) {
	stream := personStream(userID)
	data, err := Encode(domain.AccountDeleted{UserID: userID, DeletedAt: at}, meta)
	if err != nil {
		return time.Time{}, domain.Position{}, err
	}
	res, err := a.store.Append(ctx, stream, NoStream{}, data)
	if err == nil {
		return at, res.Position, nil
	}
	if !errors.Is(err, ErrWrongExpectedRevision) {
		return time.Time{}, domain.Position{}, err
	}
	events, err := a.store.ReadStream(ctx, stream, ReadOptions{Max: 1})
	if err != nil {
		return time.Time{}, domain.Position{}, err
	}
	rec, err := Decode(events[0])
	if err != nil {
		return time.Time{}, domain.Position{}, err
	}
	del, ok := rec.Event.(domain.AccountDeleted)
	if !ok {
		return time.Time{}, domain.Position{}, fmt.Errorf("%s starts with %s, want AccountDeleted", stream, events[0].Type)
	}
	return del.DeletedAt, rec.Position, nil
}
