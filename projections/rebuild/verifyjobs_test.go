package rebuild_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest/samples"
	"github.com/billfold/billfold/projections"
	"github.com/billfold/billfold/projections/rebuild"
	"github.com/billfold/billfold/reducers"
	"github.com/billfold/billfold/test/natstest"
	"github.com/billfold/billfold/test/projtest"
)

// A verification job folds the whole journal in the background: it is
// answered at once, tells how far its fold is, and ends with the same
// report a verify on request gives. It takes a fold slot: with every slot
// taken, starting one is BILLFOLD-BUSY, never an unbounded goroutine.
func TestVerificationJobRunsInTheBackground(t *testing.T) {
	nc, js := natstest.Connect(t, natstest.Server(t))
	f := newReplayFixture(t, nc, js, reducers.DefaultOptions(), time.Minute)
	projtest.AppendSamples(t, f.journal, 5)
	projtest.WaitCaughtUp(t, f.engine)
	slots := projections.NewFoldJobs(1, time.Minute)
	jobs := rebuild.NewVerifyJobs(f.engine, slots)
	t.Cleanup(jobs.Close)

	_, err := jobs.Start([]string{"nonesuch"})
	assert.Equal(t, domain.CodeBadRequest, domain.ErrorCode(err), "%v", err)

	started, err := jobs.Start(nil)
	require.NoError(t, err)
	assert.Equal(t, rebuild.VerifyRunning, started.Status)
	assert.ElementsMatch(t, f.engine.Projections(), started.Projections)

	var job rebuild.VerifyJob
	require.Eventually(t, func() bool {
		job, err = jobs.Get(started.ID)
		return err == nil && job.Status != rebuild.VerifyRunning
	}, 60*time.Second, 20*time.Millisecond)
	require.NoError(t, err)
	require.Equal(t, rebuild.VerifyDone, job.Status, "%s %s", job.Code, job.Message)
	require.NotNil(t, job.Report)
	assert.True(t, job.Report.Identical, "%+v", job.Report.Differences)
	head := uint64(5*len(samples.StripeTypes()) + 1)
	assert.Equal(t, head, job.JournalHead, "the fold read the whole journal")
	assert.Equal(t, head, job.Folded, "progress reached the head")
	require.NotNil(t, job.Finished)

	// The one fold slot taken by a request's fold: no job starts.
	hold, held := make(chan struct{}), make(chan struct{})
	go func() {
		_ = slots.Run(context.Background(), "as_of", func(context.Context) error { close(held); <-hold; return nil })
	}()
	<-held
	_, err = jobs.Start(nil)
	assert.Equal(t, domain.CodeBusy, domain.ErrorCode(err), "%v", err)
	close(hold)

	_, err = jobs.Get("no-such-job")
	assert.Equal(t, domain.CodeNotFound, domain.ErrorCode(err))
}
