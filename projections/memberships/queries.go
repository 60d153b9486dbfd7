package memberships

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections"
)

// DB is what the queries need: a *pgxpool.Pool, a *pgx.Conn or a pgx.Tx.
type DB = projections.DB

// Queries reads the memberships.
type Queries struct{ db DB }

// NewQueries returns the memberships' queries on db.
func NewQueries(db DB) *Queries {
	return &Queries{db: projections.NeedDB("memberships: NewQueries", db)}
}

// Membership is one workspace a person has joined. The JSON form is the
// API's (GET /v1/me/workspaces).
type Membership struct {
	WorkspaceID uuid.UUID     `json:"workspaceId"`
	Name        string        `json:"name"`
	Role        domain.Role   `json:"role"`
	Status      domain.Status `json:"status"`
}

// ForUser lists the workspaces a person has joined, active or suspended,
// by workspace name (lower case), then id. It is never nil.
func (q *Queries) ForUser(ctx context.Context, user uuid.UUID) ([]Membership, error) {
	rows, err := q.db.Query(ctx, `SELECT m.workspace_id, coalesce(w.name, ''), m.role, m.status
		FROM memberships m
		LEFT JOIN memberships_workspaces w ON w.workspace_id = m.workspace_id
		WHERE m.user_id = $1
		ORDER BY lower(coalesce(w.name, '')), m.workspace_id`, projections.PGID(user))
	if err != nil {
		return nil, fmt.Errorf("memberships: for user: %w", err)
	}
	defer rows.Close()
	out := []Membership{}
	for rows.Next() {
		var m Membership
		var ws pgtype.UUID
		var role, status string
		if err := rows.Scan(&ws, &m.Name, &role, &status); err != nil {
			return nil, fmt.Errorf("memberships: for user: %w", err)
		}
		m.WorkspaceID, m.Role, m.Status = ws.Bytes, domain.Role(role), domain.Status(status)
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("memberships: for user: %w", err)
	}
	return out, nil
}

const permissionsSQL = `SELECT role, status FROM memberships WHERE user_id = $1 AND workspace_id = $2`

// Permissions answers a person's role and status in a workspace and what
// they may do there: their role's permissions while active, none while
// suspended. found is false when they are not a member (never joined,
// removed, or only invited). One primary-key lookup.
func (q *Queries) Permissions(ctx context.Context, ws, user uuid.UUID) (role domain.Role, status domain.Status, perms []domain.Permission, found bool, err error) {
	var r, s string
	err = q.db.QueryRow(ctx, permissionsSQL, projections.PGID(user), projections.PGID(ws)).Scan(&r, &s)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", "", nil, false, nil
	}
	if err != nil {
		return "", "", nil, false, fmt.Errorf("memberships: permissions: %w", err)
	}
	role, status = domain.Role(r), domain.Status(s)
	perms = []domain.Permission{}
	if status == domain.StatusActive {
		perms = append(perms, role.Permissions()...)
	}
	return role, status, perms, true, nil
}
