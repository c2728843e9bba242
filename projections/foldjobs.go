package projections

import (
	"context"
	"errors"
	"time"

	"github.com/billfold/billfold/domain"
)

// DefaultMaxFoldJobs is how many fold reads (as_of, verify) run at once by
// default: each reads the whole journal and folds it in memory.
const DefaultMaxFoldJobs = 2

// DefaultFoldJobTimeout bounds one fold read: below the admin listener's
// 60 s write timeout, so the answer is a clear error, never a connection
// cut half-way.
const DefaultFoldJobTimeout = 50 * time.Second

// FoldJobs bounds the fold reads requests make: a few at once, each for a
// limited time. A nil *FoldJobs runs every job at once without a limit.
type FoldJobs struct {
	slots   chan struct{}
	timeout time.Duration
}

// NewFoldJobs allows n jobs at once (DefaultMaxFoldJobs when n <= 0), each
// for timeout (DefaultFoldJobTimeout when zero).
func NewFoldJobs(n int, timeout time.Duration) *FoldJobs {
	if n <= 0 {
		n = DefaultMaxFoldJobs
	}
	if timeout <= 0 {
		timeout = DefaultFoldJobTimeout
	}
	return &FoldJobs{slots: make(chan struct{}, n), timeout: timeout}
}

// Run runs fn as the job what when a slot is free, else it returns
// BILLFOLD-BUSY at once; fn's context ends after the timeout, and a job cut
// by it is BILLFOLD-BUSY too, saying so.
func (j *FoldJobs) Run(ctx context.Context, what string, fn func(context.Context) error) error {
	if j == nil {
		return fn(ctx)
	}
	release, err := j.Acquire(what)
	if err != nil {
		return err
	}
	defer release()
	jctx, cancel := context.WithTimeout(ctx, j.timeout)
	defer cancel()
	err = fn(jctx)
	if err != nil && errors.Is(jctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
		return domain.Errorf(domain.CodeBusy, "%s did not finish within %s: the journal is too large to fold on request; start a verification job instead (POST /v1/verifications)", what, j.timeout)
	}
	return err
}

// Acquire takes a slot for the job what, or answers BILLFOLD-BUSY at once;
// release gives it back. A nil *FoldJobs has a slot for everyone.
func (j *FoldJobs) Acquire(what string) (release func(), err error) {
	if j == nil {
		return func() {}, nil
	}
	select {
	case j.slots <- struct{}{}:
		return func() { <-j.slots }, nil
	default:
		return nil, domain.Errorf(domain.CodeBusy, "%s: %d fold reads already run, the cap (--max-fold-jobs): retry later", what, cap(j.slots))
	}
}
