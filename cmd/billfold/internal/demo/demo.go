// Package demo is `billfold demo`: an engine on a temporary data dir with
// secrets made up for the run, a signed sample history delivered to its
// public listener over HTTP, the projections printed, and the engine kept
// serving. It starts the engine through the local.Starter it is given and
// talks to it only over HTTP, so it must never import the serve wiring
// (package main), ingest's intake or the projections' internals.
package demo

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/billfold/billfold/cmd/billfold/internal/cli"
	"github.com/billfold/billfold/cmd/billfold/internal/doctor"
	"github.com/billfold/billfold/cmd/billfold/internal/local"
	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest/samples"
	"github.com/billfold/billfold/projections/httpapi"
	"github.com/billfold/billfold/projections/query"
)

// billfold demo: serve on a temp data dir with secrets made up for the
// run, deliver a signed history to the server's own public listener over
// HTTP, wait for the projections, print them, and keep serving. It runs
// serve() itself, so what it shows is what serve does.

// demoOptions are billfold demo's flags.
type demoOptions struct {
	listen      string
	adminListen string
	natsListen  string
	dataDir     string
	output      string
	logLevel    string
	exit        bool
}

// Run is `billfold demo` with its arguments; start runs the engine.
func Run(args []string, stdout, stderr io.Writer, start local.Starter) int {
	var o demoOptions
	fs := cli.NewFlagSet("demo", stderr)
	fs.StringVar(&o.listen, "listen", "127.0.0.1:8080", "public webhook listener address (port 0: any free port)")
	fs.StringVar(&o.adminListen, "admin-listen", cli.DefaultAdminServer[len("http://"):], "admin listener address: query API, doctor, health (port 0: any free port)")
	fs.StringVar(&o.natsListen, "nats-listen", "127.0.0.1:0", `the embedded NATS server's client address for the change feed (port 0: any free port; "" for none)`)
	fs.StringVar(&o.dataDir, "data-dir", "", "data directory (default: a new temporary directory, removed at exit)")
	fs.StringVar(&o.output, "o", "table", "output: table or json")
	fs.StringVar(&o.logLevel, "log-level", "error", "the server's log level: debug, info, warn or error")
	fs.BoolVar(&o.exit, "exit", false, "deliver, print and exit instead of serving until Ctrl-C")
	// No environment twins (parseFlags): BILLFOLD_DATA_DIR or
	// BILLFOLD_LISTEN set for a real server must never point the demo's
	// made-up history at that server's data.
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := demo(ctx, start, o, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "billfold demo: %v\n", err)
		return 1
	}
	return 0
}

func demo(ctx context.Context, start local.Starter, o demoOptions, stdout, stderr io.Writer) error {
	log, err := cli.NewLogger(stderr, o.logLevel)
	if err != nil {
		return err
	}
	if o.dataDir == "" {
		if o.dataDir, err = os.MkdirTemp("", "billfold-demo-"); err != nil {
			return err
		}
		defer os.RemoveAll(o.dataDir)
	}
	secrets := NewSecrets()
	configPath := filepath.Join(o.dataDir, "billfold-demo.yaml")
	if err := os.MkdirAll(o.dataDir, 0o750); err != nil {
		return err
	}
	if err := os.WriteFile(configPath, secrets.Config(), 0o600); err != nil {
		return err
	}

	so := local.Defaults(o.dataDir, configPath, o.logLevel)
	so.Listen, so.AdminListen, so.NATSListen = o.listen, o.adminListen, o.natsListen
	// The demo's subscriber credential, like its signing secrets, is made
	// up for the run: a BILLFOLD_NATS_SUBSCRIBER_TOKEN in the shell is a
	// real server's and stays out of it.
	natsToken := rand.Text()
	so.Getenv = func(name string) string {
		if name == local.EnvSubscriberToken {
			return natsToken
		}
		return os.Getenv(name)
	}
	eng, err := start(ctx, so, log)
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("the engine did not start: %w (is billfold serve running? --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --nats-listen 127.0.0.1:0 pick free ports)", err)
	}
	if err != nil {
		return fmt.Errorf("the engine did not start: %w", err)
	}
	// stopped waits for serve to finish its shutdown (delivery log
	// flushed, NATS closed) before the data dir is removed.
	stopped := eng.Stop
	res := demoResult{PublicURL: eng.PublicURL, AdminURL: eng.AdminURL, NATSURL: eng.NATSURL, DataDir: o.dataDir}
	if res.NATSURL != "" {
		res.NATSToken = natsToken
	}

	h := demoHistory(time.Now().UTC().Add(-3 * time.Hour).Truncate(time.Minute))
	if res.Deliveries, err = deliverDemo(ctx, res.PublicURL, secrets, h.steps); err != nil {
		_ = stopped()
		return err
	}
	if err := waitDemoProjected(ctx, res.AdminURL, h); err != nil {
		_ = stopped()
		return err
	}
	if err := res.collect(res.AdminURL, h); err != nil {
		_ = stopped()
		return err
	}
	res.Next = demoNext(res, secrets)
	if o.output == "json" {
		cli.WriteJSON(stdout, res)
	} else {
		res.print(stdout)
	}
	if o.exit {
		return stopped()
	}
	if o.output != "json" {
		fmt.Fprintln(stdout, "\nServing until Ctrl-C; the data dir and its secrets go away with it.")
	}
	select {
	case <-ctx.Done():
	case <-eng.Done():
		return fmt.Errorf("the engine stopped: %v", eng.Err())
	}
	return stopped()
}

