package rebuild

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/projections"
	"github.com/billfold/billfold/projections/deadletter"
	"github.com/billfold/billfold/projections/jsio"
)

// A rebuild folds the whole journal into a new generation of projections
// while queries read the current one, catches up with live deliveries, and
// switches atomically (DESIGN.md invariant 6). A replay re-applies the
// journal events a filter selects to the current generation, through the
// live reducers: what first delivery would have done, once.
const (
	KindRebuild = "rebuild"
	KindReplay  = "replay"
)

// Rebuild statuses.
const (
	RebuildRunning     = "running"
	RebuildSwitching   = "switching"
	RebuildDone        = "done"
	RebuildFailed      = "failed"
	RebuildCancelled   = "cancelled"
	RebuildInterrupted = "interrupted"
)

// DefaultRebuildGrace is how long the replaced generation is kept after a
// switch.
const DefaultRebuildGrace = 10 * time.Minute

// heartbeatEvery and staleAfter: a running rebuild whose owner has not
// written its progress for staleAfter is considered interrupted.
const (
	heartbeatEvery = time.Second
	staleAfter     = 15 * time.Second
)

// ReplayFilter selects journal events for a bounded replay. Empty fields
// match everything; an empty filter means a full rebuild.
type ReplayFilter struct {
	Types    []string `json:"types,omitempty"`
	Provider string   `json:"provider,omitempty"`
	// Since and Until bound the provider's clock (event.created).
	Since   time.Time `json:"since,omitzero"`
	Until   time.Time `json:"until,omitzero"`
	EventID string    `json:"event_id,omitempty"`
}

// Empty reports whether f selects every event.
func (f ReplayFilter) Empty() bool {
	return len(f.Types) == 0 && f.Provider == "" && f.Since.IsZero() && f.Until.IsZero() && f.EventID == ""
}

func (f ReplayFilter) match(env *domain.Envelope) bool {
	return (len(f.Types) == 0 || slices.Contains(f.Types, env.EventType)) &&
		(f.Provider == "" || string(env.Provider) == f.Provider || env.Namespace() == f.Provider || env.EventNamespace() == f.Provider) &&
		(f.Since.IsZero() || !env.Created.Before(f.Since)) &&
		(f.Until.IsZero() || env.Created.Before(f.Until)) &&
		(f.EventID == "" || env.EventID == f.EventID)
}

// RebuildRequest asks for a rebuild or, with a filter, a replay.
type RebuildRequest struct {
	// Projections to rebuild or replay into; empty means all.
	Projections []string     `json:"projections,omitempty"`
	Filter      ReplayFilter `json:"filter,omitzero"`
	// Republish makes the new generation's change relay publish every
	// record again, not only the changes downstream has not received.
	Republish bool `json:"republish,omitempty"`
	// DryRun reports what would be reprocessed and changes nothing.
	DryRun bool `json:"dry_run,omitempty"`
	// Force confirms a rebuild or replay of more than projections.ConfirmAbove events.
	Force bool `json:"force,omitempty"`
}

// Rebuild is a rebuild or replay and its progress, as GET
// /v1/rebuilds/{id} reports it.
type Rebuild struct {
	ID          string        `json:"id"`
	Kind        string        `json:"kind"`
	Projections []string      `json:"projections"`
	Filter      *ReplayFilter `json:"filter,omitempty"`
	Republish   bool          `json:"republish,omitempty"`
	Status      string        `json:"status"`
	Code        domain.Code   `json:"code,omitempty"`
	Error       string        `json:"error,omitempty"`
	RequestedBy string        `json:"requested_by"`
	Owner       string        `json:"owner"`
	CreatedAt   time.Time     `json:"created_at"`
	UpdatedAt   time.Time     `json:"updated_at"`
	FinishedAt  time.Time     `json:"finished_at,omitzero"`
	// CancelRequested asks the owner to stop; it does at its next
	// heartbeat.
	CancelRequested bool `json:"cancel_requested,omitempty"`

	// JournalHead is the last journal sequence the fold reads; Folded the
	// events read so far. After the fold a rebuild catches up with live
	// deliveries, whose count Caught reports.
	JournalHead   uint64  `json:"journal_head"`
	Folded        uint64  `json:"folded"`
	Caught        uint64  `json:"caught_up,omitempty"`
	RatePerSecond float64 `json:"rate_per_second"`
	ETASeconds    float64 `json:"eta_seconds"`
	// Records written into the new generations.
	Records int `json:"records,omitempty"`
	// Spilled counts the records the fold wrote to the new generations
	// before the end, its memory bound (RebuildOptions.Memory) being full.
	Spilled int `json:"spilled,omitempty"`
	// Generations being built (rebuild), by projection.
	Generations map[string]int `json:"generations,omitempty"`
	// Replay counts: events the filter matched, and per projection
	// application: applied (including no-ops), failed.
	Matched uint64 `json:"matched,omitempty"`
	Applied uint64 `json:"applied,omitempty"`
	Failed  uint64 `json:"failed,omitempty"`
	// DeadLettersResolved counts open dead letters the rebuild or replay
	// applied.
	DeadLettersResolved int `json:"dead_letters_resolved,omitempty"`
}

