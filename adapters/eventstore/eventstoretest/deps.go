package eventstoretest

import (
	"github.com/usersd/usersd/adapters/eventstore"
	"github.com/usersd/usersd/commands"
)

// Caches are the sizes of the caches of the repositories over an event
// store: how many workspace aggregates eventstore.Workspaces keeps, and how
// many addresses eventstore.Accounts remembers.
type Caches struct {
	Workspaces, Accounts int
}

// TestCaches hold more than any test makes.
var TestCaches = Caches{Workspaces: 64, Accounts: 1000}

// ServeCaches are the sizes usersd serve runs with, for the benchmarks
// that measure the service as it runs.
var ServeCaches = Caches{Workspaces: eventstore.ServeWorkspaceCache, Accounts: eventstore.ServeAccountCache}

// Deps is what the application is built from over store and codec, as
// usersd serve wires it (commands.ProductionDeps: the system clock, random
// ids), with secrets and TestCaches. The accounts are also the Deleter, as
// in usersd serve: DeleteAccount works once a test adds People and Keys.
func Deps(store eventstore.Store, codec *eventstore.Codec, secrets commands.LinkSecrets) commands.Deps {
	return DepsWithCaches(store, codec, secrets, TestCaches)
}

// DepsWithCaches is Deps with caches of the given sizes, for the benchmarks
// whose figures depend on them.
func DepsWithCaches(store eventstore.Store, codec *eventstore.Codec, secrets commands.LinkSecrets, c Caches) commands.Deps {
	accounts := eventstore.NewAccounts(store, codec, c.Accounts)
	deps := commands.ProductionDeps(eventstore.NewWorkspaces(store, codec, c.Workspaces), accounts, eventstore.NewLogins(store, codec), secrets)
	deps.Deleter = accounts
	return deps
}
