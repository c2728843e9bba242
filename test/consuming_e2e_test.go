package test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest/samples"
	billfold "github.com/billfold/billfold/projections/client"
	"github.com/billfold/billfold/test/natstest"
)

// docs/consuming.md, followed as a downstream team follows it: every nats
// CLI command of the page is run here as its nats.go equivalent, with the
// subscriber token, against the real binary (serve, and the demo), and
// the page's message examples must have the fields real messages have.

const consumingToken = "consuming-e2e-subscriber-token-0123"

// feedMsg is one message of BILLFOLD_CHANGES as a subscriber reads it.
type feedMsg struct {
	subject string
	msgID   string
	body    map[string]any
}

func (m feedMsg) lifecycle() bool { return strings.HasPrefix(m.subject, domain.LifecycleSubjectPrefix) }

// connectSubscriber connects as the page's Credentials section says:
// nats --server <url> --token "$BILLFOLD_NATS_SUBSCRIBER_TOKEN".
func connectSubscriber(t *testing.T, natsURL, token string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(natsURL, nats.Token(token))
	require.NoError(t, err, "connect to %s with the subscriber token", natsURL)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	// nats … stream info BILLFOLD_CHANGES
	s, err := js.Stream(ctxT(t), domain.ChangesStream)
	require.NoError(t, err, "stream info with the subscriber token")
	assert.Equal(t, []string{"billfold.changes.>", "billfold.lifecycle.>"}, s.CachedInfo().Config.Subjects)
	return nc, js
}

func decodeFeedMsg(t *testing.T, subject string, h nats.Header, data []byte) feedMsg {
	t.Helper()
	m := feedMsg{subject: subject, msgID: h.Get(jetstream.MsgIDHeader)}
	require.NoError(t, json.Unmarshal(data, &m.body), "%s: %s", subject, data)
	return m
}

