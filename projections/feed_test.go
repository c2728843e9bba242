package projections_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest"
	"github.com/billfold/billfold/ingest/samples"
	"github.com/billfold/billfold/projections"
	"github.com/billfold/billfold/projections/feed"
	"github.com/billfold/billfold/projections/httpapi"
	"github.com/billfold/billfold/reducers"
	"github.com/billfold/billfold/test/natstest"
	"github.com/billfold/billfold/test/projtest"
)

// feedMsg is one message read back from the change feed stream.
type feedMsg struct {
	seq     uint64
	subject string
	msgID   string
	data    []byte
}

// readFeed reads every message of the change feed stream on filter.
func readFeed(t *testing.T, js jetstream.JetStream, filter string) []feedMsg {
	t.Helper()
	ctx := context.Background()
	s, err := js.Stream(ctx, domain.ChangesStream)
	require.NoError(t, err)
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(filter))
	require.NoError(t, err)
	var out []feedMsg
	c, err := js.OrderedConsumer(ctx, domain.ChangesStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}})
	require.NoError(t, err)
	var n uint64
	for _, m := range info.State.Subjects {
		n += m
	}
	for uint64(len(out)) < n {
		batch, err := c.Fetch(int(n)-len(out), jetstream.FetchMaxWait(2*time.Second))
		require.NoError(t, err)
		for m := range batch.Messages() {
			meta, err := m.Metadata()
			require.NoError(t, err)
			out = append(out, feedMsg{seq: meta.Sequence.Stream, subject: m.Subject(), msgID: m.Headers().Get(jetstream.MsgIDHeader), data: m.Data()})
		}
		require.NoError(t, batch.Error())
	}
	return out
}

// feedEngine starts an engine on js that runs until the returned stop is
// called.
func feedEngine(t *testing.T, js jetstream.JetStream) (e *projections.Engine, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	e, err := projections.NewEngine(ctx, js, reducers.All(reducers.DefaultOptions()), projections.EngineOptions{
		Replicas: 1, Log: slog.New(slog.DiscardHandler), Retry: projections.RetryPolicy{Attempts: 3, Initial: time.Millisecond, Max: 10 * time.Millisecond},
	})
	require.NoError(t, err)
	done := make(chan struct{})
	go func() { e.Run(ctx); close(done) }()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(stop)
	return e, stop
}

// waitRelayed waits until every relay has acknowledged every record write
// of its bucket.
func waitRelayed(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	ctx := context.Background()
	require.Eventually(t, func() bool {
		for _, p := range domain.Projections {
			stream := domain.BucketStream(domain.ProjectionBucket(p, 1))
			c, err := js.Consumer(ctx, stream, domain.FeedDurable(p, 1))
			if err != nil {
				return false
			}
			// Every record write delivered and acknowledged (the relay's
			// consumer skips the helper entries' writes).
			ci, err := c.Info(ctx)
			if err != nil || ci.NumPending > 0 || ci.NumAckPending > 0 {
				return false
			}
		}
		return true
	}, 30*time.Second, 20*time.Millisecond, "relays catch up")
}

