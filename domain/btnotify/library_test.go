package btnotify_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/domain/btnotify"
	"github.com/billfold/billfold/domain/btnotify/btfixtures"
)

// Every sample of Braintree's own library decodes, and its identity is the
// object the library was asked about, whatever element carries it; a kind
// that names no object has none, and is told apart by its digest.
func TestLibrarySamplesIdentity(t *testing.T) {
	digests := map[string]string{}
	for _, n := range btfixtures.Load().Notifications {
		got, err := btnotify.Decode(n.Body())
		require.NoError(t, err, n.Name)
		assert.Equal(t, n.Kind, got.Kind)
		assert.Regexp(t, `^[0-9a-f]{64}$`, got.Digest)
		if other, dup := digests[got.Digest]; dup {
			t.Errorf("%s and %s have one digest", other, n.Name)
		}
		digests[got.Digest] = n.Name
		switch {
		case n.Kind == "check" || n.Kind == "account_updater_daily_report":
			assert.Empty(t, got.Identity, n.Name)
			assert.Empty(t, btnotify.IdentifyingElement(n.Kind))
		case strings.Contains(n.Name, "/obj_"), strings.HasPrefix(n.Kind, "subscription_"):
			assert.Equal(t, n.ID, got.Identity, n.Name)
		}
	}
}

// The subscription histories carry the fields the fold reads.
func TestLibrarySubscriptionFields(t *testing.T) {
	n, err := btnotify.Decode(btfixtures.Load().Named("paid/charged_successfully_retry").Body())
	require.NoError(t, err)
	s := n.Subscription
	require.NotNil(t, s)
	assert.Equal(t, "Active", s.Status)
	assert.Equal(t, "2026-01-15", s.FirstBillingDate)
	assert.Equal(t, "2026-03-15", s.NextBillingDate)
	assert.True(t, s.TrialPeriod)
	require.Len(t, s.Transactions, 3)
	assert.Equal(t, "tx_3", s.Transactions[0].ID)
	assert.Equal(t, "bt_cus_1", s.Transactions[0].CustomerID)
}