// Secrets are the signing secrets of one demo run, one per provider,
// made up at random: the demo never reads a real provider's secret.
type Secrets map[domain.Provider]string

// NewSecrets makes up one secret per provider.
func NewSecrets() Secrets {
	clerk := make([]byte, 24)
	_, _ = rand.Read(clerk) // never fails (crypto/rand)
	return Secrets{
		domain.Stripe:    "whsec_demo_" + rand.Text(),
		domain.Clerk:     "whsec_" + base64.StdEncoding.EncodeToString(clerk),
		domain.Braintree: "demo_public_" + rand.Text()[:8] + ":demo_private_" + rand.Text(),
		domain.PactaPay:  "pactapay_demo_" + rand.Text(),
	}
}

// Config is the YAML config file serve reads (docs/configuration.md): one
// endpoint per provider, named after it.
func (s Secrets) Config() []byte {
	var b bytes.Buffer
	b.WriteString("# billfold demo: endpoints with secrets made up for this run.\nendpoints:\n")
	for _, p := range []domain.Provider{domain.Stripe, domain.Clerk, domain.Braintree, domain.PactaPay} {
		fmt.Fprintf(&b, "  - name: %s\n    provider: %s\n    secrets: [%q]\n", p, p, s[p])
		if p == domain.PactaPay {
			// PactaPay signs its payload's timestamp, held to the
			// tolerance; the demo's history is hours old.
			b.WriteString("    tolerance: 4h\n")
		}
	}
	return b.Bytes()
}

// demoStep is one delivery of the history.
type demoStep struct {
	provider domain.Provider // the endpoint is named after it
	body     []byte          // Braintree: the notification XML, before signing
	// outOfOrder: delivered after a later event (by the provider's clock)
	// of the same subscription or user.
	outOfOrder bool
}

// demoRecord names a record the history creates.
type demoRecord struct{ provider, id string }

// demoHistoryT is the history and the records it touches.
type demoHistoryT struct {
	steps         []demoStep
	subscriptions []demoRecord
	users         []string
}

