package projections

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/projections/deadletter"
	"github.com/billfold/billfold/projections/feed"
	"github.com/billfold/billfold/projections/jsio"
	"github.com/billfold/billfold/projections/kvstore"
	"github.com/billfold/billfold/reducers"
)

// Engine runs, per projection, the projector and the change relay of the
// current generation, and follows the generation pointers: when a rebuild
// switches a projection, every engine stops the old generation's workers
// and starts the new one's.
type Engine struct {
	js          jetstream.JetStream
	projections map[string]reducers.Projection
	names       []string
	gens        kvstore.Generations
	dead        deadletter.Letters
	opts        EngineOptions
	// facts lets the projectors decode each journal event once.
	facts  *sharedFacts
	pauses pauses
	// positions are the fold positions recorded as consumers were
	// deleted (jointfold.go).
	positions jetstream.KeyValue

	// paused (under mu) are the operator's holds: those projections'
	// projectors do not run (pause.go).
	paused map[string]Pause

	mu       sync.Mutex
	slots    map[string]*slot
	switched chan struct{} // closed, and replaced, on every change of a slot
}

// slot is the running generation of one projection.
type slot struct {
	gen       kvstore.Generation
	store     *kvstore.Store
	projector *Projector
	relay     *feed.Relay
}

// EngineOptions configure an Engine.
type EngineOptions struct {
	Replicas int
	Retry    RetryPolicy
	Metrics  *ProjectorMetrics
	// Replay counts requeues, replays and rebuilds.
	Replay *ReplayMetrics
	Log    *slog.Logger
	// RetrySchedule is the wait before each scheduled retry of a
	// transiently failed event (nil: DefaultRetrySchedule; empty: none,
	// such a failure is exhausted at once). RetryScan is how often due
	// retries are looked for (0: DefaultRetryScan).
	RetrySchedule []time.Duration
	RetryScan     time.Duration
}

// NewEngine creates the dead-letter, change feed and generation stores and,
// for each projection's current generation, its store and consumers.
func NewEngine(ctx context.Context, js jetstream.JetStream, projs []reducers.Projection, o EngineOptions) (*Engine, error) {
	if _, err := js.CreateOrUpdateStream(ctx, deadletter.StreamConfig(o.Replicas)); err != nil {
		return nil, domain.Wrap(domain.CodeStoreUnavailable, err, "dead-letter stream")
	}
	if _, err := js.CreateOrUpdateStream(ctx, feed.ChangesConfig(o.Replicas)); err != nil {
		return nil, domain.Wrap(domain.CodeStoreUnavailable, err, "change feed stream")
	}
	gens, err := kvstore.EnsureGenerations(ctx, js, o.Replicas)
	if err != nil {
		return nil, err
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	e := &Engine{js: js, projections: map[string]reducers.Projection{}, gens: gens, dead: deadletter.Letters{JS: js, Schedule: o.retrySchedule(), Exhausted: o.Metrics.exhausted}, facts: newSharedFacts(),
		opts: o, slots: map[string]*slot{}, switched: make(chan struct{})}
	if e.pauses, err = ensurePauses(ctx, js, o.Replicas); err != nil {
		return nil, err
	}
	if e.positions, err = kvstore.EnsureBookkeeping(ctx, js, domain.FoldPositionsBucket,
		"billfold: what each projection generation had folded when a consumer of its fold was deleted", 1, o.Replicas); err != nil {
		return nil, err
	}
	for _, p := range projs {
		e.projections[p.Name()] = p
		e.names = append(e.names, p.Name())
		gen, _, err := gens.Get(ctx, p.Name())
		if err != nil {
			return nil, err
		}
		s, err := e.newSlot(ctx, gen)
		if err != nil {
			return nil, err
		}
		e.slots[p.Name()] = s
	}
	// Read before Run: a paused projection must not fold after a restart.
	if err := e.loadPauses(ctx); err != nil {
		return nil, err
	}
	// Every projection has a position from here on.
	slots, held := e.foldState()
	if _, err := e.ensureFold(ctx, slots, held); err != nil {
		return nil, err
	}
	return e, nil
}

// newSlot opens gen's store and creates its consumers.
func (e *Engine) newSlot(ctx context.Context, gen kvstore.Generation) (*slot, error) {
	p := e.projections[gen.Projection]
	store, err := kvstore.EnsureStore(ctx, e.js, gen.Projection, gen.Number, e.opts.Replicas)
	if err != nil {
		return nil, err
	}
	s := &slot{
		gen:       gen,
		store:     store,
		projector: NewProjector(p, e.js, store, e.opts.Metrics, e.opts.Log, e.opts.Retry).shareFacts(e.facts),
		relay:     feed.NewRelay(gen.Projection, e.js, store, e.opts.Log).Start(gen.Relay),
	}
	s.projector.dead = e.dead   // with the retry schedule
	s.projector.attached = true // runFold makes its consumer, when it folds split
	if _, err := s.relay.EnsureConsumer(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Projections are the names of the engine's projections, in the order
// they were given.
func (e *Engine) Projections() []string { return slices.Clone(e.names) }

// HasProjection reports whether the engine folds the projection name.
func (e *Engine) HasProjection(name string) bool { return e.projections[name] != nil }

// JetStream is the JetStream context the engine reads and writes through,
// for the rooms above it that read the same streams (the query room).
func (e *Engine) JetStream() jetstream.JetStream { return e.js }

// Store returns the current store of a projection, nil for an unknown name.
func (e *Engine) Store(projection string) *kvstore.Store {
	e.mu.Lock()
	defer e.mu.Unlock()
	if s := e.slots[projection]; s != nil {
		return s.store
	}
	return nil
}

// Generation returns the generation a projection is at in this process.
func (e *Engine) Generation(projection string) kvstore.Generation {
	e.mu.Lock()
	defer e.mu.Unlock()
	if s := e.slots[projection]; s != nil {
		return s.gen
	}
	return kvstore.Generation{}
}

// Switched returns a channel that is closed the next time any projection's
// generation changes in this process.
func (e *Engine) Switched() <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.switched
}

func (e *Engine) slot(projection string) *slot {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.slots[projection]
}

// Run folds every projection's current generation (jointfold.go), runs
// their change relays, follows the generation pointers and samples lag
// until ctx is done.
func (e *Engine) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { e.runFold(ctx) })
	for _, name := range e.names {
		wg.Go(func() { e.runRelay(ctx, name) })
	}
	wg.Go(func() { e.followGenerations(ctx) })
	wg.Go(func() { e.followPauses(ctx) })
	wg.Go(func() { e.retryDue(ctx) })
	wg.Go(func() { e.sampleLag(ctx) })
	wg.Wait()
}

