package projections_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/projections"
	"github.com/billfold/billfold/projections/httpapi"
)

// Fold reads run a few at once: past the cap the answer is BILLFOLD-BUSY at
// once, a slot comes back when a job ends, and a job cut by the timeout is
// BILLFOLD-BUSY saying so, not a bare context error.
func TestFoldJobsBounded(t *testing.T) {
	jobs := projections.NewFoldJobs(2, 200*time.Millisecond)
	release := make(chan struct{})
	started := make(chan struct{}, 2)
	done := make(chan error, 2)
	for range 2 {
		go func() {
			done <- jobs.Run(context.Background(), "verify", func(context.Context) error {
				started <- struct{}{}
				<-release
				return nil
			})
		}()
		<-started
	}
	err := jobs.Run(context.Background(), "as_of", func(context.Context) error { t.Fatal("ran past the cap"); return nil })
	assert.Equal(t, domain.CodeBusy, domain.ErrorCode(err), "%v", err)
	close(release)
	require.NoError(t, <-done)
	require.NoError(t, <-done)

	err = jobs.Run(context.Background(), "verify", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
	assert.Equal(t, domain.CodeBusy, domain.ErrorCode(err), "%v", err)
	assert.Contains(t, err.Error(), "did not finish within")

	cause := errors.New("journal gone")
	assert.ErrorIs(t, jobs.Run(context.Background(), "verify", func(context.Context) error { return cause }), cause)
}

// Every 5xx and 429 the admin API answers is logged with its code and its
// whole cause; the answer itself carries the short message only.
func TestWriteErrorLogsTheCause(t *testing.T) {
	var buf bytes.Buffer
	httpapi.LogErrorsTo(slog.New(slog.NewJSONHandler(&buf, nil)))
	t.Cleanup(func() { httpapi.LogErrorsTo(slog.Default()) })

	rec := httptest.NewRecorder()
	httpapi.WriteError(rec, domain.Wrap(domain.CodeJournalUnavailable, errors.New("maximum consumers limit reached"), "journal read"))
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
	assert.NotContains(t, rec.Body.String(), "maximum consumers")
	assert.Contains(t, buf.String(), "maximum consumers limit reached")
	assert.Contains(t, buf.String(), string(domain.CodeJournalUnavailable))

	buf.Reset()
	rec = httptest.NewRecorder()
	httpapi.WriteError(rec, domain.Errorf(domain.CodeBusy, "cap reached"))
	assert.Equal(t, http.StatusTooManyRequests, rec.Code)
	assert.Contains(t, buf.String(), string(domain.CodeBusy))

	buf.Reset()
	httpapi.WriteError(httptest.NewRecorder(), domain.Errorf(domain.CodeNotFound, "no such record"))
	assert.Empty(t, buf.String(), "a 4xx the caller caused is not an operator's concern")
}
