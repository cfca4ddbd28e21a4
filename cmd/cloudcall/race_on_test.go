//go:build race

package main

// Under -race the CLI the tests drive is built with -race too, so the soak
// races the emulator's own goroutines (pool, line writer, front doors).
const raceEnabled = true
