// Package clerkwire reads Clerk's webhook event format (delivered through
// Svix): the one place billfold knows which fields of a Clerk user mean
// what. The fold decodes each journaled Clerk event once with Decode and
// every projection reads the same User.
//
// It must never do I/O, read the clock, or check signatures: callers
// decode only a body that package ingest/svix has verified and the journal
// kept. Decode never panics, whatever the input.
package clerkwire

import (
	"errors"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// User is the part of a Clerk user (the data of user.created, user.updated
// and user.deleted) billfold reads.
type User struct {
	ID             string  `json:"id"`
	FirstName      string  `json:"first_name"`
	LastName       string  `json:"last_name"`
	PrimaryEmailID string  `json:"primary_email_address_id"`
	Emails         []Email `json:"email_addresses"`
	// CreatedAt is Clerk's creation time in Unix milliseconds.
	CreatedAt int64 `json:"created_at"`
	Deleted   bool  `json:"deleted"`
	// ExternalID is the id the application gave the user in its own
	// systems (null when unset); billfold reads one naming a Stripe
	// customer (cus_...) as a link between the two.
	ExternalID string `json:"external_id"`
}

// Email is one of a user's email addresses.
type Email struct {
	ID      string `json:"id"`
	Address string `json:"email_address"`
}

// PrimaryEmail is the address of the user's primary email, "" if none.
func (u *User) PrimaryEmail() string {
	for _, e := range u.Emails {
		if e.ID == u.PrimaryEmailID {
			return e.Address
		}
	}
	return ""
}

// ErrNoUser is Decode's error for an event whose data has no user id.
var ErrNoUser = errors.New("data has no id")

// decodeOptions read JSON as encoding/json does where it matters for
// payloads (the last of duplicate names wins, invalid UTF-8 is accepted),
// but match member names exactly: Clerk's are lower-case snake case.
var decodeOptions = jsonv2.JoinOptions(jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))

// Decode reads a Clerk user event body in one pass.
func Decode(body []byte) (*User, error) {
	var e struct {
		Data *User `json:"data"`
	}
	if err := jsonv2.Unmarshal(body, &e, decodeOptions); err != nil {
		return nil, err
	}
	if e.Data == nil || e.Data.ID == "" {
		return nil, ErrNoUser
	}
	return e.Data, nil
}
