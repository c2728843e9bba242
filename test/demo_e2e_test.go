package test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// demoJSON is billfold demo -o json.
type demoJSON struct {
	AdminURL   string `json:"admin_url"`
	DataDir    string `json:"data_dir"`
	Deliveries struct {
		Sent       int `json:"sent"`
		Accepted   int `json:"accepted"`
		Duplicates int `json:"duplicates"`
		OutOfOrder int `json:"out_of_order"`
	} `json:"deliveries"`
	Subscriptions map[string][]struct {
		Provider       string `json:"provider"`
		ID             string `json:"id"`
		CustomerID     string `json:"customer_id"`
		ProviderStatus string `json:"provider_status"`
		Entitled       bool   `json:"entitled"`
	} `json:"subscriptions"`
	Wallets []struct {
		UserID    string `json:"user_id"`
		Balance   int64  `json:"balance"`
		Available int64  `json:"available"`
		Pending   int64  `json:"pending"`
		UserKnown bool   `json:"user_known"`
		Deleted   bool   `json:"user_deleted"`
	} `json:"wallets"`
	Next []string `json:"next"`
}

// billfold demo --exit: the history it delivers over HTTP ends in the
// states and balances the history implies. The expectations below are
// worked out from the history (cmd/billfold/demo.go), not from the
// reducers:
//
//   - ana: trialing, then active (a later update); active.
//   - ben: created active at +20m, past_due at +90m, delivered first;
//     ordered by Stripe's clock, past_due (entitled by default).
//   - chloe: cancel_at_period_end set while active; canceling, entitled.
//   - dan: deleted at +120m, delivered before his creation; ended.
//   - eve: created trialing; trialing. finn: paused at +100m; paused, not
//     entitled.
//   - braintree gold: went active, charged (twice); active.
//   - wallets: every user.created gives 40. ana +100 top-up, delivered
//     twice, counted once: 140. ben +250 then fully refunded, reversed:
//     40. cleo's +500 arrives before her user.created: 540, all
//     available once she is known. dan deleted his account: his 40 are
//     held, so available 0, pending 40.
//   - 32 deliveries: 4 repeats of an earlier body (duplicates), 3 later
//     than an event they precede (ben's past_due, dan's deletion, cleo's
//     user.created).
func TestDemoEndToEnd(t *testing.T) {
	// The demo ignores the env twins of serve's flags, so a real server's
	// BILLFOLD_DATA_DIR never receives the made-up history.
	realData := filepath.Join(t.TempDir(), "real-data")
	env := []string{"BILLFOLD_DATA_DIR=" + realData, "BILLFOLD_LISTEN=127.0.0.1:1"}

	out, stderr, code := runBillfoldOut(t, env, "demo", "--exit", "-o", "json", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0")
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out, stderr)
	var d demoJSON
	require.NoError(t, json.Unmarshal([]byte(out), &d), out)

	assert.Equal(t, 32, d.Deliveries.Sent)
	assert.Equal(t, 28, d.Deliveries.Accepted)
	assert.Equal(t, 4, d.Deliveries.Duplicates)
	assert.Equal(t, 3, d.Deliveries.OutOfOrder)

	type sub struct {
		provider, id string
		entitled     bool
	}
	got := map[string][]sub{}
	for state, subs := range d.Subscriptions {
		for _, s := range subs {
			got[state] = append(got[state], sub{s.Provider, s.ID, s.Entitled})
		}
	}
	assert.Equal(t, map[string][]sub{
		"trialing":  {{"stripe", "sub_demo_eve", true}},
		"active":    {{"braintree", "bt_sub_demo_gold", true}, {"stripe", "sub_demo_ana", true}},
		"canceling": {{"stripe", "sub_demo_chloe", true}},
		"paused":    {{"stripe", "sub_demo_finn", false}},
		"past_due":  {{"stripe", "sub_demo_ben", true}},
		"ended":     {{"stripe", "sub_demo_dan", false}},
	}, got)

	type wallet struct {
		balance, available, pending int64
		known, deleted              bool
	}
	wallets := map[string]wallet{}
	for _, w := range d.Wallets {
		wallets[w.UserID] = wallet{w.Balance, w.Available, w.Pending, w.UserKnown, w.Deleted}
	}
	assert.Equal(t, map[string]wallet{
		"user_demo_ana":  {140, 140, 0, true, false},
		"user_demo_ben":  {40, 40, 0, true, false},
		"user_demo_cleo": {540, 540, 0, true, false},
		"user_demo_dan":  {40, 0, 40, true, true},
	}, wallets)

	assert.Contains(t, d.Next, "billfold list subscriptions --server "+d.AdminURL)
	assert.Contains(t, d.Next, "billfold doctor --server "+d.AdminURL)
	assert.NoDirExists(t, d.DataDir, "the temporary data dir goes with the demo")
	assert.NoDirExists(t, realData)

	// The table: states in the glossary's order, wallets, what to try.
	out, stderr, code = runBillfoldOut(t, nil, "demo", "--exit", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0")
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out, stderr)
	assert.Contains(t, out, "Delivered 32 signed webhooks over HTTP: 28 accepted, 4 duplicates")
	var states []string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 2 && strings.HasPrefix(f[2], "sub_demo_") || len(f) > 2 && f[2] == "bt_sub_demo_gold" {
			states = append(states, f[0])
		}
	}
	assert.Equal(t, []string{"trialing", "active", "active", "canceling", "paused", "past_due", "ended"}, states, out)
	assert.Regexp(t, `user_demo_dan\s+40\s+0\s+40\s+signup_bonus \+40 \(held\)`, out)
	assert.Contains(t, out, "TRY NEXT")
	assert.Equal(t, normalizeDemo(readmeDemo(t)), normalizeDemo(out), "README.md's demo output is the demo's")
	// stderr may hold nats.go's own shutdown chatter (serve sets no NATS
	// error handler), but no error of the demo's.
	assert.NotContains(t, stderr, "billfold demo:")
	_, err := os.Stat(realData)
	assert.True(t, os.IsNotExist(err))
}

// readmeDemo is the demo output README.md shows.
func readmeDemo(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	m := regexp.MustCompile("(?s)\n```\n(billfold demo: .*?)```\n").FindSubmatch(b)
	require.NotNil(t, m, "README.md shows the demo's output")
	return string(m[1])
}

// normalizeDemo replaces what differs between two demo runs (ports, data
// dir, secrets and token made up for the run) and drops what depends on
// the run's flags (--server on non-default ports, the closing line
// without --exit).
func normalizeDemo(out string) string {
	for _, r := range []struct{ re, with string }{
		{` --server http://127\.0\.0\.1:[0-9]+`, ""},
		{`http://127\.0\.0\.1:[0-9]+`, "http://<addr>"},
		{`nats://127\.0\.0\.1:[0-9]+`, "nats://<addr>"},
		{`data in \S+`, "data in <dir>"},
		{`(token|--secret) [A-Za-z0-9_]+`, "$1 <secret>"},
		{`\n*Serving until Ctrl-C.*\n`, "\n"},
	} {
		out = regexp.MustCompile(r.re).ReplaceAllString(out, r.with)
	}
	return strings.TrimSpace(out)
}
