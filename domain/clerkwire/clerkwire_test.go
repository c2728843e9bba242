package clerkwire_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/domain/clerkwire"
	"github.com/billfold/billfold/ingest/samples"
)

// A Clerk user event as Clerk sends it gives the user, its primary email
// among several, and its creation time in milliseconds.
func TestDecodeUser(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	u, err := clerkwire.Decode(samples.ClerkUser("user.created", "user_1", at))
	require.NoError(t, err)
	assert.Equal(t, "user_1", u.ID)
	assert.NotEmpty(t, u.PrimaryEmail())

	u, err = clerkwire.Decode([]byte(`{"type":"user.updated","data":{"id":"user_2","primary_email_address_id":"e2",
		"email_addresses":[{"id":"e1","email_address":"old@example.com"},{"id":"e2","email_address":"new@example.com"}],"created_at":1767225600000}}`))
	require.NoError(t, err)
	assert.Equal(t, "new@example.com", u.PrimaryEmail())
	assert.Equal(t, int64(1767225600000), u.CreatedAt)
}

// external_id is read as Clerk sends it: a string, or null when unset.
func TestDecodeExternalID(t *testing.T) {
	u, err := clerkwire.Decode([]byte(`{"data":{"id":"user_1","external_id":"cus_123"}}`))
	require.NoError(t, err)
	assert.Equal(t, "cus_123", u.ExternalID)
	u, err = clerkwire.Decode([]byte(`{"data":{"id":"user_1","external_id":null}}`))
	require.NoError(t, err)
	assert.Empty(t, u.ExternalID)
	_, err = clerkwire.Decode([]byte(`{"data":{"id":"user_1","external_id":42}}`))
	assert.Error(t, err, "a number is no external id")
}

func TestDecodeRefusesEventsWithoutAUser(t *testing.T) {
	for _, body := range []string{`{}`, `{"data":null}`, `{"data":{"first_name":"Ana"}}`} {
		_, err := clerkwire.Decode([]byte(body))
		assert.ErrorIs(t, err, clerkwire.ErrNoUser, body)
	}
	_, err := clerkwire.Decode([]byte(`{"data":{"id":"u","created_at":"yesterday"}}`))
	assert.Error(t, err)
}

// Decode never panics, and a user it accepts has an id.
func FuzzDecode(f *testing.F) {
	f.Add(samples.ClerkUser("user.updated", "user_1", time.Unix(1767225600, 0)))
	f.Add([]byte(`{"data":{"id":"u","email_addresses":[{"id":1}]}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		u, err := clerkwire.Decode(body)
		if err != nil {
			return
		}
		assert.NotEmpty(t, u.ID)
		_ = u.PrimaryEmail()
	})
}
