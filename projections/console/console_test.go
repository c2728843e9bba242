package console_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
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
	"github.com/billfold/billfold/projections/console"
	"github.com/billfold/billfold/projections/deadletter"
	"github.com/billfold/billfold/projections/httpapi"
	"github.com/billfold/billfold/projections/ledger"
	"github.com/billfold/billfold/projections/query"
	"github.com/billfold/billfold/projections/rebuild"
	"github.com/billfold/billfold/reducers"
	"github.com/billfold/billfold/test/natstest"
)

const (
	readToken  = "console-read-token-0123456789"
	adminToken = "console-admin-token-0123456789"
	// hostileID is an event id that is markup: it must show as text.
	hostileID = `evt_<script>alert("pwned")</script>`
)

// fixture is a console over a real embedded NATS server and engine, with
// a journal holding a customer, a subscription, a hostile event id and a
// top-up the wallets refuse (a dead letter), and the log it writes.
type fixture struct {
	url  string
	logs *bytes.Buffer
	js   jetstream.JetStream
}

// fixtureOptions: the session bound, and how many more subscriptions and
// delivery log entries to make.
type fixtureOptions struct {
	maxSessions, subscriptions, deliveries int
	// orders journals that many paid checkouts of cus_more.
	orders int
	// rebuildRate caps a rebuild's fold (events per second), so a test
	// can act while one runs.
	rebuildRate float64
	// flaky journals evt_flaky, which the customers projection fails to
	// store (a transient failure): a dead letter waiting for its
	// scheduled retry.
	flaky bool
}

// storeDownFor is a projection whose stores fail (transiently) for one
// event.
type storeDownFor struct {
	reducers.Projection
	eventID string
}

func (p storeDownFor) Apply(ev *domain.Envelope, records reducers.Lookup) (reducers.Changes, error) {
	if ev.EventID == p.eventID {
		return nil, domain.Errorf(domain.CodeStoreUnavailable, "store down for %s", ev.EventID)
	}
	return p.Projection.Apply(ev, records)
}