// checkChanges asserts that the feed holds each record change once: per
// record, versions 1, 2, ... with no gap and no repeat, each with the event
// that version added, ending in the stored record.
func checkChanges(t *testing.T, js jetstream.JetStream) int {
	t.Helper()
	msgs := readFeed(t, js, domain.ChangeFilter(""))
	type last struct {
		version int
		events  []string
		record  json.RawMessage
	}
	seen := map[string]*last{}
	ids := map[string]bool{}
	for _, m := range msgs {
		require.False(t, ids[m.msgID], "message id %s twice", m.msgID)
		ids[m.msgID] = true
		var c feed.Change
		require.NoError(t, json.Unmarshal(m.data, &c))
		require.Equal(t, domain.ChangeSubject(c.Projection, c.Provider, c.ID), m.subject)
		var meta domain.RecordMeta
		require.NoError(t, json.Unmarshal(c.Record, &meta))
		require.Equal(t, meta.Version, c.Version)
		prev := seen[m.subject]
		if prev == nil {
			prev = &last{}
			seen[m.subject] = prev
		}
		added := slices.DeleteFunc(slices.Clone(meta.EventIDs), func(id string) bool { return slices.Contains(prev.events, id) })
		if c.Projection == domain.ProjectionWallets {
			// A wallet takes in, with a top-up, the events of the paying
			// customer's links that came before it (docs/consuming.md).
			require.Equal(t, prev.version+len(added), c.Version, "%s: versions in order, none twice, none missing", m.subject)
			require.Contains(t, added, c.EventID, "%s v%d: the event that made the change", m.subject, c.Version)
		} else {
			require.Equal(t, prev.version+1, c.Version, "%s: versions in order, none twice, none missing", m.subject)
			require.Equal(t, []string{c.EventID}, added, "%s v%d: the event that made the change", m.subject, c.Version)
		}
		prev.version, prev.events, prev.record = c.Version, meta.EventIDs, c.Record
	}
	// The last change of every record is the record as stored.
	records := 0
	for _, p := range domain.Projections {
		for key, value := range projtest.StoreContents(t, js, p) {
			kind, _, _ := cutKind(key)
			if !domain.IsRecordKind(kind) {
				continue // a helper entry (alias, topup, identity)
			}
			records++
			var stored struct {
				Record json.RawMessage `json:"record"`
			}
			require.NoError(t, json.Unmarshal(value, &stored))
			var id struct {
				Provider string `json:"provider"`
				ID       string `json:"id"`
				UserID   string `json:"user_id"`
			}
			require.NoError(t, json.Unmarshal(stored.Record, &id))
			if p == domain.ProjectionWallets {
				id.Provider, id.ID = feed.WalletProvider, id.UserID
			}
			l := seen[domain.ChangeSubject(p, id.Provider, id.ID)]
			require.NotNil(t, l, "%s %s on the feed", p, key)
			require.JSONEq(t, string(stored.Record), string(l.record), "%s %s", p, key)
		}
	}
	require.Equal(t, records, len(seen), "one feed subject per record")
	return len(msgs)
}

func cutKind(key string) (string, string, bool) {
	for i := range key {
		if key[i] == '.' {
			return key[:i], key[i+1:], true
		}
	}
	return key, "", false
}

func stripeEvent(t *testing.T, j *ingest.Journal, s samples.Stripe) {
	t.Helper()
	_, err := j.Append(context.Background(), &domain.Envelope{
		Provider: domain.Stripe, Endpoint: "stripe", EventID: s.EventID, EventType: s.Type, Created: s.Created,
		Received: time.Now(), Verification: domain.VerifiedSignature, Account: s.Account, Body: s.Event(),
	})
	require.NoError(t, err)
}

// Every change of every record appears once on billfold.changes, with the
// event that caused it, across a restart of the relays, and even when a
// relay lost every acknowledgement (its consumer is gone).
func TestChangeFeedOncePerChange(t *testing.T) {
	nc, js := natstest.Connect(t, natstest.Server(t))
	ctx := context.Background()
	require.NoError(t, ingest.EnsureStreams(ctx, js, ingest.StreamOptions{Replicas: 1}))
	j := ingest.NewJournal(nc, js)
	projtest.AppendSamples(t, j, 5)

	e, stop := feedEngine(t, js)
	projtest.WaitCaughtUp(t, e)
	waitRelayed(t, js)
	first := checkChanges(t, js)
	require.Greater(t, first, 20)

	// Stop the relays, then lose every acknowledgement of one of them: a
	// new consumer starts from the bucket's beginning.
	stop()
	before := streamMsgs(t, js)
	require.NoError(t, js.DeleteConsumer(ctx, domain.BucketStream(domain.ProjectionBucket(domain.ProjectionSubscriptions, 1)), domain.FeedDurable(domain.ProjectionSubscriptions, 1)))
	e, _ = feedEngine(t, js)
	waitRelayed(t, js)
	require.Equal(t, before, streamMsgs(t, js), "a restarted relay re-publishes nothing")

	// New events after the restart are relayed, once.
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	for i, typ := range []string{"customer.subscription.created", "customer.updated", "invoice.paid"} {
		stripeEvent(t, j, samples.Stripe{EventID: fmt.Sprintf("evt_after_%d", i), Type: typ, Created: base.Add(time.Duration(i) * time.Minute),
			CustomerID: "cus_after", SubscriptionID: "sub_after", Status: "active"})
	}
	projtest.WaitCaughtUp(t, e)
	waitRelayed(t, js)
	assert.Greater(t, checkChanges(t, js), first)
}

