package esdbtest

import (
	"testing"

	esdbclient "github.com/EventStore/EventStore-Client-Go/v4/esdb"
)

// Client connects the official client, without its logging, to a
// connection string (a Server's URL, or a cluster's); it is closed when the
// test ends. Tests use it to do what the adapter never does: write foreign
// records, read system streams, hold the server to what the client expects.
func Client(tb testing.TB, url string) *esdbclient.Client {
	tb.Helper()
	config, err := esdbclient.ParseConnectionString(url)
	if err != nil {
		tb.Fatal(err)
	}
	config.Logger = esdbclient.NoopLogging()
	c, err := esdbclient.NewClient(config)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	return c
}
