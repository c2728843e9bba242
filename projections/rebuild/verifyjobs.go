package rebuild

import (
	"context"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/projections"
)

// A verification job is a verify run in the background: a journal too
// large to fold within one request (the fold jobs' timeout, under the
// admin listener's write timeout) is verified this way, and its progress
// is read while it runs, like a rebuild's.
const (
	// MaxVerifyJobs bounds the jobs kept (running and finished): past it
	// the oldest finished one is forgotten, and when all are running a
	// new one is refused with BILLFOLD-BUSY.
	MaxVerifyJobs = 16
	// VerifyJobTimeout bounds one job's run.
	VerifyJobTimeout = 30 * time.Minute
)

// Verification job states.
const (
	VerifyRunning = "running"
	VerifyDone    = "done"
	VerifyFailed  = "failed"
)

// VerifyJob is what GET /v1/verifications/{id} answers.
type VerifyJob struct {
	ID          string     `json:"id"`
	Status      string     `json:"status"`
	Projections []string   `json:"projections"`
	Started     time.Time  `json:"started"`
	Finished    *time.Time `json:"finished,omitempty"`
	// JournalHead is the sequence the fold reads up to (0 until the
	// projectors caught up) and Folded the events folded so far.
	JournalHead uint64 `json:"journal_head"`
	Folded      uint64 `json:"folded"`
	// Report is the comparison once done; Code and Message say why a
	// failed job failed.
	Report  *VerifyReport `json:"report,omitempty"`
	Code    domain.Code   `json:"code,omitempty"`
	Message string        `json:"message,omitempty"`
}

// VerifyJobs runs verification jobs, each in a slot of the fold jobs, and
// keeps the last MaxVerifyJobs of them in memory (a restart forgets them:
// start the job again).
type VerifyJobs struct {
	engine Engine
	slots  *projections.FoldJobs
	ctx    context.Context
	stop   context.CancelFunc
	wg     sync.WaitGroup

	mu   sync.Mutex
	jobs []*VerifyJob // oldest first
}

// NewVerifyJobs runs jobs of engine in the slots of slots (unbounded when
// nil). Close ends the running ones.
func NewVerifyJobs(engine Engine, slots *projections.FoldJobs) *VerifyJobs {
	ctx, stop := context.WithCancel(context.Background())
	return &VerifyJobs{engine: engine, slots: slots, ctx: ctx, stop: stop}
}

// Close cancels the running jobs and waits for them to end.
func (v *VerifyJobs) Close() {
	v.stop()
	v.wg.Wait()
}

// Start starts a verification of the projections names (all when empty), or
// answers BILLFOLD-BUSY when every fold slot or every kept job is taken.
func (v *VerifyJobs) Start(names []string) (VerifyJob, error) {
	for _, n := range names {
		if !v.engine.HasProjection(n) {
			return VerifyJob{}, domain.Errorf(domain.CodeBadRequest, "unknown projection %q", n)
		}
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.makeRoom() {
		return VerifyJob{}, domain.Errorf(domain.CodeBusy, "verify: %d verification jobs already run: retry later", MaxVerifyJobs)
	}
	release, err := v.slots.Acquire("verify")
	if err != nil {
		return VerifyJob{}, err
	}
	if len(names) == 0 {
		names = v.engine.Projections()
	}
	job := &VerifyJob{ID: uuid.NewString(), Status: VerifyRunning, Projections: names, Started: time.Now().UTC()}
	v.jobs = append(v.jobs, job)
	v.wg.Add(1)
	go func() {
		defer v.wg.Done()
		defer release()
		v.run(job)
	}()
	return *job, nil
}

// makeRoom forgets the oldest finished job when the list is full; false
// when every kept job is still running. Called with mu held.
func (v *VerifyJobs) makeRoom() bool {
	if len(v.jobs) < MaxVerifyJobs {
		return true
	}
	for i, j := range v.jobs {
		if j.Status != VerifyRunning {
			v.jobs = append(v.jobs[:i], v.jobs[i+1:]...)
			return true
		}
	}
	return false
}

func (v *VerifyJobs) run(job *VerifyJob) {
	ctx, cancel := context.WithTimeout(v.ctx, VerifyJobTimeout)
	defer cancel()
	rep, err := verify(ctx, v.engine, job.Projections, func(folded, head uint64) {
		v.mu.Lock()
		job.Folded, job.JournalHead = folded, head
		v.mu.Unlock()
	})
	v.mu.Lock()
	defer v.mu.Unlock()
	now := time.Now().UTC()
	job.Finished = &now
	if err != nil {
		job.Status, job.Code, job.Message = VerifyFailed, domain.ErrorCode(err), err.Error()
		return
	}
	job.Status, job.Report = VerifyDone, &rep
}

// Get returns a copy of the job id.
func (v *VerifyJobs) Get(id string) (VerifyJob, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, j := range v.jobs {
		if j.ID == id {
			return *j, nil
		}
	}
	return VerifyJob{}, domain.Errorf(domain.CodeNotFound, "no verification job %s (jobs are kept in memory: a restart forgets them)", id)
}
