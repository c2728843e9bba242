package projections

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/reducers"
)

// Engine runs a projector per projection and keeps their lag metric.
type Engine struct {
	js         jetstream.JetStream
	projectors map[string]*Projector
	relays     map[string]*Relay
	stores     map[string]*Store
	metrics    *ProjectorMetrics
	log        *slog.Logger
}

// EngineOptions configure an Engine.
type EngineOptions struct {
	Replicas int
	Retry    RetryPolicy
	Metrics  *ProjectorMetrics
	Log      *slog.Logger
}

// NewEngine creates the dead-letter and change feed streams, and each
// projection's store, projector consumer and change relay consumer.
func NewEngine(ctx context.Context, js jetstream.JetStream, projs []reducers.Projection, o EngineOptions) (*Engine, error) {
	if _, err := js.CreateOrUpdateStream(ctx, DeadLetterConfig(o.Replicas)); err != nil {
		return nil, domain.Wrap(domain.CodeStoreUnavailable, err, "dead-letter stream")
	}
	if _, err := js.CreateOrUpdateStream(ctx, ChangesConfig(o.Replicas)); err != nil {
		return nil, domain.Wrap(domain.CodeStoreUnavailable, err, "change feed stream")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	e := &Engine{js: js, projectors: map[string]*Projector{}, relays: map[string]*Relay{}, stores: map[string]*Store{}, metrics: o.Metrics, log: o.Log}
	for _, p := range projs {
		store, err := EnsureStore(ctx, js, p.Name(), 1, o.Replicas)
		if err != nil {
			return nil, err
		}
		pr := NewProjector(p, js, store, o.Metrics, o.Log, o.Retry)
		if _, err := pr.EnsureConsumer(ctx); err != nil {
			return nil, err
		}
		rl := NewRelay(p.Name(), js, store, o.Log)
		if _, err := rl.EnsureConsumer(ctx); err != nil {
			return nil, err
		}
		e.projectors[p.Name()], e.relays[p.Name()], e.stores[p.Name()] = pr, rl, store
	}
	return e, nil
}

// Store returns the store of a projection, nil for an unknown name.
func (e *Engine) Store(projection string) *Store { return e.stores[projection] }

// Run runs every projector, every change relay and the lag sampler until
// ctx is done.
func (e *Engine) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, pr := range e.projectors {
		wg.Go(func() { _ = pr.Run(ctx) })
	}
	for _, rl := range e.relays {
		wg.Go(func() { rl.Run(ctx) })
	}
	wg.Go(func() { e.sampleLag(ctx) })
	wg.Wait()
}

// Lag returns, per projection, the journal events not yet acknowledged by
// its projector.
func (e *Engine) Lag(ctx context.Context) (map[string]uint64, error) {
	s, err := e.js.Stream(ctx, domain.JournalStream)
	if err != nil {
		return nil, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, err
	}
	lag := map[string]uint64{}
	for name := range e.projectors {
		c, err := e.js.Consumer(ctx, domain.JournalStream, domain.ProjectorDurable(name))
		if err != nil {
			return nil, err
		}
		ci, err := c.Info(ctx)
		if err != nil {
			return nil, err
		}
		lag[name] = info.State.LastSeq - min(ci.AckFloor.Stream, info.State.LastSeq)
	}
	return lag, nil
}

func (e *Engine) sampleLag(ctx context.Context) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		lag, err := e.Lag(ctx)
		if err != nil || e.metrics == nil {
			continue
		}
		for name, n := range lag {
			e.metrics.Lag.WithLabelValues(name).Set(float64(n))
		}
		if s, err := e.js.Stream(ctx, domain.DeadLetterStream); err == nil {
			e.metrics.DeadLetters.Set(float64(s.CachedInfo().State.Msgs))
		}
	}
}