// demoHistory is a few customers' lives at Stripe, Clerk, Braintree and
// PactaPay, starting at base (provider time), in delivery order: each
// subscription ends in a different lifecycle state, wallets get a signup
// bonus, top-ups and a reversal, and some deliveries come twice or out of
// order, as providers send them. docs in README.md ("Demo") and the demo
// e2e test spell out the outcome.
func demoHistory(base time.Time) demoHistoryT {
	at := func(min int) time.Time { return base.Add(time.Duration(min) * time.Minute) }
	var h demoHistoryT
	add := func(p domain.Provider, body []byte) { h.steps = append(h.steps, demoStep{provider: p, body: body}) }
	again := func() { h.steps = append(h.steps, h.steps[len(h.steps)-1]) } // a redelivery: the same body, signed anew
	late := func() { h.steps[len(h.steps)-1].outOfOrder = true }
	stripe := func(s samples.Stripe) { add(domain.Stripe, s.Event()) }
	user := func(typ, id string, min int) { add(domain.Clerk, samples.ClerkUser(typ, id, at(min))) }
	who := func(name string) (customer, sub, userID string) {
		return "cus_demo_" + name, "sub_demo_" + name, "user_demo_" + name
	}
	subEvent := func(name, typ, status string, min int, obj, prev map[string]any) samples.Stripe {
		c, s, u := who(name)
		o := map[string]any{"metadata": map[string]any{"user_id": u}}
		for k, v := range obj {
			o[k] = v
		}
		return samples.Stripe{
			EventID: fmt.Sprintf("evt_demo_%s_%s", name, strings.ReplaceAll(strings.TrimPrefix(typ, "customer."), ".", "_")),
			Type:    typ, Created: at(min), CustomerID: c, SubscriptionID: s, Status: status, Object: o, Previous: prev,
		}
	}
	customer := func(name, display string, min int) {
		c, _, u := who(name)
		stripe(samples.Stripe{EventID: "evt_demo_" + name + "_customer_created", Type: "customer.created", Created: at(min), CustomerID: c,
			Object: map[string]any{"email": name + "@example.com", "name": display, "metadata": map[string]any{"user_id": u}}})
	}
	topUp := func(name string, credits, min int) {
		c, _, u := who(name)
		stripe(samples.Stripe{EventID: "evt_demo_" + name + "_checkout", Type: "checkout.session.completed", Created: at(min), CustomerID: c,
			Object: map[string]any{
				"id": "cs_demo_" + name, "payment_intent": "pi_demo_" + name, "client_reference_id": u,
				"metadata": map[string]any{"user_id": u, "credits": fmt.Sprint(credits)},
			}})
	}

	// Clerk users sign up; each gets the signup bonus (40 credits).
	user("user.created", "user_demo_ana", 0)
	user("user.created", "user_demo_ben", 1)
	user("user.created", "user_demo_dan", 2)
	customer("ana", "Ana Silva", 3)
	customer("ben", "Ben Okafor", 4)
	customer("chloe", "Chloé Martin", 5)

	// Ana: a trial that converts; an invoice paid; a 100-credit top-up,
	// delivered twice.
	stripe(subEvent("ana", "customer.subscription.created", "trialing", 10, nil, nil))
	stripe(subEvent("ana", "customer.subscription.updated", "active", 40, nil, map[string]any{"status": "trialing"}))
	stripe(subEvent("ana", "invoice.paid", "", 40, nil, nil))
	topUp("ana", 100, 45)
	again()

	// Ben: his renewal fails. The past_due update arrives before the
	// subscription's creation; billfold orders by Stripe's clock.
	stripe(subEvent("ben", "customer.subscription.updated", "past_due", 90, nil, map[string]any{"status": "active"}))
	late()
	stripe(subEvent("ben", "customer.subscription.created", "active", 20, nil, nil))
	stripe(subEvent("ben", "invoice.payment_failed", "", 89, nil, nil))

	// Chloé schedules her cancellation; Stripe retries the update.
	stripe(subEvent("chloe", "customer.subscription.created", "active", 25, nil, nil))
	stripe(subEvent("chloe", "customer.subscription.updated", "active", 70, map[string]any{"cancel_at_period_end": true}, map[string]any{"cancel_at_period_end": false}))
	again()

	// Dan's subscription is deleted; the deletion arrives first.
	stripe(subEvent("dan", "customer.subscription.deleted", "", 120, nil, nil))
	late()
	stripe(subEvent("dan", "customer.subscription.created", "active", 30, nil, nil))

	// Eve is in her trial; Finn pauses.
	stripe(subEvent("eve", "customer.subscription.created", "trialing", 50, nil, nil))
	stripe(subEvent("finn", "customer.subscription.created", "active", 35, nil, nil))
	stripe(subEvent("finn", "customer.subscription.paused", "", 100, nil, nil))

	// Ben tops up 250 credits and gets his money back: the credits go.
	topUp("ben", 250, 60)
	c, _, _ := who("ben")
	stripe(samples.Stripe{EventID: "evt_demo_ben_charge_refunded", Type: "charge.refunded", Created: at(80), CustomerID: c,
		Object: map[string]any{"id": "ch_demo_ben", "payment_intent": "pi_demo_ben", "amount": 1000, "amount_refunded": 1000}})

	// Cleo's 500-credit top-up arrives before Clerk's user.created: held
	// until the user is known.
	topUp("cleo", 500, 65)
	user("user.created", "user_demo_cleo", 55)
	late()
	// Dan deletes his account: his credits are held.
	user("user.deleted", "user_demo_dan", 130)

	// Braintree: a subscription goes active and is charged; the charge
	// notification comes twice.
	add(domain.Braintree, samples.BraintreeSubscription("subscription_went_active", "bt_sub_demo_gold", at(15)))
	add(domain.Braintree, samples.BraintreeSubscription("subscription_charged_successfully", "bt_sub_demo_gold", at(16)))
	again()

	// PactaPay: a one-off payment, delivered twice.
	add(domain.PactaPay, samples.PactaPayPayment("payment.completed", "pay_demo_1", 4999, at(85)))
	again()

	for _, name := range []string{"ana", "ben", "chloe", "dan", "eve", "finn"} {
		_, s, _ := who(name)
		h.subscriptions = append(h.subscriptions, demoRecord{string(domain.Stripe), s})
	}
	h.subscriptions = append(h.subscriptions, demoRecord{string(domain.Braintree), "bt_sub_demo_gold"})
	h.users = []string{"user_demo_ana", "user_demo_ben", "user_demo_cleo", "user_demo_dan"}
	return h
}