func streamMsgs(t *testing.T, js jetstream.JetStream) uint64 {
	t.Helper()
	s, err := js.Stream(context.Background(), domain.ChangesStream)
	require.NoError(t, err)
	info, err := s.Info(context.Background())
	require.NoError(t, err)
	return info.State.Msgs
}

// An active → past_due → active history gives three lifecycle messages,
// each with the event that made it and the record version, and no more
// after a relay restart. A subscription whose events arrive out of order
// (issue 17) gets a chain from its committed versions: "" → past_due, then
// past_due → canceling; the late events that only fill in its history
// publish nothing.
func TestLifecycleFeed(t *testing.T) {
	nc, js := natstest.Connect(t, natstest.Server(t))
	ctx := context.Background()
	require.NoError(t, ingest.EnsureStreams(ctx, js, ingest.StreamOptions{Replicas: 1}))
	j := ingest.NewJournal(nc, js)
	base := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	sub := func(id, typ, status string, at time.Time, prev map[string]any) {
		stripeEvent(t, j, samples.Stripe{EventID: id, Type: typ, Created: at, CustomerID: "cus_l", SubscriptionID: "sub_l", Status: status, Previous: prev})
	}
	sub("evt_l1", "customer.subscription.created", "active", base, nil)
	sub("evt_l2", "invoice.payment_failed", "", base.Add(30*24*time.Hour), nil)
	sub("evt_l3", "customer.subscription.updated", "past_due", base.Add(30*24*time.Hour), map[string]any{"status": "active"})
	sub("evt_l4", "customer.subscription.updated", "active", base.Add(33*24*time.Hour), map[string]any{"status": "past_due"})
	late := func(id, typ, status string, at time.Time, cape bool) {
		stripeEvent(t, j, samples.Stripe{EventID: id, Type: typ, Created: at, CustomerID: "cus_late", SubscriptionID: "sub_late", Status: status,
			Object: map[string]any{"cancel_at_period_end": cape}})
	}
	late("evt_late_pd", "customer.subscription.updated", "past_due", base.Add(24*time.Hour), false)
	late("evt_late_new", "customer.subscription.created", "trialing", base, false)
	late("evt_late_cape", "customer.subscription.updated", "active", base.Add(72*time.Hour), true)
	late("evt_late_act", "customer.subscription.updated", "active", base.Add(48*time.Hour), false)

	e, stop := feedEngine(t, js)
	projtest.WaitCaughtUp(t, e)
	waitRelayed(t, js)
	check := func() {
		msgs := readFeed(t, js, domain.LifecycleSubjectPrefix+">")
		var got, gotLate []feed.LifecycleChange
		var subjects []string
		for _, m := range msgs {
			var lc feed.LifecycleChange
			require.NoError(t, json.Unmarshal(m.data, &lc))
			if lc.Subscription == "sub_late" {
				gotLate = append(gotLate, lc)
				continue
			}
			got = append(got, lc)
			subjects = append(subjects, m.subject)
		}
		require.Len(t, gotLate, 2, "%+v", gotLate)
		assert.Equal(t, []domain.LifecycleState{"", domain.StatePastDue, domain.StatePastDue, domain.StateCanceling},
			[]domain.LifecycleState{gotLate[0].From, gotLate[0].To, gotLate[1].From, gotLate[1].To})
		assert.Equal(t, []int{1, 3}, []int{gotLate[0].Version, gotLate[1].Version})
		assert.Equal(t, base.Add(72*time.Hour), gotLate[1].At.UTC(), "the provider time of the event that made the move")
		require.Len(t, got, 3, "%+v", got)
		assert.Equal(t, []string{"billfold.lifecycle.stripe.active", "billfold.lifecycle.stripe.past_due", "billfold.lifecycle.stripe.active"}, subjects)
		want := []struct {
			from, to domain.LifecycleState
			event    string
		}{{"", domain.StateActive, "evt_l1"}, {domain.StateActive, domain.StatePastDue, "evt_l3"}, {domain.StatePastDue, domain.StateActive, "evt_l4"}}
		for i, w := range want {
			assert.Equal(t, w.from, got[i].From)
			assert.Equal(t, w.to, got[i].To)
			assert.Equal(t, w.event, got[i].EventID)
			assert.Equal(t, "sub_l", got[i].Subscription)
			assert.Equal(t, "cus_l", got[i].Customer)
			assert.Equal(t, "stripe", got[i].Provider)
		}
		assert.Equal(t, []int{1, 3, 4}, []int{got[0].Version, got[1].Version, got[2].Version},
			"the failed invoice (version 2) moves nothing on its own")
	}
	check()
	stop()
	e, _ = feedEngine(t, js)
	projtest.WaitCaughtUp(t, e)
	waitRelayed(t, js)
	check()
}

