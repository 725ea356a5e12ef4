//go:build race

package otel_test

// raceOn: the race detector allocates on paths that allocate nothing
// without it, so allocation counts are checked only without it.
const raceOn = true
