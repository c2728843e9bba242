package query

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/projections/httpapi"
)

// A process whose query indexes have not loaded the stored records yet
// does not answer lists or counts from a half-built index: they answer
// 503 BILLFOLD-INDEX-LOADING with Retry-After, and Loading says so, while
// a single record is read at once; once loaded, every list holds every
// stored record.
func TestQueryListsWaitForTheIndexLoad(t *testing.T) {
	f := newQueryFixture(t)
	for _, id := range []string{"sub_1", "sub_2", "sub_3"} {
		f.putSub(domain.SubscriptionRecord{Provider: domain.Stripe, ID: id, CustomerID: "cus_1", State: domain.StateActive})
	}
	f.waitCount(3)

	// A second process on the same stores, started but not yet loaded.
	q := New(f.engine, nil, "")
	mux := http.NewServeMux()
	q.Register(mux, nil)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	assert.True(t, q.Loading())
	for _, path := range []string{"/v1/subscriptions?state=active", "/v1/subscriptions/counts", "/v1/customers/stripe/cus_1/subscriptions"} {
		resp, err := http.Get(srv.URL + path)
		require.NoError(t, err)
		var body httpapi.APIError
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
		resp.Body.Close()
		assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, path)
		assert.Equal(t, domain.CodeIndexLoading, body.Code, path)
		assert.Equal(t, "1", resp.Header.Get("Retry-After"), path)
	}
	resp, err := http.Get(srv.URL + "/v1/subscriptions/stripe/sub_2")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode, "a single record does not need the index")

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { q.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-q.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("the index did not load")
	}
	assert.False(t, q.Loading())
	page, err := q.ListSubscriptions(context.Background(), SubscriptionFilter{State: domain.StateActive}, 10, "")
	require.NoError(t, err)
	assert.Len(t, page.Items, 3, "the first answer holds every stored record")
}
