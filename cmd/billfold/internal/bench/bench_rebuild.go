package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/billfold/billfold/cmd/billfold/internal/cli"
	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/projections"
	"github.com/billfold/billfold/projections/rebuild"
)

// benchAdminToken is the admin token of the engine bench starts: the
// rebuild phase asks for a rebuild like an operator would.
const benchAdminToken = "billfold-bench-admin-token"

// benchRebuild rebuilds every projection from the journal the earlier
// phases filled, through the admin API, and reports events folded per
// second and the process's peak resident memory while it ran, beside an
// ordered consumer reading the same journal and doing nothing.
func benchRebuild(ctx context.Context, b *benchRun) ([]benchRow, error) {
	start := time.Now()
	read := 0
	if err := projections.EachJournalEvent(ctx, b.js, func(*domain.Envelope) error { read++; return nil }); err != nil {
		return nil, err
	}
	ceiling := float64(read) / time.Since(start).Seconds()
	if read == 0 {
		return nil, fmt.Errorf("rebuild: the journal is empty; run it after ingest")
	}

	sampler := startProcessSampler(b.o.peakProfile)
	var rb rebuild.Rebuild
	err := b.adminDo(ctx, http.MethodPost, "/v1/rebuilds", rebuild.RebuildRequest{Force: true}, &rb)
	bar := cli.NewBar(int(max(rb.JournalHead, 1)), "rebuild", b.stderr)
	for err == nil && !rb.Finished() {
		time.Sleep(100 * time.Millisecond)
		err = b.adminDo(ctx, http.MethodGet, "/v1/rebuilds/"+rb.ID, nil, &rb)
		_ = bar.Set(int(min(rb.Folded, rb.JournalHead)))
	}
	_ = bar.Finish()
	proc := sampler.finish()
	if err != nil {
		return nil, err
	}
	if rb.Status != rebuild.RebuildDone {
		return nil, fmt.Errorf("rebuild %s %s: %s %s", rb.ID, rb.Status, rb.Code, rb.Error)
	}
	took := rb.FinishedAt.Sub(rb.CreatedAt).Seconds()
	rate := float64(rb.Folded) / took
	const limitOf = "ordered consumer reading the same journal, doing nothing"
	return []benchRow{
		benchRow{Figure: "events folded per second (fold, write, catch-up, switch)", Unit: "/s", Value: rate,
			Note: fmt.Sprintf("%d events, %d records, %.1f s", rb.Folded, rb.Records, took)}.withLimit(ceiling, limitOf).
			withTarget(">= 50% of the ordered read and >= 50,000/s", rate >= ceiling/2 && rate >= 50_000),
		{Figure: "peak resident memory while rebuilding", Unit: "MiB", Value: float64(proc.PeakRSS) / (1 << 20),
			Note: "the whole bench process: engine, NATS server and query indexes included"},
	}, nil
}

// adminDo calls the bench engine's admin API with its admin token and
// decodes the answer into out.
func (b *benchRun) adminDo(_ context.Context, method, path string, body, out any) error {
	token := benchAdminToken
	if method == http.MethodGet {
		token = b.token // reads take the read token, if the environment has one
	}
	data, err := cli.AdminRequest(b.admin, token, method, path, nil, body)
	if err != nil {
		return err
	}
	return json.Unmarshal(data, out)
}
