package gameday

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/billfold/billfold/cmd/billfold/internal/demo"
	"github.com/billfold/billfold/cmd/billfold/internal/local"
	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest/samples"
	"github.com/billfold/billfold/projections"
	"github.com/billfold/billfold/projections/admin"
	"github.com/billfold/billfold/projections/deadletter"
)

// The drills of billfold gameday (gameday.go), one function each; what
// each does and what an operator sees is in docs/gameday.md.

// drillSignatureFailure sends deliveries signed with a secret the endpoint
// does not have, and signed bodies tampered with afterwards (a top-up whose
// credits were raised). Each must be answered 400 and counted as
// BILLFOLD-SIG-MISMATCH in billfold_signature_failures_total, the delivery
// log and the logs, and none may reach the journal; a correctly signed
// delivery in between is accepted, so the refusals are the signatures'.
func drillSignatureFailure(ctx context.Context, r *drillRun) error {
	e, err := r.startEngine(ctx, "engine", nil, nil)
	if err != nil {
		return err
	}
	wrong := demo.NewSecrets()
	now := time.Now()
	type forgery struct {
		endpoint string
		signed   samples.Signed
	}
	var forged []forgery
	var forgedIDs []string
	for i := range 4 {
		id := fmt.Sprintf("evt_gameday_wrong_secret_%d", i)
		forgedIDs = append(forgedIDs, id)
		s, err := samples.Sign(domain.Stripe, wrong[domain.Stripe], samples.Stripe{EventID: id, Type: "customer.created", Created: now}.Event(), now)
		if err != nil {
			return err
		}
		forged = append(forged, forgery{"stripe", s})
	}
	for i := range 2 {
		s, err := samples.Sign(domain.Clerk, wrong[domain.Clerk], samples.ClerkUser("user.created", fmt.Sprintf("user_gameday_wrong_secret_%d", i), now), now)
		if err != nil {
			return err
		}
		forged = append(forged, forgery{"clerk", s})
	}
	tamperedUsers := []string{}
	for i := range 4 {
		id, user := fmt.Sprintf("evt_gameday_tampered_%d", i), fmt.Sprintf("user_gameday_tampered_%d", i)
		forgedIDs, tamperedUsers = append(forgedIDs, id), append(tamperedUsers, user)
		s, err := samples.Sign(domain.Stripe, r.secrets[domain.Stripe], topUpEvent(id, "pi_gameday_tampered_"+strconv.Itoa(i), user, 100, now), now)
		if err != nil {
			return err
		}
		tampered := bytes.Replace(s.Body, []byte(`"credits":"100"`), []byte(`"credits":"100000"`), 1)
		if bytes.Equal(tampered, s.Body) {
			return fmt.Errorf("the top-up sample has no credits to tamper with")
		}
		s.Body = tampered
		forged = append(forged, forgery{"stripe", s})
	}

	refused := 0
	for i, f := range forged {
		if code, _ := e.deliver(ctx, f.endpoint, f.signed); code == http.StatusBadRequest {
			refused++
		}
		if i == len(forged)/2 { // the control, among the forgeries
			s, err := samples.Sign(domain.Stripe, r.secrets[domain.Stripe], samples.Stripe{EventID: "evt_gameday_genuine", Type: "customer.created", Created: now}.Event(), now)
			if err != nil {
				return err
			}
			code, _ := e.deliver(ctx, "stripe", s)
			r.check("a correctly signed delivery is accepted", code == http.StatusOK, "answered %d", code)
		}
	}
	n := len(forged)
	r.figure("forged_deliveries", n)
	r.figure("answered_400", refused)
	r.check("every forged delivery is answered 400", refused == n, "%d of %d", refused, n)

	mismatch := map[string]string{"code": string(domain.CodeSigMismatch)}
	var counted float64
	_ = waitFor(ctx, 5*time.Second, func() bool {
		counted = metricSum(e.metrics(ctx), "billfold_signature_failures_total", mismatch)
		return int(counted) >= n
	}, "")
	r.figure(`billfold_signature_failures_total{code="BILLFOLD-SIG-MISMATCH"}`, counted)
	r.check("billfold_signature_failures_total counts each as BILLFOLD-SIG-MISMATCH", int(counted) == n, "%v counted for %d", counted, n)

	var logged int
	_ = waitFor(ctx, 10*time.Second, func() bool {
		entries, err := e.deliveryLog(ctx, domain.OutcomeRejected)
		logged = countCodes(entries)[domain.CodeSigMismatch]
		return err == nil && logged >= n
	}, "")
	r.figure("delivery_log_rejected_sig_mismatch", logged)
	r.check("the delivery log records each as rejected, BILLFOLD-SIG-MISMATCH", logged == n, "%d entries for %d", logged, n)

	lines := r.logs.count("delivery", mismatch)
	r.figure("log_lines_sig_mismatch", lines)
	r.check("the log has a delivery line with code BILLFOLD-SIG-MISMATCH for each", lines == n, "%d lines for %d", lines, n)

	journaled, err := e.journalMessages(ctx)
	if err != nil {
		return err
	}
	r.figure("journaled_forged", int(journaled)-1)
	r.check("nothing forged reaches the journal: it holds only the genuine delivery", journaled == 1, "%d events journaled", journaled)
	known := 0
	for _, id := range forgedIDs {
		if code, _ := e.get(ctx, "/v1/events/stripe/"+id, nil); code != http.StatusNotFound {
			known++
		}
	}
	for _, u := range tamperedUsers {
		if code, _ := e.get(ctx, "/v1/wallets/"+u, nil); code != http.StatusNotFound {
			known++
		}
	}
	r.check("no forged event and no tampered credit is known to the event ledger or the wallets", known == 0, "%d known", known)
	return nil
}

