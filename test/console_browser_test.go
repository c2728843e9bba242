package test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest/samples"
	"github.com/billfold/billfold/projections"
	"github.com/billfold/billfold/projections/deadletter"
	"github.com/billfold/billfold/projections/ledger"
)

const (
	consoleReadToken  = "console-e2e-read-token-0123456789"
	consoleAdminToken = "console-e2e-admin-token-0123456789"
	// consoleHostileID is an event id that is markup; the console must
	// show it as text.
	consoleHostileID = `evt_<img src=x onerror=alert(1)>`
)

// chromiumPath is the Chromium to drive: $CHROMIUM, or the system
// package's. Under CI a missing browser fails the test (.ci/run installs
// it); elsewhere it skips, saying why.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROMIUM"); p != "" {
		path, err := exec.LookPath(p)
		if err != nil {
			t.Fatalf("CHROMIUM=%s: %v", p, err)
		}
		return path
	}
	for _, p := range []string{"/usr/bin/chromium", "/usr/bin/chromium-browser", "chromium"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("Chromium is missing: .ci/run installs it (apt-get install -y chromium), or set CHROMIUM to its path")
	}
	t.Skip("no Chromium: install it (apt-get install -y chromium) or set CHROMIUM to run the console's browser tests")
	return ""
}

// newBrowser starts headless Chromium with a fresh profile and every
// network feature that would reach past loopback turned off.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 4*time.Minute)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	require.NoError(t, chromedp.Do(ctx))
	// A script dialog means markup ran as code: fail, and dismiss it so
	// the page does not hang.
	require.NoError(t, chromedp.Listen(ctx, func(ev any) {
		if d, ok := ev.(*page.EventJavascriptDialogOpening); ok {
			t.Errorf("a script dialog opened: %q", d.Message)
			go func() { _, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{}) }()
		}
	}))
	return ctx
}

// apiGet reads an admin API route with the API token.
func apiGet(t *testing.T, srv *server, path string, v any) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, srv.admin+path, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+consoleReadToken)
	resp, err := client.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if v != nil && resp.StatusCode == http.StatusOK {
		require.NoError(t, json.Unmarshal(b, v))
	}
	return resp.StatusCode
}

// deliverStripe signs and delivers a Stripe event.
func deliverStripe(t *testing.T, srv *server, ev samples.Stripe) {
	t.Helper()
	body := ev.Event()
	code, answer, _ := srv.post("stripe", body, stripeSig(body, time.Now(), stripeSecret))
	require.Equal(t, http.StatusOK, code, answer)
}

// waitSettled waits until the event is in no projection pending.
func waitSettled(t *testing.T, srv *server, id string) {
	t.Helper()
	require.Eventually(t, func() bool {
		var e ledger.EventEntry
		if apiGet(t, srv, "/v1/events/stripe/"+url.PathEscape(id), &e) != http.StatusOK || len(e.Projections) == 0 {
			return false
		}
		for _, p := range e.Projections {
			if p.Status == ledger.StatusPending {
				return false
			}
		}
		return true
	}, 60*time.Second, 100*time.Millisecond, "event %s settles\n%s", id, tail(srv.logs.String(), 3000))
}

// consoleServer runs billfold serve on the demo's history with a read
// token, a named admin token, a hostile event id and three dead letters
// (a top-up journaled while a reducer bug, BILLFOLD_FAIL_EVENT_TYPES, was
// on; the server was then restarted without it, as after a fix).
func consoleServer(t *testing.T) *server {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	out, code := runBillfold(t, "demo", "--exit", "--data-dir", dir, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0")
	require.Equal(t, 0, code, out)
	env := []string{"STRIPE_WEBHOOK_SECRET=" + stripeSecret, "BILLFOLD_API_TOKEN=" + consoleReadToken,
		"BILLFOLD_ADMIN_TOKEN=", "BILLFOLD_ADMIN_TOKENS=ops-alice=" + consoleAdminToken}
	srv := startServer(t, dir, append(env, "BILLFOLD_FAIL_EVENT_TYPES=checkout.session.completed"))
	at := time.Now().Add(-time.Minute).Truncate(time.Second)
	deliverStripe(t, srv, samples.Stripe{EventID: consoleHostileID, Type: "customer.updated", Created: at, CustomerID: "cus_demo_ana",
		Object: map[string]any{"email": "ana+<b>bold</b>@example.com"}})
	deliverStripe(t, srv, samples.Stripe{EventID: "evt_console_topup", Type: "checkout.session.completed", Created: at, CustomerID: "cus_demo_ana",
		Object: map[string]any{"id": "cs_console", "payment_intent": "pi_console", "metadata": map[string]any{"user_id": "user_demo_ana", "credits": "100"}}})
	waitSettled(t, srv, consoleHostileID)
	waitSettled(t, srv, "evt_console_topup")
	srv.stop()
	srv.env = env
	srv.start()
	return srv
}

// text is the visible text of the first element sel matches.
func text(ctx context.Context, t *testing.T, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel), chromedp.NodeVisible))
	require.NoError(t, err, sel)
	return s
}

