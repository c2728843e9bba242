package test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest/samples"
	"github.com/billfold/billfold/projections/feed"
	"github.com/billfold/billfold/test/natstest"
)

// feedServer starts billfold on an external NATS server, so the test can
// read its streams, with the Stripe endpoint configured.
func feedServer(t *testing.T) (*server, string) {
	t.Helper()
	url := externalNATS(t)
	return startServer(t, t.TempDir(), []string{"STRIPE_WEBHOOK_SECRET=" + stripeSecret}, "--nats-url", url), url
}

// deliverSub delivers a signed Stripe subscription event over HTTP.
func deliverSub(t *testing.T, srv *server, id, typ, sub, status string, at time.Time, prev map[string]any) {
	t.Helper()
	body := samples.Stripe{EventID: id, Type: typ, Created: at, CustomerID: "cus_" + sub, SubscriptionID: sub, Status: status, Previous: prev}.Event()
	code, answer, _ := srv.post("stripe", body, stripeSig(body, time.Now(), stripeSecret))
	require.Equal(t, http.StatusOK, code, answer)
}

// The "done when": a lifecycle transition on NATS for an active →
// past_due → active history, delivered over HTTP to the real binary.
func TestLifecycleTransitionsOnNATS(t *testing.T) {
	srv, url := feedServer(t)
	nc, _ := natstest.ConnectURL(t, url)
	got := make(chan *nats.Msg, 16)
	sub, err := nc.ChanSubscribe("billfold.lifecycle.stripe.>", got)
	require.NoError(t, err)
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	require.NoError(t, nc.Flush())

	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	deliverSub(t, srv, "evt_lc_1", "customer.subscription.created", "sub_lc", "active", base, nil)
	deliverSub(t, srv, "evt_lc_2", "customer.subscription.updated", "sub_lc", "past_due", base.Add(time.Minute), map[string]any{"status": "active"})
	deliverSub(t, srv, "evt_lc_3", "customer.subscription.updated", "sub_lc", "active", base.Add(2*time.Minute), map[string]any{"status": "past_due"})

	want := []struct {
		subject  string
		from, to domain.LifecycleState
		event    string
	}{
		{"billfold.lifecycle.stripe.active", "", domain.StateActive, "evt_lc_1"},
		{"billfold.lifecycle.stripe.past_due", domain.StateActive, domain.StatePastDue, "evt_lc_2"},
		{"billfold.lifecycle.stripe.active", domain.StatePastDue, domain.StateActive, "evt_lc_3"},
	}
	for _, w := range want {
		select {
		case m := <-got:
			var lc feed.LifecycleChange
			require.NoError(t, json.Unmarshal(m.Data, &lc))
			assert.Equal(t, w.subject, m.Subject)
			assert.Equal(t, w.from, lc.From)
			assert.Equal(t, w.to, lc.To)
			assert.Equal(t, w.event, lc.EventID)
			assert.Equal(t, "sub_lc", lc.Subscription)
			assert.Equal(t, "cus_sub_lc", lc.Customer)
		case <-time.After(20 * time.Second):
			t.Fatalf("no lifecycle message %s\n%s", w.subject, tail(srv.logs.String(), 3000))
		}
	}
	select {
	case m := <-got:
		t.Fatalf("unexpected lifecycle message %s %s", m.Subject, m.Data)
	case <-time.After(500 * time.Millisecond):
	}

	// billfold watch shows the same history.
	out, code := runBillfold(t, "watch", "subscriptions", "--server", srv.admin, "--from", "start", "--count", "3")
	require.Equal(t, 0, code, out)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 3, out)
	for i, state := range []string{"active", "past_due", "active"} {
		assert.Contains(t, lines[i], "sub_lc", out)
		assert.Contains(t, lines[i], fmt.Sprintf("evt_lc_%d", i+1), out)
		assert.True(t, strings.HasSuffix(lines[i], "  "+state), "%q", lines[i])
	}
	out, code = runBillfold(t, "watch", "subscriptions", "--server", srv.admin, "--from", "start", "--count", "1", "-o", "json")
	require.Equal(t, 0, code, out)
	var first struct {
		Seq uint64 `json:"seq"`
		feed.Change
	}
	require.NoError(t, json.Unmarshal([]byte(out), &first), out)
	assert.NotZero(t, first.Seq)
	assert.Equal(t, "evt_lc_1", first.EventID)
}