// demoDeliveries counts what the server answered.
type demoDeliveries struct {
	Sent       int `json:"sent"`
	Accepted   int `json:"accepted"`
	Duplicates int `json:"duplicates"`
	OutOfOrder int `json:"out_of_order"`
}

// deliverDemo signs each step now, as its provider would, and posts it to
// the public listener.
func deliverDemo(ctx context.Context, publicURL string, secrets Secrets, steps []demoStep) (demoDeliveries, error) {
	var n demoDeliveries
	c := &http.Client{Timeout: 30 * time.Second}
	for i, s := range steps {
		signed, err := samples.Sign(s.provider, secrets[s.provider], s.body, time.Now())
		if err != nil {
			return n, err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, publicURL+"/webhooks/"+string(s.provider), bytes.NewReader(signed.Body))
		if err != nil {
			return n, err
		}
		for k, v := range signed.Headers {
			req.Header.Set(k, v)
		}
		resp, err := c.Do(req)
		if err != nil {
			return n, fmt.Errorf("delivery %d (%s): %w", i+1, s.provider, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var answer struct {
			Status string `json:"status"`
		}
		_ = json.Unmarshal(body, &answer)
		if resp.StatusCode != http.StatusOK {
			return n, fmt.Errorf("delivery %d (%s) answered %d %s", i+1, s.provider, resp.StatusCode, bytes.TrimSpace(body))
		}
		n.Sent++
		switch answer.Status {
		case string(domain.OutcomeAccepted):
			n.Accepted++
		case string(domain.OutcomeDuplicate):
			n.Duplicates++
		}
		if s.outOfOrder {
			n.OutOfOrder++
		}
	}
	return n, nil
}

// waitDemoProjected waits until every projector has folded the whole
// journal (doctor's lag) and the subscription index lists every
// subscription of the history.
func waitDemoProjected(ctx context.Context, adminURL string, h demoHistoryT) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		if demoCaughtUp(adminURL, h) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the projections did not catch up within 60s (billfold doctor --server %s says why)", adminURL)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func demoCaughtUp(adminURL string, h demoHistoryT) bool {
	body, err := cli.AdminGet(adminURL, "/v1/doctor", nil)
	if err != nil {
		return false
	}
	var rep doctor.Report
	if json.Unmarshal(body, &rep) != nil || len(rep.Projections) == 0 {
		return false
	}
	for _, p := range rep.Projections {
		if p.Lag > 0 {
			return false
		}
	}
	subs, err := listAllSubscriptions(adminURL)
	if err != nil {
		return false
	}
	listed := map[demoRecord]bool{}
	for _, s := range subs {
		listed[demoRecord{string(s.Provider), s.ID}] = true
	}
	for _, s := range h.subscriptions {
		if !listed[s] {
			return false
		}
	}
	return true
}

func listAllSubscriptions(adminURL string) ([]domain.SubscriptionRecord, error) {
	var out []domain.SubscriptionRecord
	cursor := ""
	for {
		v := url.Values{"limit": {fmt.Sprint(httpapi.MaxListLimit)}}
		if cursor != "" {
			v.Set("cursor", cursor)
		}
		body, err := cli.AdminGet(adminURL, "/v1/subscriptions", v)
		if err != nil {
			return nil, err
		}
		var p query.Page
		if err := json.Unmarshal(body, &p); err != nil {
			return nil, err
		}
		for _, raw := range p.Items {
			var s domain.SubscriptionRecord
			if err := json.Unmarshal(raw, &s); err != nil {
				return nil, err
			}
			out = append(out, s)
		}
		if cursor = p.NextCursor; cursor == "" {
			return out, nil
		}
	}
}

// demoResult is what billfold demo prints.
type demoResult struct {
	PublicURL string `json:"public_url"`
	AdminURL  string `json:"admin_url"`
	// NATSURL is the embedded NATS server's client URL and NATSToken the
	// run's subscriber token (BILLFOLD_NATS_SUBSCRIBER_TOKEN), both empty
	// with --nats-listen "".
	NATSURL    string         `json:"nats_url,omitempty"`
	NATSToken  string         `json:"nats_subscriber_token,omitempty"`
	DataDir    string         `json:"data_dir"`
	Deliveries demoDeliveries `json:"deliveries"`
	// Subscriptions by lifecycle state; states without one are left out.
	Subscriptions map[domain.LifecycleState][]domain.SubscriptionRecord `json:"subscriptions"`
	Wallets       []domain.WalletRecord                                 `json:"wallets"`
	// Next are commands to try against the running demo.
	Next []string `json:"next"`
}

// collect reads every subscription and the history's wallets back through
// the query API.
func (r *demoResult) collect(adminURL string, h demoHistoryT) error {
	subs, err := listAllSubscriptions(adminURL)
	if err != nil {
		return err
	}
	r.Subscriptions = map[domain.LifecycleState][]domain.SubscriptionRecord{}
	for _, s := range subs {
		r.Subscriptions[s.State] = append(r.Subscriptions[s.State], s)
	}
	for _, u := range h.users {
		body, err := cli.AdminGet(adminURL, "/v1/wallets/"+url.PathEscape(u), nil)
		if err != nil {
			return fmt.Errorf("wallet %s: %w", u, err)
		}
		var w domain.WalletRecord
		if err := json.Unmarshal(body, &w); err != nil {
			return err
		}
		r.Wallets = append(r.Wallets, w)
	}
	return nil
}

// demoNext are the commands a newcomer can run next against the demo.
func demoNext(r demoResult, secrets Secrets) []string {
	server, public := "", ""
	if r.AdminURL != cli.DefaultAdminServer {
		server = " --server " + r.AdminURL
	}
	if r.PublicURL != "http://127.0.0.1:8080" {
		public = " --server " + r.PublicURL
	}
	auth := ""
	if os.Getenv("BILLFOLD_API_TOKEN") != "" {
		auth = ` -H "Authorization: Bearer $BILLFOLD_API_TOKEN"`
	}
	next := []string{
		"billfold list subscriptions" + server,
		"billfold list subscriptions --state past_due" + server,
		"billfold get subscription stripe sub_demo_ben" + server,
		"billfold get wallet user_demo_cleo" + server,
		"billfold watch" + server,
		"billfold doctor" + server,
		"curl -s" + auth + " " + r.AdminURL + "/v1/subscriptions/counts",
		"curl -s" + auth + " " + r.AdminURL + "/v1/events/stripe/evt_demo_ben_subscription_updated",
		"billfold send --provider stripe --secret " + secrets[domain.Stripe] + " --type customer.subscription.updated" + public,
	}
	if r.NATSURL != "" {
		// The official nats CLI reading the lifecycle feed from its start
		// with the run's subscriber token, as docs/consuming.md shows it.
		next = append(next, "nats --server "+r.NATSURL+" --token "+r.NATSToken+" sub --stream BILLFOLD_CHANGES --all -T 'billfold.lifecycle.>'")
	}
	return next
}

// print prints the result as tables.
func (r demoResult) print(w io.Writer) {
	d := r.Deliveries
	fmt.Fprintf(w, "billfold demo: webhooks on %s, admin API on %s, data in %s\n", r.PublicURL, r.AdminURL, r.DataDir)
	if r.NATSURL != "" {
		fmt.Fprintf(w, "Change feed on NATS at %s, subscriber token %s (read-only, this run only)\n", r.NATSURL, r.NATSToken)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Delivered %d signed webhooks over HTTP: %d accepted, %d duplicates (answered 200, applied once), %d out of provider order.\n",
		d.Sent, d.Accepted, d.Duplicates, d.OutOfOrder)

	fmt.Fprintln(w, "\nSUBSCRIPTIONS BY LIFECYCLE STATE")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STATE\tPROVIDER\tID\tCUSTOMER\tSTATUS\tENTITLED")
	for _, state := range domain.LifecycleStates {
		for _, s := range r.Subscriptions[state] {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%t\n", state, s.Provider, s.ID, cli.Dash(s.CustomerID), cli.Dash(s.ProviderStatus), s.Entitled)
		}
	}
	_ = tw.Flush()

	fmt.Fprintln(w, "\nWALLETS")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "USER\tBALANCE\tAVAILABLE\tPENDING\tENTRIES")
	for _, wl := range r.Wallets {
		entries := make([]string, 0, len(wl.Entries))
		for _, e := range wl.Entries {
			held := ""
			if e.Held {
				held = " (held)"
			}
			entries = append(entries, fmt.Sprintf("%s %+d%s", e.Reason, e.Amount, held))
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\n", wl.UserID, wl.Balance, wl.Available, wl.Pending, cli.Dash(strings.Join(entries, ", ")))
	}
	_ = tw.Flush()

	fmt.Fprintln(w, "\nTRY NEXT")
	for _, c := range r.Next {
		fmt.Fprintln(w, "  "+c)
	}
}
