//go:build !race

package local_test

const raceOn = false