// GET /v1/changes: the token, the validation, and a feed read from the
// start and resumed after a position.
func TestChangeFeedHTTP(t *testing.T) {
	nc, js := natstest.Connect(t, natstest.Server(t))
	ctx := context.Background()
	require.NoError(t, ingest.EnsureStreams(ctx, js, ingest.StreamOptions{Replicas: 1}))
	projtest.AppendSamples(t, ingest.NewJournal(nc, js), 2)
	e, _ := feedEngine(t, js)
	projtest.WaitCaughtUp(t, e)
	waitRelayed(t, js)
	srv := httptest.NewServer(feed.NewChangeFeed(js, "s3cret"))
	t.Cleanup(srv.Close)

	get := func(path string, header ...string) *http.Response {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+path, nil)
		require.NoError(t, err)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		return resp
	}
	for path, code := range map[string]int{
		"/v1/changes":                              http.StatusUnauthorized,
		"/v1/changes?projection=nope":              http.StatusBadRequest,
		"/v1/changes?last_event_id=x":              http.StatusBadRequest,
		"/v1/changes?projection=customers&from=no": http.StatusBadRequest,
	} {
		var resp *http.Response
		if code == http.StatusUnauthorized {
			resp = get(path)
		} else {
			resp = get(path, "Authorization", "Bearer s3cret")
		}
		var body httpapi.APIError
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&body), path)
		resp.Body.Close()
		assert.Equal(t, code, resp.StatusCode, path)
		assert.NotEmpty(t, body.Code, path)
	}

	want := readFeed(t, js, domain.ChangeFilter(domain.ProjectionSubscriptions))
	require.GreaterOrEqual(t, len(want), 4, "two subscriptions, several versions each")
	read := func(resp *http.Response, n int) []uint64 {
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		var ids []uint64
		for len(ids) < n && sc.Scan() {
			if id, ok := strings.CutPrefix(sc.Text(), "id: "); ok {
				n, err := strconv.ParseUint(id, 10, 64)
				require.NoError(t, err)
				ids = append(ids, n)
			}
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var c feed.Change
				require.NoError(t, json.Unmarshal([]byte(data), &c))
				assert.Equal(t, domain.ProjectionSubscriptions, c.Projection)
			}
		}
		return ids
	}
	var all []uint64
	for _, m := range want {
		all = append(all, m.seq)
	}
	got := read(get("/v1/changes?projection=subscriptions&from=start", "Authorization", "Bearer s3cret"), len(want))
	assert.Equal(t, all, got)
	got = read(get("/v1/changes?projection=subscriptions", "Authorization", "Bearer s3cret", "Last-Event-ID", strconv.FormatUint(all[0], 10)), len(want)-1)
	assert.Equal(t, all[1:], got)
}

