package postgres

import (
	"context"

	"github.com/google/uuid"

	"github.com/usersd/usersd/commands"
	"github.com/usersd/usersd/projections"
	"github.com/usersd/usersd/projections/memberships"
	"github.com/usersd/usersd/projections/userlist"
)

// PersonDirectory answers DeleteAccount's questions from the read models:
// the account (memberships) and the workspaces where the person is a
// member or invited (the user list, which alone keeps invitations).
type PersonDirectory struct {
	accounts *memberships.Queries
	rows     *userlist.Queries
}

var _ commands.PersonDirectory = PersonDirectory{}

// NewPersonDirectory returns the directory on db.
func NewPersonDirectory(db projections.DB) PersonDirectory {
	return PersonDirectory{accounts: memberships.NewQueries(db), rows: userlist.NewQueries(db, nil)}
}

func (d PersonDirectory) Person(ctx context.Context, user uuid.UUID) (commands.Person, error) {
	a, found, err := d.accounts.Account(ctx, user)
	if err != nil || !found {
		return commands.Person{}, err
	}
	rows, err := d.rows.Person(ctx, user)
	if err != nil {
		return commands.Person{}, err
	}
	p := commands.Person{Registered: true, Deleted: a.DeletedAt != nil}
	for _, r := range rows {
		p.Workspaces = append(p.Workspaces, r.WorkspaceID)
	}
	return p, nil
}