// topUpEvent is a paid Stripe checkout that tops up user's wallet by
// credits, paid with payment intent pi.
func topUpEvent(id, pi, user string, credits int, at time.Time) []byte {
	return samples.Stripe{EventID: id, Type: "checkout.session.completed", Created: at, CustomerID: "cus_" + user,
		Object: map[string]any{"id": "cs_" + pi, "payment_intent": pi, "amount_total": 1000,
			"metadata": map[string]any{"user_id": user, "credits": strconv.Itoa(credits)}}}.Event()
}

// drillClockSkew signs deliveries for Stripe and Clerk (Svix) at times off
// by the endpoint's tolerance plus or minus 30 s, both ways: past the
// tolerance they are refused with BILLFOLD-SIG-TOO-OLD or -TOO-NEW, within
// it accepted. billfold doctor's own clock check (billfold's clock against
// the NATS server's) must see no skew.
func drillClockSkew(ctx context.Context, r *drillRun) error {
	e, err := r.startEngine(ctx, "engine", nil, nil)
	if err != nil {
		return err
	}
	doc, err := e.doctor(ctx)
	if err != nil {
		return err
	}
	tolerance := map[string]time.Duration{}
	for _, ep := range doc.Endpoints {
		tolerance[ep.Name] = time.Duration(ep.ToleranceSeconds * float64(time.Second))
	}
	const margin = 30 * time.Second
	type skewCase struct {
		name   string
		offset func(tol time.Duration) time.Duration
		status int
		code   domain.Code
	}
	cases := []skewCase{
		{"too_old", func(tol time.Duration) time.Duration { return -tol - margin }, http.StatusBadRequest, domain.CodeSigTooOld},
		{"too_new", func(tol time.Duration) time.Duration { return tol + margin }, http.StatusBadRequest, domain.CodeSigTooNew},
		{"old_within", func(tol time.Duration) time.Duration { return -tol + margin }, http.StatusOK, ""},
		{"new_within", func(tol time.Duration) time.Duration { return tol - margin }, http.StatusOK, ""},
	}
	got := map[string]int{}
	for _, p := range []domain.Provider{domain.Stripe, domain.Clerk} {
		tol := tolerance[string(p)]
		if !r.check(fmt.Sprintf("endpoint %s has a timestamp tolerance", p), tol > margin, "tolerance %s", tol) {
			continue
		}
		for _, c := range cases {
			at := time.Now().Add(c.offset(tol))
			body := samples.Stripe{EventID: "evt_gameday_skew_" + c.name, Type: "customer.created", Created: at}.Event()
			if p == domain.Clerk {
				body = samples.ClerkUser("user.created", "user_gameday_skew_"+c.name, at)
			}
			s, err := samples.Sign(p, r.secrets[p], body, at)
			if err != nil {
				return err
			}
			code, _ := e.deliver(ctx, string(p), s)
			r.check(fmt.Sprintf("%s signed %s off (%s) is answered %d", p, c.offset(tol), c.name, c.status), code == c.status, "answered %d", code)
			if code == c.status {
				got[c.name]++
			}
		}
	}
	r.figure("tolerance_s", tolerance["stripe"].Seconds())
	r.figure("rejected_too_old", got["too_old"])
	r.figure("rejected_too_new", got["too_new"])
	r.figure("accepted_within_tolerance", got["old_within"]+got["new_within"])

	for _, c := range cases[:2] {
		var counted float64
		_ = waitFor(ctx, 5*time.Second, func() bool {
			counted = metricSum(e.metrics(ctx), "billfold_signature_failures_total", map[string]string{"code": string(c.code)})
			return counted >= 2
		}, "")
		r.figure(fmt.Sprintf(`billfold_signature_failures_total{code="%s"}`, c.code), counted)
		r.check("billfold_signature_failures_total counts "+string(c.code), counted == 2, "%v for 2 deliveries", counted)
	}
	var codes map[domain.Code]int
	_ = waitFor(ctx, 10*time.Second, func() bool {
		entries, err := e.deliveryLog(ctx, domain.OutcomeRejected)
		codes = countCodes(entries)
		return err == nil && codes[domain.CodeSigTooOld] >= 2 && codes[domain.CodeSigTooNew] >= 2
	}, "")
	r.check("the delivery log records each refusal with its reason code", codes[domain.CodeSigTooOld] == 2 && codes[domain.CodeSigTooNew] == 2,
		"%d %s, %d %s", codes[domain.CodeSigTooOld], domain.CodeSigTooOld, codes[domain.CodeSigTooNew], domain.CodeSigTooNew)
	journaled, err := e.journalMessages(ctx)
	if err != nil {
		return err
	}
	r.check("the journal holds exactly the deliveries within tolerance", journaled == 4, "%d events journaled", journaled)

	if doc, err = e.doctor(ctx); err != nil {
		return err
	}
	r.figure("doctor_clock_skew_s", roundTo(doc.Clock.SkewSeconds, 3))
	skewProblems := 0
	for _, p := range doc.Problems {
		if p.Code == domain.CodeClockSkew {
			skewProblems++
		}
	}
	r.check("billfold doctor compares billfold's clock with the NATS server's and finds no skew",
		doc.Clock.Error == "" && skewProblems == 0, "skew %.3fs (threshold %.0fs), %d BILLFOLD-CLOCK-SKEW problems %s",
		doc.Clock.SkewSeconds, doc.Clock.ThresholdSeconds, skewProblems, doc.Clock.Error)
	return nil
}