// Issue 17: every change-feed message says whether unsigned input
// contributed to its record, as the record does.
func TestChangeFeedCarriesVerification(t *testing.T) {
	nc, js := natstest.Connect(t, natstest.Server(t))
	ctx := context.Background()
	require.NoError(t, ingest.EnsureStreams(ctx, js, ingest.StreamOptions{Replicas: 1}))
	j := ingest.NewJournal(nc, js)
	base := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	stripeEvent(t, j, samples.Stripe{EventID: "evt_v1", Type: "customer.created", Created: base, CustomerID: "cus_v"})
	forged := samples.Stripe{EventID: "evt_v1", Type: "customer.updated", Created: base.Add(time.Hour), CustomerID: "cus_v"}
	_, err := j.Append(ctx, &domain.Envelope{Provider: domain.Stripe, Endpoint: "in-unsigned", EventID: forged.EventID, EventType: forged.Type,
		Created: forged.Created, Received: time.Now(), Verification: domain.VerifiedUnsigned, Body: forged.Event()})
	require.NoError(t, err)

	e, _ := feedEngine(t, js)
	projtest.WaitCaughtUp(t, e)
	waitRelayed(t, js)
	var got []domain.Verification
	for _, m := range readFeed(t, js, domain.ChangeSubject(domain.ProjectionCustomers, "stripe", "cus_v")) {
		var c feed.Change
		require.NoError(t, json.Unmarshal(m.data, &c))
		got = append(got, c.Verification)
	}
	assert.Equal(t, []domain.Verification{domain.VerifiedSignature, domain.VerifiedUnsigned}, got)
}

// A Connect account's record carries its account on the change feed; a
// platform record's change has none.
func TestChangeFeedCarriesAccount(t *testing.T) {
	nc, js := natstest.Connect(t, natstest.Server(t))
	ctx := context.Background()
	require.NoError(t, ingest.EnsureStreams(ctx, js, ingest.StreamOptions{Replicas: 1}))
	j := ingest.NewJournal(nc, js)
	base := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	stripeEvent(t, j, samples.Stripe{EventID: "evt_a1", Type: "customer.created", Created: base, CustomerID: "cus_connected", Account: "acct_1Feed"})
	stripeEvent(t, j, samples.Stripe{EventID: "evt_p1", Type: "customer.created", Created: base, CustomerID: "cus_platform"})

	e, _ := feedEngine(t, js)
	projtest.WaitCaughtUp(t, e)
	waitRelayed(t, js)
	for id, want := range map[string]string{"cus_connected": "acct_1Feed", "cus_platform": ""} {
		msgs := readFeed(t, js, domain.ChangeSubject(domain.ProjectionCustomers, "stripe", id))
		require.Len(t, msgs, 1, id)
		var c feed.Change
		require.NoError(t, json.Unmarshal(msgs[0].data, &c))
		assert.Equal(t, want, c.Account, id)
		var rec domain.CustomerRecord
		require.NoError(t, json.Unmarshal(c.Record, &rec))
		assert.Equal(t, want, rec.Account, id)
	}
}