func newFixture(t *testing.T, o fixtureOptions) *fixture {
	t.Helper()
	nc, js := natstest.Connect(t, natstest.Server(t))
	ctx, cancel := context.WithCancel(context.Background())
	require.NoError(t, ingest.EnsureStreams(ctx, js, ingest.StreamOptions{Replicas: 1}))
	j := ingest.NewJournal(nc, js)
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, s := range []samples.Stripe{
		{EventID: "evt_cus", Type: "customer.created", Created: at, CustomerID: "cus_1"},
		{EventID: "evt_sub", Type: "customer.subscription.created", Created: at, CustomerID: "cus_1", SubscriptionID: "sub_1"},
		{EventID: hostileID, Type: "customer.updated", Created: at, CustomerID: "cus_1"},
		{EventID: "evt_bad_topup", Type: "checkout.session.completed", Created: at, CustomerID: "cus_1",
			Object: map[string]any{"metadata": map[string]any{"user_id": "user_1", "credits": "lots"}}},
		// A paid checkout that tops up user_1's wallet: it makes the order
		// pi_topup and credits the wallet.
		{EventID: "evt_topup", Type: "checkout.session.completed", Created: at, CustomerID: "cus_1",
			Object: map[string]any{"id": "cs_topup", "payment_intent": "pi_topup", "amount_total": 1000, "currency": "eur",
				"metadata": map[string]any{"user_id": "user_1", "credits": "100"}}},
	} {
		appendStripe(t, j, s)
	}
	// Clerk's user_1 signs up: a customer, and a wallet credited with the
	// signup bonus.
	_, err := j.Append(ctx, &domain.Envelope{Provider: domain.Clerk, Endpoint: "clerk", EventID: "evt_user_1", EventType: "user.created",
		Created: at, Received: time.Now(), Verification: domain.VerifiedSignature, Body: samples.ClerkUser("user.created", "user_1", at),
		ObjectKind: "user", ObjectID: "user_1"})
	require.NoError(t, err)
	if o.flaky {
		appendStripe(t, j, samples.Stripe{EventID: "evt_flaky", Type: "customer.updated", Created: at, CustomerID: "cus_2"})
	}
	if o.subscriptions+o.orders > 0 {
		// cus_more is user_more: linked to no other customer.
		appendStripe(t, j, samples.Stripe{EventID: "evt_more", Type: "customer.created", Created: at, CustomerID: "cus_more",
			Object: map[string]any{"metadata": map[string]any{"user_id": "user_more"}}})
	}
	for i := range o.orders {
		appendStripe(t, j, samples.Stripe{EventID: fmt.Sprintf("evt_order_%03d", i), Type: "checkout.session.completed", Created: at, CustomerID: "cus_more",
			Object: map[string]any{"id": fmt.Sprintf("cs_more_%03d", i), "payment_intent": fmt.Sprintf("pi_more_%03d", i), "amount_total": 500, "currency": "eur",
				"metadata": map[string]any{"user_id": "user_more"}}})
	}
	for i := range o.subscriptions {
		appendStripe(t, j, samples.Stripe{EventID: fmt.Sprintf("evt_more_%03d", i), Type: "customer.subscription.created", Created: at,
			CustomerID: "cus_more", SubscriptionID: fmt.Sprintf("sub_more_%03d", i)})
	}
	// Delivery log entries in a known order (ingest.DeliveryLog writes
	// from several workers, so its order is the arrivals', not the calls').
	for i := range o.deliveries {
		d := domain.Delivery{Endpoint: "stripe", Provider: domain.Stripe, EventID: fmt.Sprintf("evt_d_%03d", i), EventType: "invoice.paid",
			Outcome: domain.OutcomeAccepted, Status: http.StatusOK, Received: time.Now(), Completed: time.Now(), Attempt: 1}
		if i%3 == 0 {
			d.EventID, d.Outcome, d.Status, d.ReasonCode = "", domain.OutcomeRejected, http.StatusBadRequest, domain.CodeSigMismatch
		}
		b, err := json.Marshal(d)
		require.NoError(t, err)
		_, err = js.Publish(ctx, d.Subject(), b)
		require.NoError(t, err)
	}
	logs := &bytes.Buffer{}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	projs := reducers.All(reducers.DefaultOptions())
	if o.flaky {
		for i, p := range projs {
			if p.Name() == domain.ProjectionCustomers {
				projs[i] = storeDownFor{Projection: p, eventID: "evt_flaky"}
			}
		}
	}
	engine, err := projections.NewEngine(ctx, js, projs, projections.EngineOptions{Replicas: 1, Log: slog.New(slog.DiscardHandler),
		Retry: projections.RetryPolicy{Attempts: 2, Initial: time.Millisecond, Max: 5 * time.Millisecond}})
	require.NoError(t, err)
	rebuilds, err := rebuild.NewRebuilds(ctx, engine, rebuild.RebuildOptions{Log: slog.New(slog.DiscardHandler), Rate: o.rebuildRate})
	require.NoError(t, err)
	queries := query.New(engine, projs, "user_id")
	done := make(chan struct{})
	go func() { engine.Run(ctx); close(done) }()
	go queries.Run(ctx)
	go rebuilds.Run(ctx)
	t.Cleanup(func() { cancel(); <-done; rebuilds.Wait() })
	// Folded, dead-lettered and indexed.
	require.Eventually(t, func() bool {
		dls, err := engine.DeadLetters(ctx, deadletter.Filter{Status: deadletter.Open})
		if err != nil || len(dls) == 0 {
			return false
		}
		counts, err := queries.Counts(ctx)
		total := 0
		for _, n := range counts {
			total += n
		}
		return err == nil && total == 1+o.subscriptions
	}, 30*time.Second, 20*time.Millisecond)

	c, err := console.New(console.Config{Engine: engine, Rebuilds: rebuilds, Ledger: ledger.New(engine), Query: queries,
		JetStream: js, ReadToken: readToken, AdminTokens: httpapi.AdminTokens{"ops-alice": adminToken}, Log: log,
		MaxSessions: o.maxSessions})
	require.NoError(t, err)
	srv := httptest.NewServer(c)
	t.Cleanup(srv.Close)
	return &fixture{url: srv.URL, logs: logs, js: js}
}