// runRelay runs the change relay of a projection's slot, restarting it
// whenever the slot changes.
func (e *Engine) runRelay(ctx context.Context, name string) {
	for ctx.Err() == nil {
		switched := e.Switched()
		s := e.slot(name)
		sctx, stop := context.WithCancel(ctx)
		var wg sync.WaitGroup
		wg.Go(func() { s.relay.Run(sctx) })
		for e.slot(name) == s && ctx.Err() == nil {
			select {
			case <-ctx.Done():
			case <-switched:
				switched = e.Switched()
			}
		}
		stop()
		wg.Wait()
	}
}

// followGenerations applies every change of a generation pointer, re-watching
// after NATS failures.
func (e *Engine) followGenerations(ctx context.Context) {
	for ctx.Err() == nil {
		w, err := e.gens.WatchAll(ctx)
		if err != nil {
			jsio.Sleep(ctx, time.Second)
			continue
		}
		for u := range w.Updates() {
			if u == nil {
				continue
			}
			gen, err := kvstore.DecodeGeneration(u.Value())
			if err != nil || e.projections[gen.Projection] == nil {
				continue
			}
			for ctx.Err() == nil {
				if err := e.apply(ctx, gen); err == nil {
					break
				} else {
					e.opts.Log.Warn("generation switch not applied yet, retrying", "projection", gen.Projection, "generation", gen.Number, "error", err)
				}
				jsio.Sleep(ctx, time.Second)
			}
		}
		_ = w.Stop()
		jsio.Sleep(ctx, 250*time.Millisecond)
	}
}

// apply makes gen this process's slot of its projection.
func (e *Engine) apply(ctx context.Context, gen kvstore.Generation) error {
	cur := e.slot(gen.Projection)
	if cur != nil && cur.gen == gen {
		return nil
	}
	s, err := e.newSlot(ctx, gen)
	if err != nil {
		return err
	}
	e.mu.Lock()
	e.slots[gen.Projection] = s
	e.notifyLocked()
	e.mu.Unlock()
	e.opts.Log.Info("projection generation changed", "projection", gen.Projection, "generation", gen.Number,
		"paused", gen.Paused, "rebuild_id", gen.RebuildID)
	return nil
}

// Lag returns, per projection, the journal events its current generation
// has not folded yet (Position).
func (e *Engine) Lag(ctx context.Context) (map[string]uint64, error) {
	last, err := JournalHead(ctx, e.js)
	if err != nil {
		return nil, err
	}
	// The consumers' positions only: a recorded one matters when none is
	// left, and the fold then makes one from it.
	slots, _ := e.foldState()
	known, err := FoldPositions(ctx, e.js, generationsOf(slots))
	if err != nil {
		return nil, err
	}
	lag := map[string]uint64{}
	for _, s := range slots {
		lag[s.gen.Projection] = last - min(known[s.gen.Projection].Folded, last)
	}
	return lag, nil
}

// notifyLocked wakes every projection's runner to look at its slot and
// holds again; e.mu must be held.
func (e *Engine) notifyLocked() {
	close(e.switched)
	e.switched = make(chan struct{})
}

func (e *Engine) sampleLag(ctx context.Context) {
	every(ctx, 5*time.Second, func() {
		lag, err := e.Lag(ctx)
		if err != nil || e.opts.Metrics == nil {
			return
		}
		for name, n := range lag {
			e.opts.Metrics.Lag.WithLabelValues(name).Set(float64(n))
		}
		if n, err := e.dead.CountOpen(ctx); err == nil {
			e.opts.Metrics.DeadLetters.Set(float64(n))
		}
	})
}

// every calls fn every d until ctx ends.
func every(ctx context.Context, d time.Duration, fn func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
}