// Finished reports whether the rebuild has ended, one way or another.
func (r *Rebuild) Finished() bool {
	return r.Status != RebuildRunning && r.Status != RebuildSwitching
}

// DryRun is what a rebuild or replay would reprocess.
type DryRun struct {
	Kind        string   `json:"kind"`
	Projections []string `json:"projections"`
	// Events is how many journal events it would fold or replay.
	Events uint64 `json:"events"`
	// NeedsForce says it is over projections.ConfirmAbove.
	NeedsForce bool `json:"needs_force"`
	// Sample lists the first matching events of a replay.
	Sample []projections.JournalEntry `json:"sample,omitempty"`
}

// maxDryRunSample bounds DryRun.Sample.
const maxDryRunSample = 100

// RebuildOptions configure Rebuilds.
type RebuildOptions struct {
	// Grace is how long the replaced generation is kept after a switch
	// (DefaultRebuildGrace when zero).
	Grace time.Duration
	// Rate caps the events per second a rebuild's fold reads, so a
	// rebuild on a busy machine leaves room for live traffic; 0: no cap.
	Rate float64
	// Memory bounds the bytes of records a rebuild's fold holds, all
	// projections together (DefaultRebuildMemory when zero): past it, a
	// projection writes what it folded to its new generation and lets it
	// go (docs/replay.md).
	Memory int
	Log    *slog.Logger
}

// Rebuilds runs rebuilds and replays of an engine's projections, keeps
// their records in the rebuilds bucket, and tidies after them: it marks a
// rebuild whose process died interrupted (removing what it had half
// built, so it can simply be started again) and removes replaced
// generations once their grace period is over.
type Rebuilds struct {
	engine Engine
	js     jetstream.JetStream
	kv     jetstream.KeyValue
	opts   RebuildOptions
	owner  string

	mu    sync.Mutex
	local map[string]context.CancelFunc
	wg    sync.WaitGroup
}

// NewRebuilds creates the rebuilds bucket.
func NewRebuilds(ctx context.Context, engine Engine, o RebuildOptions) (*Rebuilds, error) {
	kv, err := engine.JetStream().CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      domain.RebuildsBucket,
		Description: "billfold rebuilds and replays, with their progress",
		Storage:     jetstream.FileStorage,
		Replicas:    max(engine.Options().Replicas, 1),
	})
	if err != nil {
		return nil, domain.Wrap(domain.CodeStoreUnavailable, err, "rebuilds bucket")
	}
	if o.Grace <= 0 {
		o.Grace = DefaultRebuildGrace
	}
	if o.Log == nil {
		o.Log = engine.Options().Log
	}
	host, _ := os.Hostname()
	return &Rebuilds{engine: engine, js: engine.JetStream(), kv: kv, opts: o, owner: fmt.Sprintf("%s/%d/%s", host, os.Getpid(), randomID(4)),
		local: map[string]context.CancelFunc{}}, nil
}