// sseEvent is one event read from /v1/changes.
type sseEvent struct {
	id     uint64
	change feed.Change
}

// openFeed GETs the SSE feed and sends its events on the returned channel
// until the connection ends (then the channel closes).
func openFeed(t *testing.T, srv *server, path, lastID string) <-chan sseEvent {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.admin+path, nil)
	require.NoError(t, err)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	t.Cleanup(func() { cancel(); resp.Body.Close() })
	out := make(chan sseEvent, 1024)
	attached := make(chan struct{})
	go func() {
		defer close(out)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		var ev sseEvent
		once := false
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, ":") && !once:
				once = true
				close(attached)
			case strings.HasPrefix(line, "id: "):
				ev.id, _ = strconv.ParseUint(strings.TrimPrefix(line, "id: "), 10, 64)
			case strings.HasPrefix(line, "data: "):
				_ = json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &ev.change)
			case line == "" && ev.id != 0:
				out <- ev
				ev = sseEvent{}
			}
		}
	}()
	select {
	case <-attached:
	case <-time.After(10 * time.Second):
		t.Fatal("feed not attached")
	}
	return out
}

// The "done when": an SSE client resumes with Last-Event-ID across
// a server restart without gaps or repeats.
func TestChangeFeedResumesAcrossRestart(t *testing.T) {
	srv, _ := feedServer(t)
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	// Each subscription gets three versions: created, past_due, active.
	life := func(sub string, n int, step int) {
		switch step {
		case 0:
			deliverSub(t, srv, fmt.Sprintf("evt_%s_0", sub), "customer.subscription.created", sub, "active", base.Add(time.Duration(n)*time.Second), nil)
		case 1:
			deliverSub(t, srv, fmt.Sprintf("evt_%s_1", sub), "customer.subscription.updated", sub, "past_due", base.Add(time.Minute+time.Duration(n)*time.Second), map[string]any{"status": "active"})
		case 2:
			deliverSub(t, srv, fmt.Sprintf("evt_%s_2", sub), "customer.subscription.updated", sub, "active", base.Add(2*time.Minute+time.Duration(n)*time.Second), map[string]any{"status": "past_due"})
		}
	}
	const subs = 10
	versions := map[string][]int{} // subscription id -> versions seen
	var ids []uint64
	collect := func(feed <-chan sseEvent, want int) {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for len(ids) < want {
			select {
			case ev, ok := <-feed:
				require.True(t, ok, "feed closed early after %d events", len(ids))
				ids = append(ids, ev.id)
				versions[ev.change.ID] = append(versions[ev.change.ID], ev.change.Version)
				require.Equal(t, domain.ProjectionSubscriptions, ev.change.Projection)
				require.NotEmpty(t, ev.change.EventID)
			case <-deadline:
				t.Fatalf("%d of %d changes\n%s", len(ids), want, tail(srv.logs.String(), 3000))
			}
		}
	}

	// Steps 0 and 1 of every subscription, read from the start.
	for n := range subs {
		life(fmt.Sprintf("sub_rs_%d", n), n, 0)
		life(fmt.Sprintf("sub_rs_%d", n), n, 1)
	}
	feed := openFeed(t, srv, "/v1/changes?projection=subscriptions&from=start", "")
	collect(feed, 2*subs)
	last := ids[len(ids)-1]

	// The server goes away mid-feed; changes keep happening after it is
	// back; the client resumes after the last id it saw.
	srv.restart()
	for n := range subs {
		life(fmt.Sprintf("sub_rs_%d", n), n, 2)
	}
	resumed := openFeed(t, srv, "/v1/changes?projection=subscriptions", strconv.FormatUint(last, 10))
	collect(resumed, 3*subs)
	select {
	case ev := <-resumed:
		t.Fatalf("a change too many: %d %+v", ev.id, ev.change)
	case <-time.After(time.Second):
	}

	for i := 1; i < len(ids); i++ {
		require.Greater(t, ids[i], ids[i-1], "ids strictly increase: no repeat")
	}
	require.Len(t, versions, subs)
	for sub, v := range versions {
		assert.Equal(t, []int{1, 2, 3}, v, "%s: every version once, in order", sub)
	}
}