// drillDownstreamTimeout measures the time to answer providers with and
// without two slow consumers of the change feed: a NATS subscriber on
// billfold.changes.> that spends 200 ms on each change, and a Server-Sent
// Events client of /v1/changes that reads one change every 200 ms. billfold
// answers after the journal's acknowledgement and feeds consumers from the
// projections afterwards, so the answers must not slow down.
func drillDownstreamTimeout(ctx context.Context, r *drillRun) error {
	const (
		n    = 150
		rate = 50 // deliveries a second, one at a time
		slow = 200 * time.Millisecond
	)
	ns, err := r.startNATS("nats")
	if err != nil {
		return err
	}
	e, err := r.startEngine(ctx, "engine", nil, func(o *local.Options) { o.NATSURL = ns.URL() })
	if err != nil {
		return err
	}
	baseline, err := ackTimes(ctx, e, r.secrets[domain.Stripe], "evt_gameday_baseline", n, rate)
	if err != nil {
		return err
	}
	if err := e.waitProjected(ctx, 30*time.Second); err != nil {
		return err
	}

	nc, err := nats.Connect(ns.URL(), nats.Name("billfold-gameday-slow-subscriber"))
	if err != nil {
		return err
	}
	defer nc.Close()
	var handled atomic.Int64
	sub, err := nc.Subscribe(domain.ChangeFilter(""), func(*nats.Msg) { time.Sleep(slow); handled.Add(1) })
	if err != nil {
		return err
	}
	defer sub.Unsubscribe() //nolint:errcheck // best effort at the drill's end
	if err := nc.Flush(); err != nil {
		return err
	}
	feed, err := openSlowFeed(ctx, e, slow)
	if err != nil {
		return err
	}
	defer feed.close()

	loaded, err := ackTimes(ctx, e, r.secrets[domain.Stripe], "evt_gameday_slow", n, rate)
	if err != nil {
		return err
	}
	subHandled, feedRead := handled.Load(), feed.read.Load()
	if err := e.waitProjected(ctx, 30*time.Second); err != nil {
		return err
	}
	pending, _, _ := sub.Pending()

	bp50, bp99, bmax := percentile(baseline, .5), percentile(baseline, .99), percentile(baseline, 1)
	sp50, sp99, smax := percentile(loaded, .5), percentile(loaded, .99), percentile(loaded, 1)
	r.figure("deliveries_per_run", n)
	r.figure("rate_per_s", rate)
	r.figure("ack_p50_baseline_ms", ms(bp50))
	r.figure("ack_p99_baseline_ms", ms(bp99))
	r.figure("ack_max_baseline_ms", ms(bmax))
	r.figure("ack_p50_slow_consumers_ms", ms(sp50))
	r.figure("ack_p99_slow_consumers_ms", ms(sp99))
	r.figure("ack_max_slow_consumers_ms", ms(smax))
	r.figure("slow_subscriber_handled", subHandled)
	r.figure("slow_subscriber_pending", pending)
	r.figure("slow_sse_client_read", feedRead)
	r.check("every delivery is answered 200 in both runs", len(baseline) == n && len(loaded) == n, "%d and %d of %d", len(baseline), len(loaded), n)
	r.check("the consumers really are slow: behind when the last delivery was answered", subHandled < n/2 && feedRead < n/2,
		"subscriber handled %d, SSE client read %d of %d", subHandled, feedRead, n)
	// Within noise: a consumer in the answer's path would add its 200 ms
	// per change to every answer; a busy machine's scheduling adds a few
	// milliseconds, now and then tens, to the tail.
	bound := max(2*bp99, bp99+50*time.Millisecond)
	r.check("ACK p99 unchanged within noise (at most twice the baseline's, or 50 ms more)", sp99 <= bound, "p99 %s against %s (bound %s)", sp99, bp99, bound)
	r.check("the SSE client is still connected", !feed.closed.Load(), "closed")
	rep, err := e.verify(ctx)
	if err != nil {
		return err
	}
	r.check("nothing lost: the projections caught up and equal a clean fold of the journal", rep.Identical, "%d differences", len(rep.Differences))
	return nil
}