func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Start begins a rebuild (no filter) or a replay (a filter), running in the
// background of this process, and returns its record; with DryRun it
// returns what would be reprocessed instead. by names who asked.
func (rs *Rebuilds) Start(ctx context.Context, req RebuildRequest, by string) (*Rebuild, *DryRun, error) {
	projs, err := rs.projections(req.Projections)
	if err != nil {
		return nil, nil, err
	}
	kind := KindRebuild
	if !req.Filter.Empty() {
		kind = KindReplay
	}
	if kind == KindReplay && req.Republish {
		return nil, nil, domain.Errorf(domain.CodeBadRequest, "republish applies to a full rebuild, not a filtered replay")
	}
	if !req.Filter.Since.IsZero() && !req.Filter.Until.IsZero() && !req.Filter.Until.After(req.Filter.Since) {
		return nil, nil, domain.Errorf(domain.CodeBadRequest, "until must be after since")
	}
	dry, err := rs.dryRun(ctx, kind, projs, req.Filter, req.DryRun)
	if err != nil {
		return nil, nil, err
	}
	if req.DryRun {
		return nil, dry, nil
	}
	if dry.NeedsForce && !req.Force {
		return nil, nil, domain.Errorf(domain.CodeConfirmRequired,
			"this %s reprocesses %d events (over %d): confirm with --yes (force over HTTP)", kind, dry.Events, projections.ConfirmAbove)
	}
	if busy, err := rs.active(ctx); err != nil {
		return nil, nil, err
	} else if busy != nil {
		return nil, nil, domain.Errorf(domain.CodeConflict, "%s %s is %s; wait for it or cancel it", busy.Kind, busy.ID, busy.Status)
	}
	head, err := projections.JournalHead(ctx, rs.js)
	if err != nil {
		return nil, nil, err
	}
	now := time.Now().UTC()
	rb := &Rebuild{
		ID: kind[:2] + "_" + now.Format("20060102T150405") + "_" + randomID(3), Kind: kind, Projections: projs,
		Republish: req.Republish, Status: RebuildRunning, RequestedBy: by, Owner: rs.owner,
		CreatedAt: now, UpdatedAt: now, JournalHead: head,
	}
	if kind == KindReplay {
		rb.Filter = &req.Filter
	}
	if _, err := rs.save(ctx, rb, 0); err != nil {
		return nil, nil, err
	}
	rs.opts.Log.Info(kind+" started", "id", rb.ID, "projections", projs, "requested_by", by, "events", dry.Events)
	runCtx, cancel := context.WithCancel(context.Background())
	rs.mu.Lock()
	rs.local[rb.ID] = cancel
	rs.mu.Unlock()
	rs.wg.Go(func() {
		defer cancel()
		rs.run(runCtx, rb)
		rs.mu.Lock()
		delete(rs.local, rb.ID)
		rs.mu.Unlock()
	})
	return rb, nil, nil
}

