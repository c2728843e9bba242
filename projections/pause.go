package projections

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/projections/jsio"
	"github.com/billfold/billfold/projections/kvstore"
)

// Pause is an operator's hold on a projection: its projectors stop folding
// in every billfold process while intake keeps journaling; on resume they
// fold what was journaled meanwhile. The hold is a key of the pauses bucket,
// so it outlives restarts and holds across the processes of a cluster.
type Pause struct {
	Projection string `json:"projection"`
	// By is the name of the admin token that paused it.
	By string    `json:"by"`
	At time.Time `json:"at"`
}

// pauses reads and writes the operator holds, one key per paused
// projection; a resume deletes the key.
type pauses struct {
	kv jetstream.KeyValue
}

func ensurePauses(ctx context.Context, js jetstream.JetStream, replicas int) (pauses, error) {
	kv, err := kvstore.EnsureBookkeeping(ctx, js, domain.PausesBucket, "billfold: projections an operator paused", 1, replicas)
	return pauses{kv}, err
}

// all reads every hold.
func (p pauses) all(ctx context.Context) (map[string]Pause, error) {
	out := map[string]Pause{}
	keys, err := p.kv.ListKeys(ctx)
	if err != nil {
		return nil, domain.Wrap(domain.CodeStoreUnavailable, err, "pauses")
	}
	for key := range keys.Keys() {
		e, err := p.kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return nil, domain.Wrap(domain.CodeStoreUnavailable, err, "pause of "+key)
		}
		out[key] = decodePause(key, e.Value())
	}
	return out, nil
}

// decodePause reads a hold; an unreadable one still holds (by "unknown"):
// a projection must not start folding because its pause record is odd.
func decodePause(key string, b []byte) Pause {
	var hold Pause
	if json.Unmarshal(b, &hold) != nil || hold.Projection != key {
		hold = Pause{Projection: key, By: "unknown"}
	}
	return hold
}

// Pause holds the named projections (every projection when none is named)
// and returns every hold now in place. A projection already paused keeps
// its first hold. An unknown name is BILLFOLD-NOT-FOUND and pauses
// nothing.
func (e *Engine) Pause(ctx context.Context, names []string, by string) ([]Pause, error) {
	names, err := e.resolve(names)
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	for _, name := range names {
		hold := Pause{Projection: name, By: by, At: now}
		b, _ := json.Marshal(hold)
		_, err := e.pauses.kv.Create(ctx, name, b)
		if errors.Is(err, jetstream.ErrKeyExists) {
			var first jetstream.KeyValueEntry
			if first, err = e.pauses.kv.Get(ctx, name); err == nil {
				hold = decodePause(name, first.Value())
			}
		}
		if err != nil {
			return nil, domain.Wrap(domain.CodeStoreUnavailable, err, "pause of "+name)
		}
		// Held here at once; the other processes follow the bucket.
		e.updatePaused(func(holds map[string]Pause) { holds[name] = hold })
	}
	return e.Paused(), nil
}

// Resume lifts the holds on the named projections (every projection when
// none is named) and returns the holds left. Their projectors fold the
// events journaled meanwhile.
func (e *Engine) Resume(ctx context.Context, names []string) ([]Pause, error) {
	names, err := e.resolve(names)
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		if err := e.pauses.kv.Delete(ctx, name); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil, domain.Wrap(domain.CodeStoreUnavailable, err, "resume of "+name)
		}
		e.updatePaused(func(holds map[string]Pause) { delete(holds, name) })
	}
	return e.Paused(), nil
}

// Paused returns the holds this process follows, by projection name.
func (e *Engine) Paused() []Pause {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]Pause, 0, len(e.paused))
	for _, name := range slices.Sorted(maps.Keys(e.paused)) {
		out = append(out, e.paused[name])
	}
	return out
}

// isPaused reports whether name is held.
func (e *Engine) isPaused(name string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	_, ok := e.paused[name]
	return ok
}

// resolve checks names against the engine's projections; none is all.
func (e *Engine) resolve(names []string) ([]string, error) {
	if len(names) == 0 {
		return e.Projections(), nil
	}
	for _, name := range names {
		if e.projections[name] == nil {
			return nil, domain.Errorf(domain.CodeNotFound, "no projection %q: want one of %v", name, e.names)
		}
	}
	return names, nil
}

// loadPauses makes every hold in the bucket this process's.
func (e *Engine) loadPauses(ctx context.Context) error {
	all, err := e.pauses.all(ctx)
	if err == nil {
		e.updatePaused(func(holds map[string]Pause) {
			clear(holds)
			maps.Copy(holds, all)
		})
	}
	return err
}

// updatePaused applies change to this process's holds, under the engine's
// lock so that the watch and the API never undo each other's change, and
// wakes the runners when a projection's hold came or went.
func (e *Engine) updatePaused(change func(map[string]Pause)) {
	e.mu.Lock()
	holds := maps.Clone(e.paused)
	if holds == nil {
		holds = map[string]Pause{}
	}
	change(holds)
	changed := len(holds) != len(e.paused)
	for name := range holds {
		if _, ok := e.paused[name]; !ok {
			changed = true
		}
	}
	e.paused = holds
	if changed {
		e.notifyLocked()
	}
	if m := e.opts.Metrics; m != nil { // under the lock: the last change wins
		for _, name := range e.names {
			v := 0.0
			if _, held := holds[name]; held {
				v = 1
			}
			m.Paused.WithLabelValues(name).Set(v)
		}
	}
	e.mu.Unlock()
}

// followPauses applies every change of the holds, made by any process,
// re-watching after NATS failures.
func (e *Engine) followPauses(ctx context.Context) {
	for ctx.Err() == nil {
		w, err := e.pauses.kv.WatchAll(ctx, jetstream.UpdatesOnly())
		if err != nil {
			jsio.Sleep(ctx, time.Second)
			continue
		}
		// Changes made while the watch was down are read whole, before
		// the updates that follow the watch's start.
		_ = e.loadPauses(ctx)
		for u := range w.Updates() {
			if u == nil {
				continue
			}
			e.updatePaused(func(holds map[string]Pause) {
				if u.Operation() == jetstream.KeyValuePut {
					holds[u.Key()] = decodePause(u.Key(), u.Value())
				} else {
					delete(holds, u.Key())
				}
			})
		}
		_ = w.Stop()
		jsio.Sleep(ctx, 250*time.Millisecond)
	}
}
