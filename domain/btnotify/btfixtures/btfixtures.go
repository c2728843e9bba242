// Package btfixtures holds Braintree webhook notifications generated and
// signed by Braintree's official Node library (braintree@3.40.0), and its
// answers to verification challenges, for tests: testdata/README.md says
// how they were made. Only tests import it.
package btfixtures

import (
	_ "embed"
	"encoding/json"
	"net/url"
)

//go:embed testdata/notifications.json
var raw []byte

// Set is the generated file.
type Set struct {
	Generator     string         `json:"generator"`
	MerchantID    string         `json:"merchantId"`
	PublicKey     string         `json:"publicKey"`
	PrivateKey    string         `json:"privateKey"`
	Notifications []Notification `json:"notifications"`
	Challenges    []Challenge    `json:"challenges"`
}

// Notification is one signed notification as the library returned it.
type Notification struct {
	// Name is "<kind>/<object>" for the library's own samples, and
	// "<history>/<step>" for the subscription histories.
	Name string `json:"name"`
	Kind string `json:"kind"`
	// ID is the id passed to sampleNotification: the object the
	// notification is about.
	ID string `json:"id"`
	// At is the notification's timestamp as the script pinned it.
	At        string `json:"at"`
	Signature string `json:"bt_signature"`
	Payload   string `json:"bt_payload"`
}

// Challenge is a challenge and the library's verify() answer to it.
type Challenge struct {
	Challenge string `json:"challenge"`
	Response  string `json:"response"`
}

// Load decodes the embedded file.
func Load() Set {
	var s Set
	if err := json.Unmarshal(raw, &s); err != nil {
		panic("btfixtures: " + err.Error())
	}
	return s
}

// Secret is the endpoint secret of the key pair the notifications are
// signed with ("public_key:private_key").
func (s Set) Secret() string { return s.PublicKey + ":" + s.PrivateKey }

// Named returns the notification called name; it panics when there is none.
func (s Set) Named(name string) Notification {
	for _, n := range s.Notifications {
		if n.Name == name {
			return n
		}
	}
	panic("btfixtures: no notification " + name)
}

// Body is the form-encoded request body Braintree posts.
func (n Notification) Body() []byte {
	return []byte(url.Values{"bt_signature": {n.Signature}, "bt_payload": {n.Payload}}.Encode())
}
