//go:build race

package integration

// raceEnabled is true when the tests run with -race, which slows the
// test process's own clients several times: timing figures that tests
// check for the bridge are then reported rather than held to.
const raceEnabled = true
