package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest"
	"github.com/billfold/billfold/ingest/samples"
	"github.com/billfold/billfold/ingest/stripe"
	"github.com/billfold/billfold/test/natstest"
)

const (
	authTestSubscriberToken = "subscriber-token-0123456789"
	authTestStripeSecret    = "whsec_natsauth_test"
)

// authServer is billfold serve in this process with the embedded NATS
// listening on loopback, a Stripe endpoint, and the subscriber token set.
type authServer struct {
	public, admin, nats string
	password            string
}

func startAuthServer(t *testing.T) authServer { return startAuthServerOn(t, "", nil) }

// startAuthServerOn runs serve against natsURL, or the embedded server
// when it is "", with the subscriber token and env set.
func startAuthServerOn(t *testing.T, natsURL string, env map[string]string) authServer {
	t.Helper()
	clearProviderEnv(t)
	ports := []int{natstest.FreePort(t), natstest.FreePort(t), natstest.FreePort(t)}
	s := authServer{
		public: fmt.Sprintf("127.0.0.1:%d", ports[0]), admin: fmt.Sprintf("127.0.0.1:%d", ports[1]),
		nats: fmt.Sprintf("127.0.0.1:%d", ports[2]), password: "test-password-of-billfold-itself",
	}
	o := serveOptions{
		dataDir: t.TempDir(), listen: s.public, adminListen: s.admin, natsListen: s.nats, replicas: 1,
		appendTimeout: 5 * time.Second, deliveryRetention: ingest.DefaultDeliveryRetention, logLevel: "error",
		endpoints:    []ingest.EndpointConfig{{Name: "stripe", Provider: domain.Stripe, Secrets: []string{authTestStripeSecret}}},
		natsPassword: s.password, natsURL: natsURL,
		getenv: func(name string) string {
			if name == envSubscriberToken {
				return authTestSubscriberToken
			}
			return env[name]
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, o, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	t.Cleanup(func() { cancel(); <-done })
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + s.admin + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 30*time.Second, 50*time.Millisecond)
	return s
}

// connect connects to the embedded server's listener with opts, closing
// the connection when the test ends.
func (s authServer) connect(t *testing.T, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect("nats://"+s.nats, append(opts, nats.MaxReconnects(0), nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))...)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	return nc, js
}

// deliverStripe posts body to the Stripe endpoint, signed now, and returns
// the answer's status.
func (s authServer) deliverStripe(t *testing.T, body []byte) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+s.public+"/webhooks/stripe", strings.NewReader(string(body)))
	require.NoError(t, err)
	now := time.Now().Unix()
	req.Header.Set(stripe.SignatureHeader, fmt.Sprintf("t=%d,v1=%s", now, stripe.Sign(authTestStripeSecret, now, body)))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

// forgedAppend is what an attacker would append: a Stripe event marked as
// verified, on a journal subject.
func forgedAppend() *nats.Msg {
	env := domain.Envelope{Provider: domain.Stripe, Endpoint: "stripe", EventID: "evt_forged", EventType: "customer.created",
		Created: time.Now(), Received: time.Now(), Verification: domain.VerifiedSignature}
	msg := &nats.Msg{Subject: env.JournalSubject(), Header: nats.Header{},
		Data: samples.Stripe{EventID: "evt_forged", Type: "customer.created", Created: time.Now(), CustomerID: "cus_victim"}.Event()}
	env.EncodeHeader(msg.Header)
	return msg
}

func TestEmbeddedNATSRefusesAnonymousClients(t *testing.T) {
	s := startAuthServer(t)
	_, err := nats.Connect("nats://"+s.nats, nats.MaxReconnects(0))
	require.Error(t, err, "a client without credentials must not connect")
	assert.Contains(t, strings.ToLower(err.Error()), "authorization")
	_, err = nats.Connect("nats://"+s.nats, nats.MaxReconnects(0), nats.Token("not-the-subscriber-token"))
	require.Error(t, err, "a wrong token must not connect")
	_, err = nats.Connect("nats://"+s.nats, nats.MaxReconnects(0), nats.UserInfo(natsUser, "guessed"))
	require.Error(t, err, "billfold's user with a guessed password must not connect")
}

