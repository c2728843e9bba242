//go:build !race

package main

// raceEnabled is true in a -race build, whose smoke runs are made smaller.
const raceEnabled = false
