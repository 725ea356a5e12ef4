//go:build !race

package otel_test

const raceOn = false
