package test

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/test/natstest"
)

// gamedayDrill is one drill of `billfold gameday -o json`.
type gamedayDrill struct {
	Name    string             `json:"name"`
	Passed  bool               `json:"passed"`
	Seconds float64            `json:"seconds"`
	Figures map[string]float64 `json:"-"`
	Raw     map[string]any     `json:"figures"`
	Checks  []struct {
		Name   string `json:"name"`
		Passed bool   `json:"passed"`
		Detail string `json:"detail"`
	} `json:"checks"`
	Error string `json:"error"`
}

// The gameday (issue 8): `billfold gameday -o json`, the real binary,
// runs every drill against engines it starts itself on loopback, and
// every drill passes and reports its figures. The figures are checked for
// what must hold on any machine; timings only against generous sanity
// bounds. The run keeps its stores (--keep), and the test then opens them
// with a NATS server of its own and measures what the drills claim
// itself: what the journal, the delivery log and the wallets hold.
func TestGamedayDrillsPass(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	keep := filepath.Join(t.TempDir(), "gameday")
	cmd := exec.CommandContext(ctx, binary, "gameday", "-o", "json", "--keep", keep)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	require.NoError(t, err, "billfold gameday failed:\n%s\n%s", stdout.String(), stderr.String())

	var rep struct {
		Passed  bool           `json:"passed"`
		Seconds float64        `json:"seconds"`
		Drills  []gamedayDrill `json:"drills"`
	}
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &rep), stdout.String())
	assert.True(t, rep.Passed)
	drills := map[string]gamedayDrill{}
	var names []string
	for _, d := range rep.Drills {
		d.Figures = map[string]float64{}
		for k, v := range d.Raw {
			if f, ok := v.(float64); ok {
				d.Figures[k] = f
			}
		}
		drills[d.Name] = d
		names = append(names, d.Name)
		assert.True(t, d.Passed, "%s: %+v %s", d.Name, d.Checks, d.Error)
		assert.Empty(t, d.Error, d.Name)
		assert.NotEmpty(t, d.Checks, d.Name)
		for _, c := range d.Checks {
			assert.True(t, c.Passed, "%s: %s: %s", d.Name, c.Name, c.Detail)
		}
	}
	require.Equal(t, []string{"signature-failure", "clock-skew", "journal-outage", "downstream-timeout", "dead-letter-replay"}, names)

	sig := drills["signature-failure"].Figures
	assert.Greater(t, sig["forged_deliveries"], 0.0)
	for _, k := range []string{"answered_400", `billfold_signature_failures_total{code="BILLFOLD-SIG-MISMATCH"}`, "delivery_log_rejected_sig_mismatch", "log_lines_sig_mismatch"} {
		assert.Equal(t, sig["forged_deliveries"], sig[k], k)
	}
	assert.Zero(t, sig["journaled_forged"])

	skew := drills["clock-skew"].Figures
	assert.Equal(t, 300.0, skew["tolerance_s"])
	assert.Equal(t, 2.0, skew["rejected_too_old"])
	assert.Equal(t, 2.0, skew["rejected_too_new"])
	assert.Equal(t, 4.0, skew["accepted_within_tolerance"])
	assert.Equal(t, 2.0, skew[`billfold_signature_failures_total{code="BILLFOLD-SIG-TOO-OLD"}`])
	assert.Equal(t, 2.0, skew[`billfold_signature_failures_total{code="BILLFOLD-SIG-TOO-NEW"}`])
	assert.Less(t, skew["doctor_clock_skew_s"], 5.0)

	outage := drills["journal-outage"].Figures
	assert.Greater(t, outage["deliveries_sent"], 50.0)
	assert.Equal(t, outage["deliveries_sent"], outage["acknowledged"], "every delivery answered 200 in the end")
	assert.Greater(t, outage["answered_503"], 0.0)
	assert.Zero(t, outage["answered_other"], "every refusal is a 503")
	assert.Zero(t, outage["no_answer"])
	assert.Zero(t, outage["lost"])
	assert.Zero(t, outage["journaled_twice"])
	assert.Greater(t, outage["unavailability_window_s"], 0.0)
	assert.Less(t, outage["unavailability_window_s"], 30.0, "sanity bound")
	assert.Less(t, outage["recovered_after_nats_back_s"], 20.0, "sanity bound")

	slow := drills["downstream-timeout"].Figures
	assert.Equal(t, 150.0, slow["deliveries_per_run"])
	for _, k := range []string{"ack_p99_baseline_ms", "ack_p99_slow_consumers_ms"} {
		assert.Greater(t, slow[k], 0.0, k)
		assert.Less(t, slow[k], 1000.0, "%s: sanity bound", k)
	}
	assert.Less(t, slow["slow_subscriber_handled"], 75.0, "the subscriber was slow")

	dl := drills["dead-letter-replay"]
	assert.Equal(t, 15.0, dl.Figures["dead_letters"])
	assert.Equal(t, 15.0, dl.Figures["requeued"])
	assert.Equal(t, 15.0, dl.Figures["applied"])
	assert.Zero(t, dl.Figures["failed_again"])
	assert.Greater(t, dl.Figures["records_differing_before_requeue"], 0.0)
	assert.Equal(t, "5/5", dl.Raw["wallets_credited_once"])

	// Measured by the test on the stores the drills left.
	checkSignatureDrillStore(t, filepath.Join(keep, "signature-failure", "engine", "jetstream"), int(sig["forged_deliveries"]))
	checkOutageDrillStore(t, filepath.Join(keep, "journal-outage", "nats", "jetstream"), int(outage["deliveries_sent"]))

	t.Logf("gameday: %d drills passed in %.1fs", len(rep.Drills), rep.Seconds)
	for _, d := range rep.Drills {
		b, _ := json.Marshal(d.Raw)
		t.Logf("  %s (%.1fs): %s", d.Name, d.Seconds, b)
	}
}