func TestSubscriberCannotForgeOrDeleteTheJournal(t *testing.T) {
	s := startAuthServer(t)
	_, admin := s.connect(t, nats.UserInfo(natsUser, s.password))
	_, sub := s.connect(t, nats.Token(authTestSubscriberToken))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// The server drops a request the user may not publish (and tells the
	// client asynchronously), so a refused call ends at its own deadline.
	refused := func(call func(context.Context) error) error {
		c, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		return call(c)
	}
	err := refused(func(c context.Context) error {
		_, err := sub.PublishMsg(c, forgedAppend(), jetstream.WithRetryAttempts(0))
		return err
	})
	require.Error(t, err, "the subscriber must not append to the journal")
	journal, err := admin.Stream(ctx, domain.JournalStream)
	require.NoError(t, err)
	_, err = journal.GetLastMsgForSubject(ctx, forgedAppend().Subject)
	assert.ErrorIs(t, err, jetstream.ErrMsgNotFound, "nothing was journaled")

	for _, name := range []string{domain.JournalStream, domain.DeliveryStream, domain.ChangesStream} {
		assert.Error(t, refused(func(c context.Context) error { return sub.DeleteStream(c, name) }), "the subscriber must not delete %s", name)
		_, err := admin.Stream(ctx, name)
		assert.NoError(t, err, "%s still exists", name)
	}
	assert.Error(t, refused(func(c context.Context) error {
		_, err := sub.CreateOrUpdateStream(c, jetstream.StreamConfig{Name: "STOLEN", Subjects: []string{"billfold.journal.>"}})
		return err
	}), "the subscriber must not create streams")
	assert.Error(t, refused(func(c context.Context) error {
		_, err := sub.CreateOrUpdateConsumer(c, domain.JournalStream, jetstream.ConsumerConfig{})
		return err
	}), "the subscriber must not read the journal")
	assert.Error(t, refused(func(c context.Context) error {
		_, err := sub.KeyValue(c, domain.GenerationsBucket)
		return err
	}), "the subscriber must not open KV buckets")

	// A push consumer of its own whose deliver subject is a journal
	// subject does not write the journal either (nats-server does not
	// check deliver subjects against the creator's permissions, so this
	// pins down that the stream does not take its deliveries).
	_, err = admin.Publish(ctx, "billfold.changes.customers.stripe.cus_x", []byte(`{}`))
	require.NoError(t, err)
	stolen := domain.JournalSubject("stripe", "evt_stolen")
	_, err = sub.CreateOrUpdateConsumer(ctx, domain.ChangesStream, jetstream.ConsumerConfig{Durable: "push", DeliverSubject: stolen})
	require.NoError(t, err)
	time.Sleep(time.Second)
	_, err = journal.GetLastMsgForSubject(ctx, stolen)
	assert.ErrorIs(t, err, jetstream.ErrMsgNotFound, "a push delivery did not land in the journal")
}

// A consumer of the subscriber's own on BILLFOLD_CHANGES follows the feed:
// a delivery over HTTP arrives as a change.
func TestSubscriberFollowsTheChangeFeed(t *testing.T) {
	s := startAuthServer(t)
	_, sub := s.connect(t, nats.Token(authTestSubscriberToken))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cons, err := sub.OrderedConsumer(ctx, domain.ChangesStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{domain.ChangeFilter("customers")}})
	require.NoError(t, err)
	durable, err := sub.CreateOrUpdateConsumer(ctx, domain.ChangesStream, jetstream.ConsumerConfig{Durable: "dunning", AckPolicy: jetstream.AckExplicitPolicy})
	require.NoError(t, err)

	body := samples.Stripe{EventID: "evt_feed_1", Type: "customer.created", Created: time.Now(), CustomerID: "cus_feed"}.Event()
	require.Equal(t, http.StatusOK, s.deliverStripe(t, body))

	msg, err := cons.Next(jetstream.FetchMaxWait(20 * time.Second))
	require.NoError(t, err)
	var change struct {
		ID string `json:"id"`
	}
	require.NoError(t, json.Unmarshal(msg.Data(), &change))
	assert.Equal(t, "cus_feed", change.ID)
	batch, err := durable.Fetch(1, jetstream.FetchMaxWait(20*time.Second))
	require.NoError(t, err)
	for m := range batch.Messages() {
		require.NoError(t, m.Ack(), "the subscriber acknowledges its own consumer")
	}
	require.NoError(t, batch.Error())
	require.NoError(t, sub.DeleteConsumer(ctx, domain.ChangesStream, "dunning"), "and deletes it")
}

