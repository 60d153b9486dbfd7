package memberships

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections"
)

// Account is one account as the read model knows it.
type Account struct {
	UserID uuid.UUID
	// Email is "" once the account is deleted.
	Email     string
	DeletedAt *time.Time
}

// Account answers the account of id; found is false for an id no account
// has.
func (q *Queries) Account(ctx context.Context, id uuid.UUID) (a Account, found bool, err error) {
	var email pgtype.Text
	var deleted pgtype.Timestamptz
	err = q.db.QueryRow(ctx, `SELECT email, deleted_at FROM memberships_accounts WHERE user_id = $1`,
		projections.PGID(id)).Scan(&email, &deleted)
	if errors.Is(err, pgx.ErrNoRows) {
		return Account{}, false, nil
	}
	if err != nil {
		return Account{}, false, fmt.Errorf("memberships: account: %w", err)
	}
	a = Account{UserID: id, Email: email.String}
	if deleted.Valid {
		t := deleted.Time.UTC()
		a.DeletedAt = &t
	}
	return a, true, nil
}

// AccountByEmail answers the id of the live (not deleted) account of a
// normalised address; found is false when there is none.
func (q *Queries) AccountByEmail(ctx context.Context, email domain.Email) (id uuid.UUID, found bool, err error) {
	var u pgtype.UUID
	err = q.db.QueryRow(ctx, `SELECT user_id FROM memberships_accounts
		WHERE email = $1 AND deleted_at IS NULL ORDER BY user_id LIMIT 1`, string(email)).Scan(&u)
	if errors.Is(err, pgx.ErrNoRows) {
		return uuid.Nil, false, nil
	}
	if err != nil {
		return uuid.Nil, false, fmt.Errorf("memberships: account by e-mail: %w", err)
	}
	return u.Bytes, true, nil
}
