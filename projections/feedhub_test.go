package projections_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/projections/feed"
	"github.com/billfold/billfold/projections/httpapi"
	"github.com/billfold/billfold/test/natstest"
)

func changesConsumers(t *testing.T, js jetstream.JetStream) int {
	t.Helper()
	s, err := js.Stream(context.Background(), domain.ChangesStream)
	require.NoError(t, err)
	info, err := s.Info(context.Background())
	require.NoError(t, err)
	return info.State.Consumers
}

// firstID reads an SSE answer until its first event and returns the id.
func firstID(resp *http.Response) (string, error) {
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if id, ok := strings.CutPrefix(sc.Text(), "id: "); ok {
			return id, nil
		}
	}
	return "", fmt.Errorf("no event: %v", sc.Err())
}

// The 1,100 change-feed clients that connect and leave: every one
// is served (history, then live), the ones past the cap get 429
// BILLFOLD-BUSY, and the stream keeps one shared reader's consumer, not
// one per client; Close deletes it.
func TestChangeFeedClientsShareOneReader(t *testing.T) {
	_, js := natstest.Connect(t, natstest.Server(t))
	ctx := context.Background()
	_, err := js.CreateOrUpdateStream(ctx, feed.ChangesConfig(1))
	require.NoError(t, err)
	publish := func(id string) uint64 {
		b, _ := json.Marshal(feed.Change{Projection: domain.ProjectionCustomers, Provider: "stripe", ID: id, Version: 1})
		ack, err := js.Publish(ctx, domain.ChangeSubject(domain.ProjectionCustomers, "stripe", id), b)
		require.NoError(t, err)
		return ack.Sequence
	}
	first := publish("cus_0")
	publish("cus_1")

	feed := feed.NewChangeFeed(js, "")
	const maxClients = 50
	feed.MaxClients = maxClients
	srv := httptest.NewServer(feed)
	t.Cleanup(srv.Close)
	get := func(ctx context.Context, query string, header ...string) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/v1/changes?projection=customers"+query, nil)
		if err != nil {
			return nil, err
		}
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		return http.DefaultClient.Do(req)
	}

	// The cap: maxClients attached, the next one is refused.
	var held []*http.Response
	for range maxClients {
		resp, err := get(ctx, "")
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		held = append(held, resp)
	}
	resp, err := get(ctx, "")
	require.NoError(t, err)
	var apiErr httpapi.APIError
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&apiErr))
	resp.Body.Close()
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	assert.Equal(t, domain.CodeBusy, apiErr.Code)
	assert.NotEmpty(t, resp.Header.Get("Retry-After"))
	// A live change reaches every attached client from the one reader.
	live := publish("cus_live")
	for _, r := range held {
		id, err := firstID(r)
		require.NoError(t, err)
		assert.Equal(t, fmt.Sprint(live), id)
	}
	require.Eventually(t, func() bool { return feed.Clients() == 0 }, 10*time.Second, 10*time.Millisecond)

	// 1,100 clients come and go, resuming from the start of the feed.
	const clients = 1100
	work := make(chan int)
	errs := make(chan error, clients)
	var wg sync.WaitGroup
	for range maxClients / 2 {
		wg.Go(func() {
			for range work {
				cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				resp, err := get(cctx, "", "Last-Event-ID", "0")
				if err == nil && resp.StatusCode != http.StatusOK {
					err = fmt.Errorf("status %d", resp.StatusCode)
				}
				if err == nil {
					var id string
					if id, err = firstID(resp); err == nil && id != fmt.Sprint(first) {
						err = fmt.Errorf("first event %s, want %d", id, first)
					}
				}
				cancel()
				errs <- err
			}
		})
	}
	for i := range clients {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool { return feed.Clients() == 0 }, 10*time.Second, 10*time.Millisecond)
	assert.Equal(t, 1, changesConsumers(t, js), "one shared reader, no consumer per client")
	feed.Close()
	require.Eventually(t, func() bool { return changesConsumers(t, js) == 0 }, 10*time.Second, 20*time.Millisecond, "Close deletes the reader's consumer")
}
