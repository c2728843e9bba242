// Package domain is billfold's vocabulary: providers, the journaled event
// envelope, delivery outcomes, error codes, subjects and stream names, and the
// projection record types.
//
// It owns names and pure value types only. It must never perform I/O, read
// the clock, or import any other billfold package; every other package
// imports it.
package domain