// Several billfold processes relay the same projections: the relay
// consumer is pinned to one of them at a time, and a process that stops
// hands over to another, without a version repeated, missed or out of
// order on the feed.
func TestChangeFeedInOrderAcrossProcesses(t *testing.T) {
	nc, js := natstest.Connect(t, natstest.Server(t))
	require.NoError(t, ingest.EnsureStreams(context.Background(), js, ingest.StreamOptions{Replicas: 1}))
	j := ingest.NewJournal(nc, js)
	_, stopFirst := feedEngine(t, js)
	second, _ := feedEngine(t, js)

	base := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	statuses := []string{"trialing", "active", "past_due", "active"}
	for i := range 120 {
		if i == 60 {
			stopFirst()
		}
		c := i % 6
		stripeEvent(t, j, samples.Stripe{EventID: fmt.Sprintf("evt_many_%d", i), Type: "customer.subscription.updated",
			Created: base.Add(time.Duration(i) * time.Minute), CustomerID: fmt.Sprintf("cus_many_%d", c),
			SubscriptionID: fmt.Sprintf("sub_many_%d", c), Status: statuses[(i/6)%len(statuses)]})
	}
	projtest.WaitCaughtUp(t, second)
	waitRelayed(t, js)
	assert.Equal(t, 120, checkChanges(t, js), "one change per event")
}

// A relay consumer of an earlier release (every bucket write, one in
// flight, no pin) is brought to the relay's configuration when the engine
// starts: pinned, and delivering the writes of records only, not those of
// the helper entries (an order's aliases by payment), which have no change
// to publish. Nothing is published twice on the way.
func TestRelayConsumerDeliversRecordWritesOnly(t *testing.T) {
	nc, js := natstest.Connect(t, natstest.Server(t))
	ctx := context.Background()
	require.NoError(t, ingest.EnsureStreams(ctx, js, ingest.StreamOptions{Replicas: 1}))
	j := ingest.NewJournal(nc, js)
	projtest.AppendSamples(t, j, 5)
	e, stop := feedEngine(t, js)
	projtest.WaitCaughtUp(t, e)
	waitRelayed(t, js)
	stop()
	published := streamMsgs(t, js)

	stream := domain.BucketStream(domain.ProjectionBucket(domain.ProjectionOrders, 1))
	durable := domain.FeedDurable(domain.ProjectionOrders, 1)
	require.NoError(t, js.DeleteConsumer(ctx, stream, durable))
	_, err := js.CreateConsumer(ctx, stream, jetstream.ConsumerConfig{
		Durable: durable, AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 1, MaxDeliver: -1,
	})
	require.NoError(t, err)

	e, _ = feedEngine(t, js)
	projtest.WaitCaughtUp(t, e)
	waitRelayed(t, js)
	assert.Equal(t, published, streamMsgs(t, js), "nothing published twice")

	c, err := js.Consumer(ctx, stream, durable)
	require.NoError(t, err)
	info, err := c.Info(ctx)
	require.NoError(t, err)
	assert.Equal(t, jetstream.PriorityPolicyPinned, info.Config.PriorityPolicy)
	assert.ElementsMatch(t, []string{
		"$KV.BILLFOLD_ORDERS_G1.customer.>", "$KV.BILLFOLD_ORDERS_G1.order.>",
		"$KV.BILLFOLD_ORDERS_G1.subscription.>", "$KV.BILLFOLD_ORDERS_G1.wallet.>",
	}, info.Config.FilterSubjects)
	s, err := js.Stream(ctx, stream)
	require.NoError(t, err)
	// The recreated consumer started from the bucket's first message: it
	// had every message the bucket holds to deliver.
	all, err := s.Info(ctx, jetstream.WithSubjectFilter("$KV.BILLFOLD_ORDERS_G1.>"))
	require.NoError(t, err)
	var records uint64
	for subject, n := range all.State.Subjects {
		if strings.HasPrefix(subject, "$KV.BILLFOLD_ORDERS_G1.order.") {
			records += n
		}
	}
	require.Greater(t, all.State.Msgs, records, "the samples write helper entries too")
	assert.Equal(t, records, info.Delivered.Consumer, "one delivery per order write, none of the helper entries'")
}
