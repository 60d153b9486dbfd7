//go:build race

package esdbtest_test

// raceEnabled tells that the tests run with the race detector.
const raceEnabled = true