// readWholeFeed is `nats … sub --stream BILLFOLD_CHANGES --all -T '<filter>'`:
// an ordered consumer from the start of the stream, until nothing is
// pending.
func readWholeFeed(t *testing.T, js jetstream.JetStream, filter string) []feedMsg {
	t.Helper()
	ctx := ctxT(t)
	c, err := js.OrderedConsumer(ctx, domain.ChangesStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{filter}, DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	require.NoError(t, err)
	var out []feedMsg
	for {
		m, err := c.Next(jetstream.FetchMaxWait(5 * time.Second))
		require.NoError(t, err, "read %d messages of %s", len(out), filter)
		out = append(out, decodeFeedMsg(t, m.Subject(), m.Headers(), m.Data()))
		md, err := m.Metadata()
		require.NoError(t, err)
		if md.NumPending == 0 {
			return out
		}
	}
}

var (
	changeMsgID    = regexp.MustCompile(`^BILLFOLD_(CUSTOMERS|SUBSCRIPTIONS|ORDERS|WALLETS)_G[0-9]+:[0-9]+$`)
	lifecycleMsgID = regexp.MustCompile(`^BILLFOLD_SUBSCRIPTIONS_G[0-9]+:[0-9]+:lifecycle$`)
)

// checkFeedAsDocumented checks what "NATS subjects and messages" and "The
// lifecycle contract" say of every message of the feed: subjects, the
// Nats-Msg-Id forms, wallets under billfold and the user id, and each
// subscription's lifecycle messages chaining from "" to its record's
// state. It returns the subscriptions' first lifecycle messages.
func checkFeedAsDocumented(t *testing.T, msgs []feedMsg) map[string]feedMsg {
	t.Helper()
	first := map[string]feedMsg{}
	chain := map[string]string{} // subscription: the state its messages moved to
	state := map[string]string{} // subscription: its latest record's state
	for i, m := range msgs {
		b := m.body
		if m.lifecycle() {
			sub := fmt.Sprint(b["provider"], "/", b["subscription"])
			assert.Regexp(t, lifecycleMsgID, m.msgID, m.subject)
			assert.Equal(t, domain.LifecycleSubject(fmt.Sprint(b["provider"]), domain.LifecycleState(fmt.Sprint(b["to"]))), m.subject)
			assert.Equal(t, chain[sub], b["from"], "%s: each message moves from the previous one's to", sub)
			chain[sub] = fmt.Sprint(b["to"])
			if _, ok := first[sub]; !ok {
				first[sub] = m
			}
			// Published before the change of the same write, which
			// shares its id (a relay's batch and other projections'
			// relays interleave).
			next := slices.IndexFunc(msgs[i+1:], func(c feedMsg) bool {
				return !c.lifecycle() && c.msgID+":lifecycle" == m.msgID
			})
			assert.GreaterOrEqual(t, next, 0, "%s: its change follows the lifecycle message", m.msgID)
			continue
		}
		assert.Regexp(t, changeMsgID, m.msgID, m.subject)
		rec, _ := b["record"].(map[string]any)
		require.NotNil(t, rec, "%s: a change carries its record", m.subject)
		projection := fmt.Sprint(b["projection"])
		if projection == domain.ProjectionWallets {
			assert.Equal(t, "billfold", b["provider"], "wallets belong to a user: provider billfold")
			assert.Equal(t, rec["user_id"], b["id"], "a wallet's id is its user id")
		}
		assert.Equal(t, domain.ChangeSubject(projection, fmt.Sprint(b["provider"]), fmt.Sprint(b["id"])), m.subject)
		if projection == domain.ProjectionSubscriptions {
			state[fmt.Sprint(b["provider"], "/", b["id"])] = fmt.Sprint(rec["state"])
		}
	}
	require.NotEmpty(t, state)
	for sub, s := range state {
		assert.Equal(t, s, chain[sub], "%s: a consumer applying its lifecycle messages ends in the record's state", sub)
		if assert.Contains(t, first, sub, "%s: its first appearance publishes a lifecycle message", sub) {
			assert.Equal(t, "", first[sub].body["from"], sub)
		}
	}
	return first
}

// consumeDunning is the page's durable pull consumer:
//
//	nats … consumer add BILLFOLD_CHANGES dunning --filter 'billfold.lifecycle.*.past_due' --deliver all --ack explicit --pull --defaults
//	nats … consumer next BILLFOLD_CHANGES dunning --count 1
//
// `consumer next` acknowledges what it prints, so a second run gets the
// next message, and none when none waits.
func consumeDunning(t *testing.T, js jetstream.JetStream, want int) []feedMsg {
	t.Helper()
	ctx := ctxT(t)
	c, err := js.CreateOrUpdateConsumer(ctx, domain.ChangesStream, jetstream.ConsumerConfig{
		Durable: "dunning", FilterSubject: "billfold.lifecycle.*.past_due",
		DeliverPolicy: jetstream.DeliverAllPolicy, AckPolicy: jetstream.AckExplicitPolicy,
	})
	require.NoError(t, err, "consumer add with the subscriber token")
	var out []feedMsg
	for range want {
		m, err := c.Next(jetstream.FetchMaxWait(5 * time.Second))
		require.NoError(t, err, "consumer next after %d messages", len(out))
		require.NoError(t, m.Ack())
		out = append(out, decodeFeedMsg(t, m.Subject(), m.Headers(), m.Data()))
	}
	_, err = c.Next(jetstream.FetchMaxWait(500 * time.Millisecond))
	assert.ErrorIs(t, err, nats.ErrTimeout, "every past_due message was acknowledged on receipt")
	for _, m := range out {
		assert.Equal(t, "past_due", m.body["to"], m.subject)
	}
	return out
}

// docJSONExamples are the ```json blocks of docs/consuming.md, in order.
func docJSONExamples(t *testing.T) []map[string]any {
	t.Helper()
	b, err := os.ReadFile("../docs/consuming.md")
	require.NoError(t, err)
	var out []map[string]any
	for _, m := range regexp.MustCompile("(?s)```json\n(.*?)```").FindAllSubmatch(b, -1) {
		var v map[string]any
		require.NoError(t, json.Unmarshal(m[1], &v), "a JSON example of docs/consuming.md:\n%s", m[1])
		out = append(out, v)
	}
	return out
}

// checkDocExamples compares the page's JSON examples with real messages:
// each example's fields (and its record's) appear in real messages of its
// kind, and every field that every real message of its kind has is in the
// example. A change example's kind is its projection, a lifecycle
// example's (it has "from") lifecycle.
func checkDocExamples(t *testing.T, msgs []feedMsg) {
	t.Helper()
	type fields struct{ any, all map[string]bool }
	real := map[string]*fields{}
	note := func(kind string, v map[string]any) {
		f := real[kind]
		if f == nil {
			f = &fields{any: map[string]bool{}, all: map[string]bool{}}
			for k := range v {
				f.all[k] = true
			}
			real[kind] = f
		}
		for k := range v {
			f.any[k] = true
		}
		for k := range f.all {
			if _, ok := v[k]; !ok {
				delete(f.all, k)
			}
		}
	}
	for _, m := range msgs {
		if m.lifecycle() {
			note("lifecycle", m.body)
			continue
		}
		p := fmt.Sprint(m.body["projection"])
		note("change", m.body)
		note(p+" record", m.body["record"].(map[string]any))
	}
	examples := docJSONExamples(t)
	require.NotEmpty(t, examples)
	seen := map[string]bool{}
	check := func(kind string, v map[string]any) {
		seen[kind] = true
		f := real[kind]
		if !assert.NotNil(t, f, "no real message of kind %s to compare the example with", kind) {
			return
		}
		for k := range v {
			assert.True(t, f.any[k], "docs/consuming.md: the %s example has %q, which no real one has (real: %v)", kind, k, slices.Sorted(maps.Keys(f.any)))
		}
		for k := range f.all {
			assert.Contains(t, v, k, "docs/consuming.md: the %s example lacks %q, which every real one has", kind, k)
		}
	}
	for _, ex := range examples {
		if _, ok := ex["from"]; ok {
			check("lifecycle", ex)
			continue
		}
		check("change", ex)
		if rec, ok := ex["record"].(map[string]any); ok {
			check(fmt.Sprint(ex["projection"])+" record", rec)
		}
	}
	for _, kind := range []string{"change", "lifecycle", "subscriptions record", "wallets record"} {
		assert.True(t, seen[kind], "docs/consuming.md has an example of a %s", kind)
	}
}

// postSigned delivers a Stripe event signed with secret and wants 200.
func postSigned(t *testing.T, srv *server, secret string, ev samples.Stripe) {
	t.Helper()
	signed, err := samples.Sign(domain.Stripe, secret, ev.Event(), time.Now())
	require.NoError(t, err)
	code, answer, _ := srv.post("stripe", signed.Body, signed.Headers)
	require.Equal(t, 200, code, answer)
}

// Against billfold serve: a plain subscription sees new lifecycle
// messages; a subscription first seen through an invoice event appears on
// the lifecycle feed from ""; the dunning consumer gets the past_due move;
// a wallet's change is under billfold and its user id; every message has
// the documented subject, Nats-Msg-Id and fields.
func TestConsumingDocAgainstServe(t *testing.T) {
	natsAddr := fmt.Sprintf("127.0.0.1:%d", natstest.FreePort(t))
	srv := startServer(t, t.TempDir(), []string{"STRIPE_WEBHOOK_SECRET=" + stripeSecret, "BILLFOLD_NATS_SUBSCRIBER_TOKEN=" + consumingToken},
		"--nats-listen", natsAddr)
	nc, js := connectSubscriber(t, "nats://"+natsAddr, consumingToken)

	// nats … sub 'billfold.lifecycle.>': new messages only.
	live, err := nc.SubscribeSync("billfold.lifecycle.>")
	require.NoError(t, err)
	require.NoError(t, nc.Flush())

	at := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	// sub_doc_inv is first seen through an invoice.
	postSigned(t, srv, stripeSecret, samples.Stripe{EventID: "evt_doc_inv_paid", Type: "invoice.paid", Created: at,
		CustomerID: "cus_doc_inv", SubscriptionID: "sub_doc_inv"})
	postSigned(t, srv, stripeSecret, samples.Stripe{EventID: "evt_doc_created", Type: "customer.subscription.created", Created: at,
		CustomerID: "cus_doc", SubscriptionID: "sub_doc", Status: "active"})
	postSigned(t, srv, stripeSecret, samples.Stripe{EventID: "evt_doc_past_due", Type: "customer.subscription.updated", Created: at.Add(time.Minute),
		CustomerID: "cus_doc", SubscriptionID: "sub_doc", Status: "past_due", Previous: map[string]any{"status": "active"}})
	postSigned(t, srv, stripeSecret, samples.Stripe{EventID: "evt_doc_checkout", Type: "checkout.session.completed", Created: at,
		CustomerID: "cus_doc", Object: map[string]any{"metadata": map[string]any{"user_id": "user_doc", "credits": "100"}}})

	m, err := live.NextMsg(30 * time.Second)
	require.NoError(t, err, "the plain subscription sees a new lifecycle message")
	assert.True(t, strings.HasPrefix(m.Subject, domain.LifecycleSubjectPrefix+"stripe."), m.Subject)

	var msgs []feedMsg
	require.Eventually(t, func() bool {
		msgs = readWholeFeed(t, js, "billfold.>")
		wallet := false
		for _, m := range msgs {
			wallet = wallet || m.body["projection"] == domain.ProjectionWallets
		}
		return wallet && len(movesInto(msgs, "past_due")) == 1
	}, 30*time.Second, 200*time.Millisecond)
	first := checkFeedAsDocumented(t, msgs)
	if os.Getenv("DUMP_FEED") != "" {
		for _, m := range msgs {
			j, _ := json.Marshal(m.body)
			t.Logf("%s %s %s", m.subject, m.msgID, j)
		}
	}
	if inv, ok := first["stripe/sub_doc_inv"]; assert.True(t, ok, "the subscription first seen through an invoice is on the lifecycle feed") {
		assert.Equal(t, "", inv.body["from"])
		assert.Equal(t, "evt_doc_inv_paid", inv.body["event_id"])
		assert.Equal(t, at.Format(time.RFC3339), inv.body["at"], "at is the invoice's provider time")
	}
	dunning := consumeDunning(t, js, 1)
	assert.Equal(t, "sub_doc", dunning[0].body["subscription"])
	checkDocExamples(t, msgs)

	// The Go example: projections/client's Watch with the token, from
	// the start of the feed.
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	changes, err := billfold.New(js).Watch(ctx, domain.ProjectionSubscriptions, 1)
	require.NoError(t, err)
	select {
	case ch := <-changes:
		assert.Equal(t, "sub_doc_inv", ch.ID, "the feed's first subscription change")
	case <-time.After(30 * time.Second):
		t.Fatal("client.Watch with the subscriber token delivered nothing")
	}
}

// movesInto are the lifecycle messages into state.
func movesInto(msgs []feedMsg, state string) []feedMsg {
	var out []feedMsg
	for _, m := range msgs {
		if m.lifecycle() && m.body["to"] == state {
			out = append(out, m)
		}
	}
	return out
}

// demoServing is a billfold demo that keeps serving, and what it printed.
type demoServing struct {
	AdminURL  string   `json:"admin_url"`
	NATSURL   string   `json:"nats_url"`
	NATSToken string   `json:"nats_subscriber_token"`
	Next      []string `json:"next"`
}

// startDemo runs billfold demo -o json until the test ends (SIGINT, so
// that it removes its data dir).
func startDemo(t *testing.T) demoServing {
	t.Helper()
	cmd := exec.Command(binary, "demo", "-o", "json", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0")
	var stderr syncBuffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	exited := make(chan struct{})
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	var d demoServing
	decoded := make(chan error, 1)
	go func() {
		decoded <- json.NewDecoder(out).Decode(&d)
		_, _ = io.Copy(io.Discard, out) // Wait needs the pipe read to the end
		_ = cmd.Wait()
		close(exited)
	}()
	select {
	case err := <-decoded:
		require.NoError(t, err, "billfold demo -o json:\n%s", stderr.String())
	case <-time.After(90 * time.Second):
		t.Fatalf("billfold demo printed nothing in 90s:\n%s", stderr.String())
	}
	return d
}

// Against billfold demo: the demo serves NATS with a subscriber token of
// its own and prints both; its TRY NEXT nats commands are the page's, and
// its history's feed is the documented one: the lifecycle feed of its
// seven subscriptions, each from "", ben's past_due for the dunning
// consumer.
func TestConsumingDocAgainstDemo(t *testing.T) {
	d := startDemo(t)
	require.Regexp(t, `^nats://127\.0\.0\.1:[0-9]+$`, d.NATSURL)
	require.GreaterOrEqual(t, len(d.NATSToken), 16)
	cli := "nats --server " + d.NATSURL + " --token " + d.NATSToken
	var natsNext []string
	for _, c := range d.Next {
		if strings.HasPrefix(c, "nats ") {
			natsNext = append(natsNext, c)
		}
	}
	assert.Equal(t, []string{cli + " sub --stream BILLFOLD_CHANGES --all -T 'billfold.lifecycle.>'"}, natsNext)

	_, js := connectSubscriber(t, d.NATSURL, d.NATSToken)
	lifecycle := readWholeFeed(t, js, "billfold.lifecycle.>")
	all := readWholeFeed(t, js, "billfold.>")
	first := checkFeedAsDocumented(t, all)
	assert.Len(t, first, 7, "the demo's seven subscriptions")
	assert.Equal(t, countLifecycle(all), len(lifecycle), "the lifecycle filter reads the lifecycle messages")
	dunning := consumeDunning(t, js, 1)
	assert.Equal(t, "sub_demo_ben", dunning[0].body["subscription"])
	checkDocExamples(t, all)
}

// countLifecycle is how many of msgs are lifecycle messages.
func countLifecycle(msgs []feedMsg) int {
	n := 0
	for _, m := range msgs {
		if m.lifecycle() {
			n++
		}
	}
	return n
}