// checkSignatureDrillStore opens the signature drill's store: the journal
// holds the genuine delivery and nothing else, and the delivery log
// records every forged delivery as rejected, BILLFOLD-SIG-MISMATCH.
func checkSignatureDrillStore(t *testing.T, storeDir string, forged int) {
	t.Helper()
	_, js := natstest.Connect(t, natstest.Start(t, natstest.Options(storeDir)))
	assert.Equal(t, uint64(1), journalCount(t, js), "the journal holds only the genuine delivery")
	assert.Equal(t, 1, journalSubjectCounts(t, js, "stripe")[domain.JournalSubject("stripe", "evt_gameday_genuine")])
	mismatches := 0
	for _, d := range deliveryLogEntries(t, js) {
		if d.Outcome == domain.OutcomeRejected && d.ReasonCode == domain.CodeSigMismatch {
			mismatches++
		}
	}
	assert.Equal(t, forged, mismatches, "the delivery log has each forged delivery as rejected, BILLFOLD-SIG-MISMATCH")
	assert.Positive(t, forged)
}

// checkOutageDrillStore opens the outage drill's NATS store: each event
// the drill's provider sent is journaled exactly once, and every wallet
// holds 10 credits per top-up the journal has for its user, counted from
// the journal's own bodies.
func checkOutageDrillStore(t *testing.T, storeDir string, sent int) {
	t.Helper()
	ctx := ctxT(t)
	_, js := natstest.Connect(t, natstest.Start(t, natstest.Options(storeDir)))
	counts := journalSubjectCounts(t, js, "stripe")
	assert.Len(t, counts, sent, "every event the drill sent is journaled")
	for subj, n := range counts {
		assert.Equal(t, 1, n, "%s journaled once", subj)
	}
	stream, err := js.Stream(ctx, domain.JournalStream)
	require.NoError(t, err)
	info, err := stream.Info(ctx)
	require.NoError(t, err)
	credits := map[string]int64{}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := stream.GetMsg(ctx, seq)
		require.NoError(t, err)
		var ev struct {
			Type string `json:"type"`
			Data struct {
				Object struct {
					Metadata struct {
						UserID  string `json:"user_id"`
						Credits string `json:"credits"`
					} `json:"metadata"`
				} `json:"object"`
			} `json:"data"`
		}
		require.NoError(t, json.Unmarshal(m.Data, &ev))
		if ev.Type == "checkout.session.completed" {
			n, err := strconv.ParseInt(ev.Data.Object.Metadata.Credits, 10, 64)
			require.NoError(t, err)
			credits[ev.Data.Object.Metadata.UserID] += n
		}
	}
	require.NotEmpty(t, credits, "the drill's load had top-ups")
	r := &recordReader{t: t, kv: map[string]jetstream.KeyValue{}}
	r.kv[domain.ProjectionWallets], err = js.KeyValue(ctx, domain.ProjectionBucket(domain.ProjectionWallets, 1))
	require.NoError(t, err)
	for user, want := range credits {
		assert.Equal(t, want, r.wallet(user).Balance, "%s: each journaled top-up credited once", user)
	}
}