// projections checks names, all of the engine's when empty.
func (rs *Rebuilds) projections(names []string) ([]string, error) {
	if len(names) == 0 || slices.Contains(names, "all") {
		return rs.engine.Projections(), nil
	}
	out := []string{}
	for _, n := range names {
		if rs.engine.Projection(n) == nil {
			return nil, domain.Errorf(domain.CodeBadRequest, "unknown projection %q (want one of %v or all)", n, rs.engine.Projections())
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

// dryRun counts the events a rebuild (the whole journal) or a replay (the
// filter's matches) reprocesses; sample lists a replay's first matches.
func (rs *Rebuilds) dryRun(ctx context.Context, kind string, projs []string, f ReplayFilter, sample bool) (*DryRun, error) {
	d := &DryRun{Kind: kind, Projections: projs}
	if kind == KindRebuild {
		last, err := projections.JournalHead(ctx, rs.js)
		if err != nil {
			return nil, err
		}
		d.Events = last
	} else {
		err := projections.EachJournalEventUpTo(ctx, rs.js, 0, func(env *domain.Envelope) error {
			if !f.match(env) || !rs.handledByAny(projs, env) {
				return nil
			}
			d.Events++
			if sample && len(d.Sample) < maxDryRunSample {
				d.Sample = append(d.Sample, projections.NewJournalEntry(env))
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	d.NeedsForce = d.Events > projections.ConfirmAbove
	return d, nil
}

func (rs *Rebuilds) handledByAny(projs []string, env *domain.Envelope) bool {
	return slices.ContainsFunc(projs, func(n string) bool { return rs.engine.Projection(n).Handles(env.Provider, env.EventType) })
}

// active returns the rebuild or replay that is running, if any.
func (rs *Rebuilds) active(ctx context.Context) (*Rebuild, error) {
	all, err := rs.List(ctx)
	if err != nil {
		return nil, err
	}
	for _, rb := range all {
		if !rb.Finished() {
			return &rb, nil
		}
	}
	return nil, nil
}

// Get returns a rebuild by id.
func (rs *Rebuilds) Get(ctx context.Context, id string) (*Rebuild, error) {
	rb, _, err := rs.load(ctx, id)
	return rb, err
}

func (rs *Rebuilds) load(ctx context.Context, id string) (*Rebuild, uint64, error) {
	e, err := rs.kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey) {
		return nil, 0, domain.Errorf(domain.CodeNotFound, "no rebuild or replay %q", id)
	}
	if err != nil {
		return nil, 0, domain.Wrap(domain.CodeStoreUnavailable, err, "rebuilds")
	}
	var rb Rebuild
	if err := json.Unmarshal(e.Value(), &rb); err != nil {
		return nil, 0, domain.Wrap(domain.CodeStoreUnavailable, err, "rebuild "+id)
	}
	return &rb, e.Revision(), nil
}

// List returns every rebuild and replay, newest first.
func (rs *Rebuilds) List(ctx context.Context) ([]Rebuild, error) {
	out := []Rebuild{}
	keys, err := rs.kv.ListKeys(ctx)
	if err != nil {
		return nil, domain.Wrap(domain.CodeStoreUnavailable, err, "rebuilds")
	}
	for id := range keys.Keys() {
		rb, _, err := rs.load(ctx, id)
		if domain.ErrorCode(err) == domain.CodeNotFound {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, *rb)
	}
	slices.SortFunc(out, func(a, b Rebuild) int { return b.CreatedAt.Compare(a.CreatedAt) })
	return out, nil
}

// save writes rb if its record is still at revision (0: new).
func (rs *Rebuilds) save(ctx context.Context, rb *Rebuild, revision uint64) (uint64, error) {
	rb.UpdatedAt = time.Now().UTC()
	b, err := json.Marshal(rb)
	if err != nil {
		return 0, err
	}
	return jsio.PutIfRevision(ctx, rs.kv, rb.ID, b, revision, "rebuild "+rb.ID)
}

// modify applies change to the stored record of id, compare-and-set.
func (rs *Rebuilds) modify(ctx context.Context, id string, change func(*Rebuild) bool) (*Rebuild, error) {
	for {
		rb, rev, err := rs.load(ctx, id)
		if err != nil {
			return nil, err
		}
		if !change(rb) {
			return rb, nil
		}
		_, err = rs.save(ctx, rb, rev)
		if domain.ErrorCode(err) == domain.CodeConflict {
			continue
		}
		return rb, err
	}
}

// Cancel asks a running rebuild or replay to stop; its owner stops within
// a heartbeat and removes what it had built. The current generation keeps
// serving.
func (rs *Rebuilds) Cancel(ctx context.Context, id, by string) (*Rebuild, error) {
	rb, err := rs.modify(ctx, id, func(rb *Rebuild) bool {
		if rb.Finished() || rb.CancelRequested {
			return false
		}
		rb.CancelRequested = true
		return true
	})
	if err != nil {
		return nil, err
	}
	if rb.Finished() {
		return rb, domain.Errorf(domain.CodeConflict, "%s %s already %s", rb.Kind, rb.ID, rb.Status)
	}
	rs.opts.Log.Info(rb.Kind+" cancel requested", "id", id, "by", by)
	rs.mu.Lock()
	if cancel := rs.local[id]; cancel != nil {
		cancel()
	}
	rs.mu.Unlock()
	return rb, nil
}

// Wait waits for the rebuilds running in this process to end, for tests
// and shutdown.
func (rs *Rebuilds) Wait() { rs.wg.Wait() }

// progress is what a running rebuild's heartbeat writes.
type progress struct {
	folded, caught, matched, applied, failed atomic.Uint64
}

// run runs rb to its end and records how it ended.
func (rs *Rebuilds) run(ctx context.Context, rb *Rebuild) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var p progress
	started := time.Now()
	hbDone := make(chan struct{})
	go func() {
		defer close(hbDone)
		t := time.NewTicker(heartbeatEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			cur, err := rs.modify(ctx, rb.ID, func(stored *Rebuild) bool {
				stored.Folded, stored.Caught = p.folded.Load(), p.caught.Load()
				stored.Matched, stored.Applied, stored.Failed = p.matched.Load(), p.applied.Load(), p.failed.Load()
				stored.RatePerSecond, stored.ETASeconds = rateAndETA(stored.Folded, stored.JournalHead, time.Since(started))
				return true
			})
			if err == nil && cur.CancelRequested {
				cancel()
			}
		}
	}()
	var err error
	if rb.Kind == KindReplay {
		err = rs.replay(ctx, rb, &p)
	} else {
		err = rs.rebuild(ctx, rb, &p)
	}
	cancel()
	<-hbDone
	status, code := RebuildDone, domain.Code("")
	switch {
	case err != nil && ctx.Err() != nil:
		status, code = RebuildCancelled, domain.CodeRebuildCancelled
	case err != nil:
		status, code = RebuildFailed, domain.ErrorCode(err)
	}
	// The run's context has ended; the final record must still be written.
	final, werr := rs.modify(context.Background(), rb.ID, func(stored *Rebuild) bool {
		stored.Status, stored.Code, stored.FinishedAt = status, code, time.Now().UTC()
		if err != nil {
			stored.Error = domain.ErrorMessage(err)
		}
		stored.Folded, stored.Caught = p.folded.Load(), p.caught.Load()
		stored.Matched, stored.Applied, stored.Failed = p.matched.Load(), p.applied.Load(), p.failed.Load()
		stored.RatePerSecond, stored.ETASeconds = rateAndETA(stored.Folded, stored.JournalHead, time.Since(started))
		stored.Records, stored.Spilled, stored.Generations, stored.DeadLettersResolved = rb.Records, rb.Spilled, rb.Generations, rb.DeadLettersResolved
		return true
	})
	if werr != nil {
		rs.opts.Log.Error(rb.Kind+" end not recorded", "id", rb.ID, "error", werr)
	}
	rs.engine.Options().Replay.CountFinished(rb.Kind, status)
	log := rs.opts.Log.With("id", rb.ID, "status", status, "folded", p.folded.Load(), "duration", time.Since(started).Round(time.Millisecond))
	if err != nil {
		log.Warn(rb.Kind+" ended", "code", code, "error", err)
	} else {
		log.Info(rb.Kind+" ended", "records", final.Records, "spilled", final.Spilled, "dead_letters_resolved", rb.DeadLettersResolved)
	}
}

func rateAndETA(done, total uint64, elapsed time.Duration) (float64, float64) {
	if elapsed <= 0 || done == 0 {
		return 0, 0
	}
	r := float64(done) / elapsed.Seconds()
	return r, float64(total-min(done, total)) / r
}

// limiter paces a fold at the configured rate; nil means no cap.
// memory is the fold's memory bound (RebuildOptions.Memory).
func (rs *Rebuilds) memory() int {
	if rs.opts.Memory > 0 {
		return rs.opts.Memory
	}
	return DefaultRebuildMemory
}

func (rs *Rebuilds) limiter() *rate.Limiter {
	if rs.opts.Rate <= 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(rs.opts.Rate), max(int(rs.opts.Rate/10), 1))
}

// replay re-applies the matching journal events to the current generation
// of each projection, in journal order, through the live projectors.
func (rs *Rebuilds) replay(ctx context.Context, rb *Rebuild, p *progress) error {
	lim := rs.limiter()
	by := KindReplay + " " + rb.ID
	return projections.EachJournalEventUpTo(ctx, rs.js, rb.JournalHead, func(env *domain.Envelope) error {
		p.folded.Add(1)
		if !rb.Filter.match(env) || !rs.handledByAny(rb.Projections, env) {
			return nil
		}
		if lim != nil {
			if err := lim.Wait(ctx); err != nil {
				return err
			}
		}
		p.matched.Add(1)
		for _, name := range rb.Projections {
			if !rs.engine.Projection(name).Handles(env.Provider, env.EventType) {
				continue
			}
			resolved, err := rs.engine.Reapply(ctx, name, env, by)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err != nil {
				p.failed.Add(1)
				rs.engine.Options().Replay.CountReplayed(KindReplay, deadletter.OutcomeFailed)
				continue
			}
			p.applied.Add(1)
			rs.engine.Options().Replay.CountReplayed(KindReplay, deadletter.OutcomeApplied)
			if resolved {
				rb.DeadLettersResolved++
			}
		}
		return nil
	})
}
