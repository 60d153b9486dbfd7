package memberships

// PermissionsSQL is the query Permissions runs, for EXPLAIN in tests.
const PermissionsSQL = permissionsSQL
