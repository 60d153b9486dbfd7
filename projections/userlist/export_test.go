package userlist

import "github.com/google/uuid"

// ListSQL answers the page query List runs for f, for EXPLAIN in tests.
func ListSQL(ws uuid.UUID, f Filter) (string, []any, error) {
	vf, err := validate(ws, f)
	if err != nil {
		return "", nil, err
	}
	sql, args := listSQL(ws, vf)
	return sql, args, nil
}