// ackTimes sends n new signed customers one at a time at rate a second and
// returns each answer's time; an answer other than 200 is an error.
func ackTimes(ctx context.Context, e *drillEngine, secret, prefix string, n, rate int) ([]time.Duration, error) {
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	out := make([]time.Duration, 0, n)
	for i := range n {
		select {
		case <-ctx.Done():
			return out, ctx.Err()
		case <-tick.C:
		}
		id := fmt.Sprintf("%s_%04d", prefix, i)
		s, err := samples.Sign(domain.Stripe, secret, samples.Stripe{EventID: id, Type: "customer.created", Created: time.Now(), CustomerID: "cus_" + id}.Event(), time.Now())
		if err != nil {
			return out, err
		}
		start := time.Now()
		code, _ := e.deliver(ctx, "stripe", s)
		if code != http.StatusOK {
			return out, fmt.Errorf("delivery %s answered %d", id, code)
		}
		out = append(out, time.Since(start))
	}
	return out, nil
}

// slowFeedClient reads GET /v1/changes one event every pause.
type slowFeedClient struct {
	read   atomic.Int64
	closed atomic.Bool
	cancel context.CancelFunc
}

func openSlowFeed(ctx context.Context, e *drillEngine, pause time.Duration) (*slowFeedClient, error) {
	ctx, cancel := context.WithCancel(ctx)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.AdminURL+"/v1/changes", nil)
	if err != nil {
		cancel()
		return nil, err
	}
	// The feed streams for as long as it is read: no client timeout.
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		cancel()
		return nil, fmt.Errorf("GET /v1/changes answered %d", resp.StatusCode)
	}
	f := &slowFeedClient{cancel: cancel}
	go func() {
		defer resp.Body.Close()
		defer f.closed.Store(true)
		rd := bufio.NewReaderSize(resp.Body, 4096) // small: the server's writes back up
		for {
			line, err := rd.ReadString('\n')
			if err != nil {
				return
			}
			if strings.HasPrefix(line, "data:") {
				f.read.Add(1)
				sleepCtx(ctx, pause)
			}
		}
	}()
	return f, nil
}

func (f *slowFeedClient) close() { f.cancel() }