func TestCheckExposure(t *testing.T) {
	withToken, err := newEmbeddedAuth(authTestSubscriberToken)
	require.NoError(t, err)
	without, err := newEmbeddedAuth("")
	require.NoError(t, err)
	cases := []struct {
		name        string
		o           serveOptions
		auth        *embeddedAuth
		api         string
		adminTokens int
		want        domain.Code
	}{
		{"defaults", serveOptions{natsListen: "127.0.0.1:4222", adminListen: "127.0.0.1:8081"}, without, "", 0, ""},
		{"NATS on every interface without a token", serveOptions{natsListen: "0.0.0.0:4222", adminListen: "127.0.0.1:8081"}, without, "", 0, domain.CodeConfigExposed},
		{"NATS with an empty host", serveOptions{natsListen: ":4222", adminListen: "127.0.0.1:8081"}, without, "", 0, domain.CodeConfigExposed},
		{"NATS on the network with a token", serveOptions{natsListen: "0.0.0.0:4222", adminListen: "127.0.0.1:8081"}, withToken, "", 0, ""},
		{"no NATS listener", serveOptions{adminListen: "[::1]:8081"}, without, "", 0, ""},
		{"external NATS", serveOptions{natsURL: "nats://x", natsListen: "0.0.0.0:4222", adminListen: "localhost:8081"}, without, "", 0, ""},
		{"admin on the network without tokens", serveOptions{adminListen: ":8081"}, without, "", 0, domain.CodeConfigExposed},
		{"admin on the network without an admin token", serveOptions{adminListen: "10.0.0.1:8081"}, without, "api-token", 0, domain.CodeConfigExposed},
		{"admin on the network without an API token", serveOptions{adminListen: "10.0.0.1:8081"}, without, "", 1, domain.CodeConfigExposed},
		{"admin on the network with both", serveOptions{adminListen: "10.0.0.1:8081"}, without, "api-token", 1, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := checkExposure(c.o, c.auth, c.api, c.adminTokens)
			if c.want == "" {
				assert.NoError(t, err)
			} else {
				assert.Equal(t, c.want, domain.ErrorCode(err), "%v", err)
			}
		})
	}
	_, err = newEmbeddedAuth("short")
	assert.Equal(t, domain.CodeConfigInvalid, domain.ErrorCode(err), "a subscriber token under 16 characters is refused")
}

// TestClusterConfig loads docs/nats/cluster.conf with nats-server's own
// parser, checks that its subscriber has exactly SubscriberPermissions,
// then runs one node of it (on loopback, without its routes) and billfold
// against it as the billfold user: billfold starts, the subscriber cannot
// touch the journal.
func TestClusterConfig(t *testing.T) {
	t.Setenv("BILLFOLD_NATS_PASSWORD", "cluster-billfold-password")
	t.Setenv("BILLFOLD_NATS_SUBSCRIBER_PASSWORD", "cluster-subscriber-password")
	opts, err := server.ProcessConfigFile("../../docs/nats/cluster.conf")
	require.NoError(t, err)
	users := map[string]*server.User{}
	for _, u := range opts.Users {
		users[u.Username] = u
	}
	require.Contains(t, users, "billfold")
	require.Contains(t, users, "subscriber")
	assert.Equal(t, "BILLFOLD", users["subscriber"].Account.Name)
	assert.Nil(t, users["billfold"].Permissions, "billfold's own user is unrestricted in its account")
	want := SubscriberPermissions()
	got := users["subscriber"].Permissions
	require.NotNil(t, got)
	assert.Equal(t, want.Publish.Allow, got.Publish.Allow)
	assert.Equal(t, want.Subscribe.Allow, got.Subscribe.Allow)
	assert.GreaterOrEqual(t, int64(opts.MaxPayload), ingest.JournalPayloadNeeded(nil))

	opts.Host, opts.Port, opts.StoreDir = "127.0.0.1", natstest.FreePort(t), t.TempDir()
	opts.Cluster, opts.Routes, opts.NoLog, opts.NoSigs = server.ClusterOpts{}, nil, true, true
	natstest.Start(t, opts)
	url := fmt.Sprintf("nats://127.0.0.1:%d", opts.Port)
	startAuthServerOn(t, fmt.Sprintf("nats://billfold:cluster-billfold-password@127.0.0.1:%d", opts.Port), nil)

	nc, err := nats.Connect(url, nats.UserInfo("subscriber", "cluster-subscriber-password"), nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	require.NoError(t, err)
	defer nc.Close()
	sub, err := jetstream.New(nc)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	assert.Error(t, sub.DeleteStream(ctx, domain.JournalStream), "the subscriber must not delete the journal")
	_, err = sub.CreateOrUpdateConsumer(context.Background(), domain.ChangesStream, jetstream.ConsumerConfig{Durable: "dunning"})
	assert.NoError(t, err, "the subscriber has consumers of its own on the change feed")
	assert.NoError(t, sub.DeleteConsumer(context.Background(), domain.ChangesStream, "dunning"))
}

// Both admin token variables need 16 characters; a short one stops serve.
func TestAdminTokenLength(t *testing.T) {
	env := func(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }
	cases := []struct {
		name string
		vars map[string]string
		want domain.Code
	}{
		{"five characters", map[string]string{"BILLFOLD_ADMIN_TOKEN": "admin"}, domain.CodeConfigInvalid},
		{"fifteen characters", map[string]string{"BILLFOLD_ADMIN_TOKEN": strings.Repeat("a", 15)}, domain.CodeConfigInvalid},
		{"sixteen characters", map[string]string{"BILLFOLD_ADMIN_TOKEN": strings.Repeat("a", 16)}, ""},
		{"named, short", map[string]string{"BILLFOLD_ADMIN_TOKENS": "alice=short"}, domain.CodeConfigInvalid},
		{"named, long", map[string]string{"BILLFOLD_ADMIN_TOKENS": "alice=" + strings.Repeat("b", 16)}, ""},
		{"none", map[string]string{}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := adminTokensFromEnv(env(c.vars))
			if c.want == "" {
				assert.NoError(t, err)
			} else {
				assert.Equal(t, c.want, domain.ErrorCode(err), "%v", err)
			}
		})
	}
}