// appendStripe journals s as the receiver would, naming its object.
func appendStripe(t *testing.T, j *ingest.Journal, s samples.Stripe) {
	t.Helper()
	env := &domain.Envelope{Provider: domain.Stripe, Endpoint: "stripe", EventID: s.EventID, EventType: s.Type,
		Created: s.Created, Received: time.Now(), Verification: domain.VerifiedSignature, Body: s.Event()}
	switch {
	case strings.HasPrefix(s.Type, "customer.subscription."):
		env.ObjectKind, env.ObjectID = "subscription", s.SubscriptionID
	case strings.HasPrefix(s.Type, "customer."):
		env.ObjectKind, env.ObjectID = "customer", s.CustomerID
	}
	_, err := j.Append(context.Background(), env)
	require.NoError(t, err)
}

// browser is an HTTP client with a cookie jar that does not follow
// redirects, so a test sees each answer.
func browser(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	return &http.Client{Jar: jar, Timeout: 15 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func get(t *testing.T, b *http.Client, u string) (*http.Response, string) {
	t.Helper()
	resp, err := b.Get(u)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func post(t *testing.T, b *http.Client, u string, form url.Values) (*http.Response, string) {
	t.Helper()
	resp, err := b.PostForm(u, form)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

var hiddenCSRF = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// signIn signs b in with token and returns the session's CSRF token.
func (f *fixture) signIn(t *testing.T, b *http.Client, token string) string {
	t.Helper()
	_, page := get(t, b, f.url+"/ui/login")
	m := hiddenCSRF.FindStringSubmatch(page)
	require.NotNil(t, m, page)
	resp, body := post(t, b, f.url+"/ui/login", url.Values{"csrf": {m[1]}, "token": {token}, "next": {"/ui/dead-letters"}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, body)
	assert.Equal(t, "/ui/dead-letters", resp.Header.Get("Location"))
	var session *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "billfold_session" && c.Value != "" {
			session = c
		}
	}
	require.NotNil(t, session, "a session cookie")
	assert.True(t, session.HttpOnly, "the session cookie is HttpOnly")
	assert.Equal(t, http.SameSiteStrictMode, session.SameSite)
	_, page = get(t, b, f.url+"/ui/dead-letters")
	m = hiddenCSRF.FindStringSubmatch(page)
	require.NotNil(t, m, page)
	return m[1]
}

// With BILLFOLD_API_TOKEN set, pages need a session: the read token opens
// a read-only one, which cannot act; a wrong token opens none.
func TestConsoleReadsFollowTheAPIToken(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	b := browser(t)
	resp, _ := get(t, b, f.url+"/ui/subscriptions")
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	assert.Equal(t, "/ui/login?next=%2Fui%2Fsubscriptions", resp.Header.Get("Location"))

	_, page := get(t, b, f.url+"/ui/login")
	m := hiddenCSRF.FindStringSubmatch(page)
	require.NotNil(t, m)
	resp, page = post(t, b, f.url+"/ui/login", url.Values{"csrf": {m[1]}, "token": {"not-a-token-at-all-really"}})
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Contains(t, page, "neither an admin token nor the API token")

	csrf := f.signIn(t, b, readToken)
	resp, page = get(t, b, f.url+"/ui/subscriptions")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, page, "sub_1")
	assert.Contains(t, page, "read-only")
	_, page = get(t, b, f.url+"/ui/dead-letters")
	assert.Contains(t, page, "evt_bad_topup")
	assert.NotContains(t, page, "Requeue", "a read-only session is offered no action")

	resp, page = post(t, b, f.url+"/ui/dead-letters/requeue", url.Values{"csrf": {csrf}, "projection": {"wallets"}})
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Contains(t, page, string(domain.CodeUnauthorized))
}

// Every action is a POST from an admin session carrying the session's
// CSRF token; a bulk requeue is a dry run until confirmed, and the log
// names the admin token that asked.
func TestConsoleRequeueNeedsCSRFAndADryRun(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	b := browser(t)
	csrf := f.signIn(t, b, adminToken)
	where := url.Values{"projection": {"wallets"}, "code": {string(domain.CodeReducerInvalid)}}

	without := url.Values{"projection": where["projection"], "code": where["code"]}
	resp, page := post(t, b, f.url+"/ui/dead-letters/requeue", without)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "no CSRF token")
	assert.Contains(t, page, "CSRF")
	without.Set("csrf", "forged")
	resp, _ = post(t, b, f.url+"/ui/dead-letters/requeue", without)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "a wrong CSRF token")

	where.Set("csrf", csrf)
	resp, page = post(t, b, f.url+"/ui/dead-letters/requeue", where)
	require.Equal(t, http.StatusOK, resp.StatusCode, f.logs.String())
	assert.Contains(t, page, "Requeue 1 dead letter?")
	assert.Contains(t, page, "evt_bad_topup")
	assert.Contains(t, page, "Confirm: requeue 1")
	assert.NotContains(t, f.logs.String(), "console requeue", "a dry run changes nothing")

	where.Set("confirm", "yes")
	resp, page = post(t, b, f.url+"/ui/dead-letters/requeue", where)
	require.Equal(t, http.StatusOK, resp.StatusCode, f.logs.String())
	// The top-up is still invalid, so it fails again: the requeue happened.
	assert.Contains(t, page, "Requeued 1: 0 applied, 1 failed again.")
	assert.Contains(t, f.logs.String(), `"by":"ops-alice"`)
	assert.NotContains(t, f.logs.String(), adminToken)

	// GET cannot act.
	resp, _ = get(t, b, f.url+"/ui/dead-letters/requeue")
	assert.NotEqual(t, http.StatusOK, resp.StatusCode)
}

// A hostile event id is text on every page that shows it, and every page
// carries the strict Content-Security-Policy.
func TestConsoleEscapesHostileValues(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	b := browser(t)
	f.signIn(t, b, readToken)
	resp, page := get(t, b, f.url+"/ui/events/stripe/"+url.PathEscape(hostileID))
	require.Equal(t, http.StatusOK, resp.StatusCode, page)
	assert.NotContains(t, page, "<script>alert")
	assert.Contains(t, page, `evt_&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;`)
	csp := resp.Header.Get("Content-Security-Policy")
	assert.Contains(t, csp, "script-src 'self'")
	assert.Contains(t, csp, "default-src 'none'")
	assert.NotContains(t, csp, "unsafe-inline")
	assert.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"))

	assert.Contains(t, page, `<a href="/ui/customers/stripe/cus_1">customer cus_1</a> <span class="muted">changed by this event</span>`,
		"the event links the record it changed")
	_, page = get(t, b, f.url+"/ui/events/stripe/evt_sub")
	assert.Contains(t, page, `<a href="/ui/subscriptions/stripe/sub_1">subscription sub_1</a> <span class="muted">changed by this event</span>`)
	assert.Contains(t, page, `<a href="/ui/customers/stripe/cus_1">customer cus_1</a>`, "and the customer it names")
	_, page = get(t, b, f.url+"/ui/customers/stripe/cus_1")
	assert.NotContains(t, page, "<script>alert")
	// No page has an inline script: the only script is the embedded file.
	for _, p := range []string{"/ui/", "/ui/deliveries", "/ui/dead-letters", "/ui/rebuilds", "/ui/subscriptions", "/ui/subscriptions/stripe/sub_1"} {
		resp, page := get(t, b, f.url+p)
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", p, page)
		assert.Equal(t, 1, strings.Count(page, "<script"), p)
		assert.Contains(t, page, `<script src="/ui/static/console.js" defer></script>`, p)
	}
}

// Sessions are bounded: past the bound a sign-in is refused with its
// code, and signing out frees a place.
func TestConsoleSessionsAreBounded(t *testing.T) {
	f := newFixture(t, fixtureOptions{maxSessions: 2})
	var csrfs []string
	var browsers []*http.Client
	for range 2 {
		b := browser(t)
		csrfs = append(csrfs, f.signIn(t, b, readToken))
		browsers = append(browsers, b)
	}
	third := browser(t)
	_, page := get(t, third, f.url+"/ui/login")
	m := hiddenCSRF.FindStringSubmatch(page)
	require.NotNil(t, m)
	resp, page := post(t, third, f.url+"/ui/login", url.Values{"csrf": {m[1]}, "token": {readToken}})
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Contains(t, page, string(domain.CodeConsoleSessionsFull))

	resp, _ = post(t, browsers[0], f.url+"/ui/logout", url.Values{"csrf": {csrfs[0]}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	f.signIn(t, third, readToken)

	// The login form itself carries a CSRF token: a post without the
	// form's cookie is refused.
	resp, _ = post(t, browser(t), f.url+"/ui/login", url.Values{"csrf": {m[1]}, "token": {adminToken}})
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
}

var (
	subscriptionLink = regexp.MustCompile(`href="/ui/subscriptions/stripe/(sub_[a-z0-9_]+)"`)
	deliveryRow      = regexp.MustCompile(`(?s)<tr>\s*<td class="time">.*?</tr>`)
	nextLink         = regexp.MustCompile(`rel="next" href="([^"]+)"`)
)

// The subscriptions list pages by cursor: 50 a page, each once, in order,
// and the last page has no next link.
func TestConsoleSubscriptionsPageByCursor(t *testing.T) {
	f := newFixture(t, fixtureOptions{subscriptions: 60})
	b := browser(t)
	f.signIn(t, b, readToken)
	seen := map[string]bool{}
	var pages []int
	next := "/ui/subscriptions?provider=stripe"
	for next != "" && len(pages) < 5 {
		resp, page := get(t, b, f.url+strings.ReplaceAll(next, "&amp;", "&"))
		require.Equal(t, http.StatusOK, resp.StatusCode, page)
		n := 0
		for _, m := range subscriptionLink.FindAllStringSubmatch(page, -1) {
			assert.False(t, seen[m[1]], "%s on two pages", m[1])
			seen[m[1]] = true
			n++
		}
		pages = append(pages, n)
		next = ""
		if m := nextLink.FindStringSubmatch(page); m != nil {
			next = m[1]
		}
	}
	assert.Equal(t, []int{50, 11}, pages, "sub_1 and 60 more")
	assert.True(t, seen["sub_1"] && seen["sub_more_000"] && seen["sub_more_059"])
}

// The deliveries page reads 100 log entries a page, newest first, and
// "Older deliveries" continues before them; a filter keeps what matches
// within the page.
func TestConsoleDeliveriesPageBySequence(t *testing.T) {
	f := newFixture(t, fixtureOptions{deliveries: 150})
	b := browser(t)
	f.signIn(t, b, readToken)
	resp, page := get(t, b, f.url+"/ui/deliveries")
	require.Equal(t, http.StatusOK, resp.StatusCode, page)
	first := deliveryRow.FindAllString(page, -1)
	require.Len(t, first, 100)
	assert.Contains(t, first[0], "evt_d_149", "newest first")
	assert.Contains(t, page, "read 100 delivery log entries")
	m := nextLink.FindStringSubmatch(page)
	require.NotNil(t, m, "an older page")
	_, page = get(t, b, f.url+strings.ReplaceAll(m[1], "&amp;", "&"))
	older := deliveryRow.FindAllString(page, -1)
	require.Len(t, older, 50)
	assert.Contains(t, older[0], "evt_d_049")
	assert.Contains(t, older[49], "unverified", "evt_d_000 was a rejected delivery")
	assert.Nil(t, nextLink.FindStringSubmatch(page), "the oldest page")

	_, page = get(t, b, f.url+"/ui/deliveries?outcome=rejected&code=BILLFOLD-SIG-MISMATCH")
	rows := deliveryRow.FindAllString(page, -1)
	assert.Len(t, rows, 33, "the rejected ones among the newest 100 (every third of 50..149)")
	for _, r := range rows {
		assert.Contains(t, r, "BILLFOLD-SIG-MISMATCH")
	}
}

// A rebuild is started from its dry run, followed as JSON by the page's
// script, and cancelled by an admin; each step is logged with who asked.
func TestConsoleRebuildStartAndCancel(t *testing.T) {
	f := newFixture(t, fixtureOptions{rebuildRate: 1})
	b := browser(t)
	csrf := f.signIn(t, b, adminToken)
	form := url.Values{"csrf": {csrf}, "projection": {"subscriptions"}}
	resp, page := post(t, b, f.url+"/ui/rebuilds", form)
	require.Equal(t, http.StatusOK, resp.StatusCode, page)
	assert.Contains(t, page, "Dry run: it would fold <strong>6</strong> journal events", "the whole journal: the fixture journals six")
	assert.Contains(t, page, `<input type="hidden" name="projection" value="subscriptions">`, "the confirmation keeps the form")

	form.Set("confirm", "yes")
	resp, page = post(t, b, f.url+"/ui/rebuilds", form)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, page)
	loc := resp.Header.Get("Location")
	require.True(t, strings.HasPrefix(loc, "/ui/rebuilds/"), loc)
	var rb rebuild.Rebuild
	resp, body := get(t, b, f.url+loc+"/progress")
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	require.NoError(t, json.Unmarshal([]byte(body), &rb))
	assert.Equal(t, rebuild.RebuildRunning, rb.Status, "1 event/s: still folding")
	assert.Equal(t, "ops-alice", rb.RequestedBy)

	resp, _ = post(t, b, f.url+loc+"/cancel", url.Values{})
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "no CSRF token")
	resp, page = post(t, b, f.url+loc+"/cancel", url.Values{"csrf": {csrf}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, page)
	require.Eventually(t, func() bool {
		_, body := get(t, b, f.url+loc+"/progress")
		return json.Unmarshal([]byte(body), &rb) == nil && rb.Finished()
	}, 30*time.Second, 100*time.Millisecond)
	assert.Equal(t, rebuild.RebuildCancelled, rb.Status)
	_, page = get(t, b, f.url+loc)
	assert.Contains(t, page, "cancelled")
	assert.Contains(t, f.logs.String(), `"msg":"console rebuild cancel","by":"ops-alice"`)
}

// An event page lists every record the event changed, each linking to
// its page: a checkout that tops up a wallet made an order, credited the
// wallet and names its customer; a Clerk sign-up made a customer and
// credited a wallet with the bonus. The order and wallet pages show them.
func TestConsoleEventListsTheOrdersAndWalletsItChanged(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	b := browser(t)
	f.signIn(t, b, readToken)
	changed := func(href, label string) string {
		return `<a href="` + href + `">` + label + `</a> <span class="muted">changed by this event</span>`
	}
	var page string
	require.Eventually(t, func() bool { // the wallets fold the top-up after the fixture's wait
		_, page = get(t, b, f.url+"/ui/events/stripe/evt_topup")
		return strings.Contains(page, changed("/ui/wallets/user_1", "wallet user_1"))
	}, 15*time.Second, 50*time.Millisecond, "the top-up's page links the wallet it credited")
	assert.Contains(t, page, changed("/ui/orders/stripe/pi_topup", "order pi_topup"), "and the order it made")
	assert.Contains(t, page, `<a href="/ui/customers/stripe/cus_1">customer cus_1</a>`, "and the customer it names")
	assert.Less(t, strings.Index(page, "customer cus_1"), strings.Index(page, "order pi_topup"), "customers, then orders, then wallets")
	assert.Less(t, strings.Index(page, "order pi_topup"), strings.Index(page, "wallet user_1"))

	require.Eventually(t, func() bool {
		_, page = get(t, b, f.url+"/ui/events/clerk/evt_user_1")
		return strings.Contains(page, changed("/ui/wallets/user_1", "wallet user_1"))
	}, 15*time.Second, 50*time.Millisecond, "the sign-up's page links the wallet it credited")
	assert.Contains(t, page, changed("/ui/customers/clerk/user_1", "customer user_1"), "and the customer it made")

	resp, page := get(t, b, f.url+"/ui/orders/stripe/pi_topup")
	require.Equal(t, http.StatusOK, resp.StatusCode, page)
	assert.Contains(t, page, `<a href="/ui/customers/stripe/cus_1">cus_1</a>`, "the order links its customer")
	assert.Contains(t, page, `<a href="/ui/events/stripe/evt_topup">evt_topup</a>`, "and the events folded into it")
	resp, page = get(t, b, f.url+"/ui/orders/stripe/cs_topup")
	require.Equal(t, http.StatusOK, resp.StatusCode, "an order is found by its checkout session too: %s", page)
	assert.Contains(t, page, "<title>Order pi_topup · billfold</title>")

	resp, page = get(t, b, f.url+"/ui/wallets/user_1")
	require.Equal(t, http.StatusOK, resp.StatusCode, page)
	assert.Contains(t, page, "<strong>140</strong> credits", "the 40-credit bonus and the 100-credit top-up")
	assert.Contains(t, page, "evt_topup")
	assert.Contains(t, page, "evt_user_1")
	resp, _ = get(t, b, f.url+"/ui/wallets/user_nobody")
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
}

// The overview shows each projection folding or paused (by whom, since
// when), and an admin pauses and resumes one from it; the rebuilds page
// says what is paused. Dead letters show their retry state, on their page
// and on the event's: a transient failure is retrying (its next retry
// due), a reducer's refusal exhausted.
func TestConsoleShowsPausesAndRetryStates(t *testing.T) {
	f := newFixture(t, fixtureOptions{flaky: true})
	b := browser(t)
	csrf := f.signIn(t, b, adminToken)
	_, page := get(t, b, f.url+"/ui/")
	assert.Equal(t, 4, strings.Count(page, `<span class="badge folding">folding</span>`), "four projections folding")
	assert.Contains(t, page, `action="/ui/projections/wallets/pause"`)
	assert.Contains(t, page, `aria-label="Pause wallets">Pause</button>`)

	resp, _ := post(t, b, f.url+"/ui/projections/wallets/pause", url.Values{})
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "no CSRF token")
	resp, page = post(t, b, f.url+"/ui/projections/wallets/pause", url.Values{"csrf": {csrf}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, page)
	assert.Equal(t, "/ui/", resp.Header.Get("Location"))
	_, page = get(t, b, f.url+"/ui/")
	assert.Regexp(t, `<td>wallets</td><td class="num">\d+</td>\s*<td><span class="badge paused">paused</span> <span class="muted">by ops-alice since 20`, page)
	assert.Equal(t, 3, strings.Count(page, `<span class="badge folding">folding</span>`), "the other three fold on")
	assert.Contains(t, page, `action="/ui/projections/wallets/resume"`)
	assert.Contains(t, f.logs.String(), `"msg":"console pause","by":"ops-alice","projection":"wallets"`)
	_, page = get(t, b, f.url+"/ui/rebuilds")
	assert.Contains(t, page, `<span class="badge paused">wallets</span> by ops-alice since`, "the rebuilds page says what is paused")

	resp, page = post(t, b, f.url+"/ui/projections/nothing/pause", url.Values{"csrf": {csrf}})
	assert.Equal(t, http.StatusNotFound, resp.StatusCode, page)
	resp, page = post(t, b, f.url+"/ui/projections/wallets/resume", url.Values{"csrf": {csrf}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, page)
	_, page = get(t, b, f.url+"/ui/")
	assert.Equal(t, 4, strings.Count(page, `<span class="badge folding">folding</span>`), "resumed")
	_, page = get(t, b, f.url+"/ui/rebuilds")
	assert.NotContains(t, page, "data-paused")

	retrying := regexp.MustCompile(`<span class="badge retrying">retrying</span> <span class="muted nowrap">next 20`)
	require.Eventually(t, func() bool {
		_, page = get(t, b, f.url+"/ui/dead-letters?projection=customers")
		return retrying.MatchString(page)
	}, 15*time.Second, 50*time.Millisecond, "the transient failure waits for its first scheduled retry")
	assert.Contains(t, page, "evt_flaky")
	_, page = get(t, b, f.url+"/ui/dead-letters?projection=wallets")
	assert.Contains(t, page, `<span class="badge exhausted">exhausted</span>`, "the reducer's refusal has no retry")
	assert.NotContains(t, page, `<span class="badge retrying">`)
	_, page = get(t, b, f.url+"/ui/events/stripe/evt_flaky")
	assert.Regexp(t, `<span class="badge retrying">retrying</span> <span class="muted">retry 1 due 20`, page, "the event page shows it too")
	_, page = get(t, b, f.url+"/ui/events/stripe/evt_bad_topup")
	assert.Contains(t, page, `<span class="badge exhausted">exhausted</span>`)
}

// A customer's page lists 50 subscriptions and 50 orders at a time, each
// list continuing by its own cursor while the other keeps its place.
func TestConsoleCustomerPagesItsLists(t *testing.T) {
	f := newFixture(t, fixtureOptions{subscriptions: 60, orders: 55})
	b := browser(t)
	f.signIn(t, b, readToken)
	orderLink := regexp.MustCompile(`href="/ui/orders/stripe/(pi_more_\d+)"`)
	moreSubs := regexp.MustCompile(`rel="next" href="([^"]+#subs)">More subscriptions`)
	moreOrders := regexp.MustCompile(`rel="next" href="([^"]+#ords)">More orders`)
	var page string
	require.Eventually(t, func() bool { // the orders index follows the fold
		_, page = get(t, b, f.url+"/ui/customers/stripe/cus_more")
		return len(orderLink.FindAllString(page, -1)) == 50
	}, 15*time.Second, 50*time.Millisecond, "the first 50 orders")
	subs, orders := firstGroups(subscriptionLink, page), firstGroups(orderLink, page)
	assert.Len(t, subs, 50, "the first 50 subscriptions")
	assert.Equal(t, "sub_more_000", subs[0])
	assert.Equal(t, "pi_more_000", orders[0])
	assert.NotContains(t, page, "Back to the first pages")

	m := moreSubs.FindStringSubmatch(page)
	require.NotNil(t, m, "a link to more subscriptions")
	resp, page2 := get(t, b, f.url+strings.ReplaceAll(m[1], "&amp;", "&"))
	require.Equal(t, http.StatusOK, resp.StatusCode, page2)
	assert.Equal(t, []string{"sub_more_050", "sub_more_051", "sub_more_052", "sub_more_053", "sub_more_054", "sub_more_055",
		"sub_more_056", "sub_more_057", "sub_more_058", "sub_more_059"}, firstGroups(subscriptionLink, page2), "the other 10")
	assert.Nil(t, moreSubs.FindStringSubmatch(page2), "no more subscriptions")
	assert.Equal(t, orders, firstGroups(orderLink, page2), "the orders keep their page")
	assert.Contains(t, page2, "Back to the first pages")

	m = moreOrders.FindStringSubmatch(page2)
	require.NotNil(t, m, "a link to more orders")
	_, page3 := get(t, b, f.url+strings.ReplaceAll(m[1], "&amp;", "&"))
	assert.Equal(t, []string{"pi_more_050", "pi_more_051", "pi_more_052", "pi_more_053", "pi_more_054"}, firstGroups(orderLink, page3), "the other 5")
	assert.Equal(t, firstGroups(subscriptionLink, page2), firstGroups(subscriptionLink, page3), "the subscriptions keep their page")
	assert.Nil(t, moreOrders.FindStringSubmatch(page3))
}

// The rebuilds page lists 50, newest first, and "Older" continues after
// them: a page reads only the records it lists.
func TestConsoleRebuildsPageByID(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	ctx := context.Background()
	kv, err := f.js.KeyValue(ctx, domain.RebuildsBucket)
	require.NoError(t, err)
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for i := range 55 { // a replay a minute, oldest first
		at := start.Add(time.Duration(i) * time.Minute)
		id := "rp_" + at.Format("20060102T150405") + "_000000"
		b, err := json.Marshal(rebuild.Rebuild{ID: id, Kind: rebuild.KindReplay, Status: rebuild.RebuildDone, CreatedAt: at, UpdatedAt: at})
		require.NoError(t, err)
		_, err = kv.Put(ctx, id, b)
		require.NoError(t, err)
	}
	b := browser(t)
	f.signIn(t, b, readToken)
	row := regexp.MustCompile(`<a href="/ui/rebuilds/(rp_[0-9T]+)_000000">`)
	ids := func(page string) []string { return firstGroups(row, page) }
	_, page := get(t, b, f.url+"/ui/rebuilds")
	first := ids(page)
	require.Len(t, first, 50)
	assert.Equal(t, "rp_20260301T125400", first[0], "the newest first")
	assert.Equal(t, "rp_20260301T120500", first[49])
	m := nextLink.FindStringSubmatch(page)
	require.NotNil(t, m, "a link to older ones")
	_, page = get(t, b, f.url+strings.ReplaceAll(m[1], "&amp;", "&"))
	assert.Equal(t, []string{"rp_20260301T120400", "rp_20260301T120300", "rp_20260301T120200", "rp_20260301T120100", "rp_20260301T120000"}, ids(page))
	assert.Nil(t, nextLink.FindStringSubmatch(page), "none older")
	assert.Contains(t, page, `<a href="/ui/rebuilds">Newest first</a>`)
}

// firstGroups is the first group of every match of re in page, in order.
func firstGroups(re *regexp.Regexp, page string) []string {
	var out []string
	for _, m := range re.FindAllStringSubmatch(page, -1) {
		out = append(out, m[1])
	}
	return out
}