// drillDeadLetterReplay rehearses a reducer bug and its fix: with
// BILLFOLD_FAIL_EVENT_TYPES=checkout.session.completed, top-ups go to the
// dead letters while everything else flows; restarted without the switch
// (the fix), verify shows the damage, a requeue through the admin API
// (POST /v1/dead-letters/requeue) applies every dead letter, verify finds
// the projections identical to a clean fold, each wallet is credited
// exactly once, and requeueing again credits nothing more.
func drillDeadLetterReplay(ctx context.Context, r *drillRun) error {
	const users = 5
	failing := "checkout.session.completed"
	e, err := r.startEngine(ctx, "engine", map[string]string{"BILLFOLD_FAIL_EVENT_TYPES": failing}, nil)
	if err != nil {
		return err
	}
	now := time.Now().Add(-time.Minute)
	want := map[string]int64{}
	for u := range users {
		user := fmt.Sprintf("user_gameday_dl_%d", u)
		credits := 100 + 10*u
		want[user] = int64(credits)
		for _, body := range [][]byte{
			samples.Stripe{EventID: fmt.Sprintf("evt_gameday_dl_cus_%d", u), Type: "customer.created", Created: now, CustomerID: "cus_" + user,
				Object: map[string]any{"metadata": map[string]any{"user_id": user}}}.Event(), // the customer is the user's: the top-up is not held
			topUpEvent(fmt.Sprintf("evt_gameday_dl_topup_%d", u), fmt.Sprintf("pi_gameday_dl_%d", u), user, credits, now),
		} {
			s, err := samples.Sign(domain.Stripe, r.secrets[domain.Stripe], body, time.Now())
			if err != nil {
				return err
			}
			if code, _ := e.deliver(ctx, "stripe", s); code != http.StatusOK {
				return fmt.Errorf("delivery answered %d", code)
			}
		}
	}
	if err := e.waitProjected(ctx, 30*time.Second); err != nil {
		return err
	}
	var open struct {
		Items []deadletter.Letter `json:"items"`
	}
	if _, err := e.get(ctx, "/v1/dead-letters?status=open", &open); err != nil {
		return err
	}
	r.figure("top_ups_delivered", users)
	r.figure("dead_letters", len(open.Items))
	failed := metricSum(e.metrics(ctx), "billfold_projector_events_failed_total", map[string]string{"code": string(domain.CodeReducerFailed)})
	r.figure(`billfold_projector_events_failed_total{code="BILLFOLD-REDUCER-FAILED"}`, failed)
	r.check("each top-up is a dead letter in customers, orders and wallets", len(open.Items) == 3*users, "%d dead letters", len(open.Items))
	var cus domain.CustomerRecord
	code, _ := e.get(ctx, "/v1/customers/stripe/cus_user_gameday_dl_0", &cus)
	r.check("the other events flowed", code == http.StatusOK, "customer answered %d", code)

	// The fix: the same data, served without the switch.
	if err := e.Stop(); err != nil {
		return fmt.Errorf("stop the engine: %w", err)
	}
	if e, err = r.startEngine(ctx, "engine", nil, nil); err != nil {
		return err
	}
	before, err := e.verify(ctx)
	if err != nil {
		return err
	}
	differing := 0
	for _, p := range before.Projections {
		differing += p.Differences
	}
	r.figure("records_differing_before_requeue", differing)
	r.check("verify shows the damage before the requeue", !before.Identical, "identical")

	var res projections.RequeueResult
	code, err = e.call(ctx, http.MethodPost, "/v1/dead-letters/requeue", admin.RequeueWhereRequest{Where: map[string]string{"type": failing}}, &res)
	if err != nil {
		return err
	}
	r.figure("requeued", res.Matched)
	r.figure("applied", res.Applied)
	r.figure("failed_again", res.Failed)
	r.check("the requeue applies every dead letter", code == http.StatusOK && res.Matched == 3*users && res.Applied == res.Matched && res.Failed == 0,
		"answered %d: %d matched, %d applied, %d failed", code, res.Matched, res.Applied, res.Failed)
	after, err := e.verify(ctx)
	if err != nil {
		return err
	}
	r.check("verify: identical to a clean fold after the requeue", after.Identical, "%d differences", len(after.Differences))

	credited := func() int {
		n := 0
		for user, credits := range want {
			var w domain.WalletRecord
			if code, _ := e.get(ctx, "/v1/wallets/"+user, &w); code == http.StatusOK && w.Balance == credits && len(w.Entries) == 1 {
				n++
			}
		}
		return n
	}
	once := credited()
	r.figure("wallets_credited_once", fmt.Sprintf("%d/%d", once, users))
	r.check("each wallet is credited exactly once", once == users, "%d of %d", once, users)

	// Asked twice, billfold credits nothing more: a requeue of a resolved
	// dead letter applies an event the reducers already have.
	again := 0
	for _, dl := range open.Items {
		if dl.Projection != domain.ProjectionWallets {
			continue
		}
		var out deadletter.Letter
		if code, err := e.call(ctx, http.MethodPost, "/v1/dead-letters/"+deadletter.ID(dl.Projection, dl.JournalSequence)+"/requeue", nil, &out); err == nil && code == http.StatusOK {
			again++
		}
	}
	r.figure("requeued_again", again)
	stillOnce := credited()
	r.check("requeueing again credits nothing more", again == users && stillOnce == users, "%d requeued again, %d of %d wallets still credited once", again, stillOnce, users)
	return nil
}