// clickAndWait clicks sel and waits for an element matching next.
func clickAndWait(ctx context.Context, t *testing.T, sel, next string) {
	t.Helper()
	browse(ctx, t, chromedp.Click(sel, chromedp.NodeVisible), chromedp.WaitVisible(next))
}

// browse runs steps, each page given at most 45 s.
func browse(ctx context.Context, t *testing.T, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 45*time.Second)
	defer cancel()
	require.NoError(t, chromedp.Do(ctx, steps...))
}

// The console in a real browser against the real binary with the demo's
// history: sign-in (and a forged sign-in refused), every page loaded and
// linked, a hostile event id shown as text, a bulk requeue through its dry
// run, a rebuild started and followed, and the change feed live.
func TestConsoleInABrowser(t *testing.T) {
	ctx := newBrowser(t) // first, so a missing Chromium skips before the server starts
	srv := consoleServer(t)

	// Reads need a session when BILLFOLD_API_TOKEN is set.
	browse(ctx, t, chromedp.Navigate(srv.admin+"/"), chromedp.WaitVisible(chromedp.CSS(`#token`)))
	loc, err := chromedp.Run(ctx, chromedp.Location())
	require.NoError(t, err)
	assert.Contains(t, loc, "/ui/login")

	// A sign-in whose form token was tampered with is refused.
	browse(ctx, t,
		chromedp.SetAttributeValue(chromedp.CSS(`input[name="csrf"]`), "value", "forged"),
		chromedp.SendKeys(chromedp.CSS(`#token`), consoleAdminToken),
		chromedp.Submit(chromedp.CSS(`#token`)),
		chromedp.WaitVisible(chromedp.CSS(`p.problem`)))
	assert.Contains(t, text(ctx, t, "p.problem"), "did not come from this page")

	browse(ctx, t,
		chromedp.SendKeys(chromedp.CSS(`#token`), consoleAdminToken),
		chromedp.Submit(chromedp.CSS(`#token`)),
		chromedp.WaitVisible(chromedp.CSS(`#intake`)))
	assert.Contains(t, text(ctx, t, ".who"), "admin: ops-alice")
	assert.Equal(t, "3", text(ctx, t, `section[aria-labelledby="dead"] .big`))

	// The change feed is live: a delivery shows up without a reload.
	browse(ctx, t, chromedp.WaitVisible(`//p[@data-feed-status][contains(., "Connected")]`))
	deliverStripe(t, srv, samples.Stripe{EventID: "evt_console_live", Type: "customer.updated", Created: time.Now().Truncate(time.Second), CustomerID: "cus_demo_ben"})
	browse(ctx, t, chromedp.WaitVisible(`//ol[@class="feed"]/li[contains(., "evt_console_live")]`))
	shoot(ctx, t, "overview", true)

	// The overview's groups link to the dead letters they count.
	clickAndWait(ctx, t, `//section[@aria-labelledby="dead"]//a[@class="code"][contains(@href, "wallets")]`, `#groups`)
	assert.Contains(t, text(ctx, t, "#main"), "1 match the filter.")

	// Deliveries, newest first, each linking to its event; the hostile id
	// is text there and on its event page.
	clickAndWait(ctx, t, `//nav/a[.="Deliveries"]`, `//table`)
	shoot(ctx, t, "deliveries", false)
	clickAndWait(ctx, t, `//a[.="`+consoleHostileID+`"]`, `#journal`)
	assert.Equal(t, "Event "+consoleHostileID, text(ctx, t, "h1"))
	imgs, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("img").length`))
	require.NoError(t, err)
	scripts, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("script").length`))
	require.NoError(t, err)
	assert.Zero(t, imgs, "the id's markup made no element")
	assert.Equal(t, 1, scripts, "only the console's own script")
	assert.Contains(t, text(ctx, t, "pre.body"), `"email": "ana+\u003cb\u003ebold\u003c/b\u003e@example.com"`)
	assert.Contains(t, text(ctx, t, "#main"), "processed")

	// The failed top-up's event page shows its dead letters.
	browse(ctx, t, chromedp.Navigate(srv.admin+"/ui/events/stripe/evt_console_topup"), chromedp.WaitVisible(chromedp.CSS(`#projs`)))
	assert.Contains(t, text(ctx, t, "#main"), "BILLFOLD-REDUCER-FAILED")
	shoot(ctx, t, "event", true)

	// Dead letters: a bulk requeue is a dry run that lists them, then a
	// confirmation.
	clickAndWait(ctx, t, `//nav/a[.="Dead letters"]`, `#groups`)
	assert.Contains(t, text(ctx, t, "#groups"), "3 open")
	shoot(ctx, t, "dead-letters", false)
	browse(ctx, t,
		chromedp.SendKeys(chromedp.CSS(`input[name="type"]`), "checkout.session.completed"),
		chromedp.Submit(chromedp.CSS(`input[name="type"]`)),
		chromedp.WaitVisible(`//button[contains(., "Requeue these 3")]`))
	clickAndWait(ctx, t, `//button[contains(., "Requeue these 3")]`, `#dry`)
	assert.Equal(t, "Requeue 3 dead letters?", text(ctx, t, "#dry"))
	assert.Contains(t, text(ctx, t, ".confirm"), "evt_console_topup")
	shoot(ctx, t, "requeue-dry-run", true)
	var list struct{ Items []deadletter.Letter }
	require.Equal(t, http.StatusOK, apiGet(t, srv, "/v1/dead-letters?status=open", &list))
	assert.Len(t, list.Items, 3, "the dry run changed nothing")
	clickAndWait(ctx, t, `//button[contains(., "Confirm: requeue 3")]`, `p.notice`)
	assert.Equal(t, "Requeued 3: 3 applied, 0 failed again.", text(ctx, t, "p.notice"))
	require.Equal(t, http.StatusOK, apiGet(t, srv, "/v1/dead-letters?status=open", &list))
	assert.Empty(t, list.Items)
	var wallet domain.WalletRecord
	require.Equal(t, http.StatusOK, apiGet(t, srv, "/v1/wallets/user_demo_ana", &wallet))
	assert.EqualValues(t, 140+100, wallet.Balance, "the requeued top-up credited the demo's 140")
	assert.Contains(t, srv.logs.String(), `"by":"ops-alice"`, "the requeue is logged with who asked")
	assert.NotContains(t, srv.logs.String(), consoleAdminToken)

	// Applied now, the top-up's page lists the order it made and the
	// wallet it credited, each linking to its page.
	browse(ctx, t, chromedp.Navigate(srv.admin+"/ui/events/stripe/evt_console_topup"), chromedp.WaitVisible(chromedp.CSS(`#records`)))
	records := text(ctx, t, `section[aria-labelledby="records"]`)
	assert.Contains(t, records, "order pi_console changed by this event")
	assert.Contains(t, records, "wallet user_demo_ana changed by this event")
	clickAndWait(ctx, t, `//a[.="order pi_console"]`, `//h1[.="Order pi_console"]`)
	assert.Contains(t, text(ctx, t, "#main"), "cus_demo_ana")
	shoot(ctx, t, "order", false)
	browse(ctx, t, chromedp.Navigate(srv.admin+"/ui/events/stripe/evt_console_topup"), chromedp.WaitVisible(chromedp.CSS(`#records`)))
	clickAndWait(ctx, t, `//a[.="wallet user_demo_ana"]`, `//h1[.="Wallet of user_demo_ana"]`)
	assert.Contains(t, text(ctx, t, "#main"), "240 credits")

	// Keyboard: Tab reaches the skip link first, each stop shows a focus
	// ring, and Enter on a link follows it. Subscriptions → one
	// subscription → its customer, by links.
	browse(ctx, t, chromedp.Navigate(srv.admin+"/ui/rebuilds"), chromedp.WaitVisible(chromedp.CSS(`#main`)), chromedp.KeyEvent("\t"))
	focused, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.activeElement.textContent`))
	require.NoError(t, err)
	assert.Equal(t, "Skip to content", focused)
	for range 6 { // billfold, Overview, Deliveries, Dead letters, Rebuilds, Subscriptions
		browse(ctx, t, chromedp.KeyEvent("\t"))
	}
	focused, err = chromedp.Run(ctx, chromedp.Evaluate[string](`document.activeElement.textContent`))
	require.NoError(t, err)
	assert.Equal(t, "Subscriptions", focused)
	outline, err := chromedp.Run(ctx, chromedp.Evaluate[string](`getComputedStyle(document.activeElement).outlineStyle`))
	require.NoError(t, err)
	assert.NotEqual(t, "none", outline, "a visible focus ring")
	browse(ctx, t, chromedp.KeyEvent("\r"), chromedp.WaitVisible(`//a[.="sub_demo_ben"]`))
	shoot(ctx, t, "subscriptions", false)
	clickAndWait(ctx, t, `//a[.="sub_demo_ben"]`, `#hist`)
	assert.Contains(t, text(ctx, t, "#sub"), "past_due")
	shoot(ctx, t, "subscription", false)
	clickAndWait(ctx, t, `//dd/a[.="cus_demo_ben"]`, `#subs`)
	assert.Contains(t, text(ctx, t, `section[aria-labelledby="subs"]`), "sub_demo_ben")
	assert.Contains(t, text(ctx, t, "#main"), "Wallet of user_demo_ben")
	shoot(ctx, t, "customer", true)

	// A rebuild: dry run, confirm, then its page follows it to the end.
	clickAndWait(ctx, t, `//nav/a[.="Rebuilds"]`, `#start`)
	browse(ctx, t, chromedp.Click(chromedp.CSS(`input[value="subscriptions"]`)))
	clickAndWait(ctx, t, `//button[.="Dry run…"]`, `#dry`)
	assert.Contains(t, text(ctx, t, ".confirm"), "Dry run: it would fold")
	clickAndWait(ctx, t, `//button[contains(., "Confirm: start the rebuild")]`, `#prog`)
	// The page follows the rebuild to its end.
	browse(ctx, t, chromedp.WaitVisible(`//p[@data-field="live"][contains(., "Finished: done")]`))
	assert.Equal(t, "done", text(ctx, t, `[data-field="status"]`))
	shoot(ctx, t, "rebuild", true)

	// Cancel: with the rebuild's fold capped at one event a second (a
	// restart with --rebuild-rate 1; sessions live in memory, so sign in
	// again), the demo's journal takes a minute to fold and the Cancel
	// button is in time.
	srv.stop()
	srv.args = append(srv.args, "--rebuild-rate", "1")
	srv.start()
	browse(ctx, t, chromedp.Navigate(srv.admin+"/ui/"), chromedp.WaitVisible(chromedp.CSS(`#token`)),
		chromedp.SendKeys(chromedp.CSS(`#token`), consoleAdminToken),
		chromedp.Submit(chromedp.CSS(`#token`)),
		chromedp.WaitVisible(chromedp.CSS(`#lag`)))
	// Wallets paused from the overview: the hold shows there, with who
	// made it, and on the rebuilds page.
	clickAndWait(ctx, t, `//button[@aria-label="Pause wallets"]`, `//tr[td[.="wallets"]]//span[.="paused"]`)
	paused, err := chromedp.Run(ctx, chromedp.Text(`//tr[td[.="wallets"]]`, chromedp.NodeVisible))
	require.NoError(t, err)
	assert.Contains(t, paused, "by ops-alice since")
	var holds struct{ Paused []projections.Pause }
	require.Equal(t, http.StatusOK, apiGet(t, srv, "/v1/projections/paused", &holds))
	require.Len(t, holds.Paused, 1, "the API sees the hold")
	assert.Equal(t, "wallets", holds.Paused[0].Projection)
	clickAndWait(ctx, t, `//nav/a[.="Rebuilds"]`, `#start`)
	assert.Contains(t, text(ctx, t, `[data-paused]`), "wallets by ops-alice")
	browse(ctx, t, chromedp.Click(chromedp.CSS(`input[value="subscriptions"]`)))
	clickAndWait(ctx, t, `//button[.="Dry run…"]`, `#dry`)
	clickAndWait(ctx, t, `//button[contains(., "Confirm: start the rebuild")]`, `#prog`)
	rebuildURL, err := chromedp.Run(ctx, chromedp.Location())
	require.NoError(t, err)
	assert.Equal(t, "running", text(ctx, t, `[data-field="status"]`), "one event a second: still folding")
	clickAndWait(ctx, t, `//button[.="Cancel"]`, `#prog`)
	browse(ctx, t, chromedp.WaitVisible(`//p[@data-field="live"][contains(., "Finished: cancelled")]`))
	assert.Equal(t, "cancelled", text(ctx, t, `[data-field="status"]`))
	gone, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("[data-hide-when-finished]").length`))
	require.NoError(t, err)
	assert.Zero(t, gone, "no Cancel button once it has ended")
	// The list shows it cancelled too, and the overview no longer in
	// progress.
	id := rebuildURL[strings.LastIndex(rebuildURL, "/")+1:]
	clickAndWait(ctx, t, `//a[.="All rebuilds and replays"]`, `#start`)
	row, err := chromedp.Run(ctx, chromedp.Text(`//tr[td/a[.="`+id+`"]]`, chromedp.NodeVisible))
	require.NoError(t, err)
	assert.Contains(t, row, "cancelled")
	assert.Contains(t, srv.logs.String(), `"msg":"console rebuild cancel","by":"ops-alice","rebuild":"`+id+`"`)
	shoot(ctx, t, "rebuilds", false)
	clickAndWait(ctx, t, `//nav/a[.="Overview"]`, `#running`)
	assert.Contains(t, text(ctx, t, `section[aria-labelledby="running"]`), "None.")
	clickAndWait(ctx, t, `//button[@aria-label="Resume wallets"]`, `//tr[td[.="wallets"]]//span[.="folding"]`)
	require.Equal(t, http.StatusOK, apiGet(t, srv, "/v1/projections/paused", &holds))
	assert.Empty(t, holds.Paused, "resumed")

	// Signing out ends the session: pages ask for a sign-in again.
	browse(ctx, t, chromedp.Click(`//button[.="Sign out"]`), chromedp.WaitVisible(chromedp.CSS(`#token`)),
		chromedp.Navigate(srv.admin+"/ui/subscriptions"), chromedp.WaitVisible(chromedp.CSS(`#token`)))

	// The public listener serves none of it.
	resp, err := client.Get(srv.public + "/ui/")
	require.NoError(t, err)
	resp.Body.Close()
	assert.NotEqual(t, http.StatusOK, resp.StatusCode)
}

// shoot saves a full-page screenshot at laptop width (and, with phone, at
// phone width) into $BILLFOLD_CONSOLE_SCREENSHOTS (docs/console/), when it
// is set.
func shoot(ctx context.Context, t *testing.T, name string, phone bool) {
	t.Helper()
	dir := os.Getenv("BILLFOLD_CONSOLE_SCREENSHOTS")
	if dir == "" {
		return
	}
	for _, size := range []struct {
		suffix string
		w, h   int64
	}{{"laptop", 1280, 800}, {"phone", 390, 844}} {
		if size.suffix == "phone" && !phone {
			continue
		}
		browse(ctx, t, chromedp.EmulateViewport(size.w, size.h))
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, fmt.Sprintf("%s-%s.png", name, size.suffix)), png, 0o644))
	}
	browse(ctx, t, chromedp.EmulateViewport(1280, 900))
}