// A signed body exactly at the default 1 MiB limit is journaled (the
// embedded server's max_payload is raised to fit it with its headers; it
// used to be answered 503 forever), one byte over is 413, never 503.
func TestBodyAtTheLimit(t *testing.T) {
	s := startAuthServer(t)
	post := func(size int) int {
		base := samples.Stripe{EventID: fmt.Sprintf("evt_big_%d", size), Type: "customer.created", Created: time.Now(), CustomerID: "cus_big",
			Object: map[string]any{"description": ""}}.Event()
		body := samples.Stripe{EventID: fmt.Sprintf("evt_big_%d", size), Type: "customer.created", Created: time.Now(), CustomerID: "cus_big",
			Object: map[string]any{"description": strings.Repeat("x", size-len(base))}}.Event()
		require.Len(t, body, size)
		return s.deliverStripe(t, body)
	}
	assert.Equal(t, http.StatusOK, post(ingest.DefaultMaxBodyBytes))
	assert.Equal(t, http.StatusRequestEntityTooLarge, post(ingest.DefaultMaxBodyBytes+1))
}

// With --nats-url, a server whose max_payload cannot carry an endpoint's
// largest body and the journal's headers is refused at start-up.
func TestNATSURLPayloadTooSmall(t *testing.T) {
	opts := natstest.Options(t.TempDir())
	opts.MaxPayload = 1 << 20 // nats-server's default
	ns := natstest.Start(t, opts)
	clearProviderEnv(t)
	o := serveOptions{
		dataDir: t.TempDir(), listen: "127.0.0.1:0", adminListen: "127.0.0.1:0", natsURL: ns.ClientURL(), replicas: 1,
		appendTimeout: time.Second, logLevel: "error", getenv: func(string) string { return "" },
		endpoints: []ingest.EndpointConfig{{Name: "stripe", Provider: domain.Stripe, Secrets: []string{authTestStripeSecret}}},
	}
	err := serve(context.Background(), o, slog.New(slog.NewTextHandler(io.Discard, nil)))
	assert.Equal(t, domain.CodeConfigPayload, domain.ErrorCode(err), "%v", err)
}

// With BILLFOLD_API_TOKEN set, /metrics (endpoint names, refusal counts)
// needs it like every other read; health stays open.
func TestMetricsBehindTheAPIToken(t *testing.T) {
	const token = "api-token-0123456789abcdef"
	s := startAuthServerOn(t, "", map[string]string{"BILLFOLD_API_TOKEN": token})
	get := func(path, auth string) int {
		req, err := http.NewRequest(http.MethodGet, "http://"+s.admin+path, nil)
		require.NoError(t, err)
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	assert.Equal(t, http.StatusUnauthorized, get("/metrics", ""))
	assert.Equal(t, http.StatusUnauthorized, get("/metrics", "wrong-token"))
	assert.Equal(t, http.StatusOK, get("/metrics", token))
	assert.Equal(t, http.StatusOK, get("/healthz", ""))
}
