package rebuild

import (
	"context"
	"crypto/sha256"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/projections"
	"github.com/billfold/billfold/projections/deadletter"
	"github.com/billfold/billfold/projections/jsio"
	"github.com/billfold/billfold/projections/kvstore"
	"github.com/billfold/billfold/reducers"
)

// target is one projection a rebuild builds a new generation of.
type target struct {
	projection string
	from       int // the generation it replaces
	store      *kvstore.Store
	// Bucket sequences of the bulk write: the first record that differs
	// from what the replaced generation held, and the last record.
	changedFrom, bulkEnd uint64
}

// caughtUpBelow is the projector backlog (pending plus unacknowledged
// events) under which a rebuild counts as caught up with live deliveries
// and switches; the pause before the switch absorbs the rest.
const caughtUpBelow = 64

// rebuild folds the journal up to rb.JournalHead into new generations of
// rb's projections, in memory (bounded by records, not events), writes the
// records, catches up with the deliveries since, and switches each
// projection to its new generation. Until the switch nothing any query or
// subscriber reads changes; on any failure the new generations are
// removed.
func (rs *Rebuilds) rebuild(ctx context.Context, rb *Rebuild, p *progress) (err error) {
	targets := map[string]*target{}
	defer func() {
		if err != nil {
			for _, t := range targets {
				if rs.engine.Generation(t.projection).Number != t.store.Generation() {
					rs.removeGeneration(context.Background(), t.projection, t.store.Generation())
				}
			}
		}
	}()
	var projs []reducers.Projection
	rb.Generations = map[string]int{}
	for _, name := range rb.Projections {
		cur, _, err := rs.engine.LoadGeneration(ctx, name)
		if err != nil {
			return err
		}
		n := max(cur.Number, cur.Previous) + 1
		rs.removeGeneration(ctx, name, n) // what an interrupted rebuild left
		store, err := kvstore.EnsureStore(ctx, rs.js, name, n, rs.engine.Options().Replicas)
		if err != nil {
			return err
		}
		targets[name] = &target{projection: name, from: cur.Number, store: store}
		rb.Generations[name] = n
		projs = append(projs, rs.engine.Projection(name))
	}
	if _, err := rs.modify(ctx, rb.ID, func(s *Rebuild) bool { s.Generations = rb.Generations; return true }); err != nil {
		return err
	}

	spills := map[string]*spill{}
	for name, t := range targets {
		spills[name] = &spill{budget: rs.memory() / len(targets), store: t.store, write: rs.writeRecords}
	}
	fold := newMemoryFold(ctx, projs, spills)
	refused := map[string]map[string]bool{} // projection → dead-letter subject
	var refusals []deadletter.Letter
	var mu sync.Mutex
	fold.refused = func(projection string, env *domain.Envelope, err error) {
		mu.Lock()
		defer mu.Unlock()
		if refused[projection] == nil {
			refused[projection] = map[string]bool{}
		}
		refused[projection][domain.DeadLetterSubject(projection, env.EventNamespace(), env.EventID)] = true
		refusals = append(refusals, deadletter.Letter{
			Projection: projection, Provider: env.Provider, Namespace: env.EventNamespace(), EventID: env.EventID,
			EventType: env.EventType, JournalSequence: env.Sequence, Created: env.Created, Class: deadletter.ClassPermanent,
			Code: domain.ErrorCode(err), Message: err.Error(), Attempts: 1,
		})
	}
	lim := rs.limiter()
	err = fold.foldJournal(ctx, rs.js, rb.JournalHead, func(ctx context.Context) error {
		p.folded.Add(1)
		if lim != nil {
			return lim.Wait(ctx)
		}
		return nil
	})
	if err != nil {
		return err
	}
	rs.opts.Log.Info("rebuild folded the journal", "id", rb.ID, "events", p.folded.Load())

	for name, t := range targets {
		n, err := rs.writeGeneration(ctx, t, fold.records[name], rb.Republish)
		if err != nil {
			return err
		}
		rb.Records += n
		rb.Spilled += len(fold.records[name].spilled)
		delete(fold.records, name) // the memory is no longer needed
	}
	rs.opts.Log.Info("rebuild wrote the new generations", "id", rb.ID, "records", rb.Records)
	if err := rs.catchUp(ctx, rb, targets, p); err != nil {
		return err
	}
	rs.opts.Log.Info("rebuild caught up with live deliveries", "id", rb.ID, "caught_up", p.caught.Load())
	// Projections switch independently; in parallel, the pauses overlap.
	g, gctx := errgroup.WithContext(ctx)
	for _, name := range rb.Projections {
		g.Go(func() error { return rs.switchTo(gctx, rb, targets[name]) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return rs.settleDeadLetters(ctx, rb, refused, refusals)
}

// writeGeneration writes a folded projection into t's store: first the
// records the replaced generation holds as they are (downstream has them),
// then the ones that differ, so the new generation's relay can start at
// the first difference. A fold that spilled has written records to the
// store already; those not changed since are rewritten after the first
// difference when they differ from the replaced generation (so the relay
// publishes them), and left where they are otherwise. It returns the
// records the generation holds.
func (rs *Rebuilds) writeGeneration(ctx context.Context, t *target, records *projectionRecords, republish bool) (int, error) {
	known := map[string][sha256.Size]byte{}
	if !republish {
		var err error
		if known, err = bucketDigests(ctx, rs.engine.Store(t.projection)); err != nil {
			return 0, err
		}
	}
	differs := func(key string, value []byte) bool {
		d, ok := known[key]
		return !ok || d != sha256.Sum256(value)
	}
	var same, changed []string
	for key, r := range records.mem {
		switch {
		case !r.dirty: // spilled and read back: where it is, or rewritten below
		case differs(key, r.value):
			changed = append(changed, key)
		default:
			same = append(same, key)
		}
	}
	if err := rs.writeRecords(ctx, t.store, records.mem, same); err != nil {
		return 0, err
	}
	last, err := rs.lastSequence(ctx, t.store)
	if err != nil {
		return 0, err
	}
	t.changedFrom = last + 1
	if err := rs.writeRecords(ctx, t.store, records.mem, changed); err != nil {
		return 0, err
	}
	n := len(same) + len(changed)
	if len(records.spilled) > 0 {
		moved, kept, err := rs.rewriteSpilled(ctx, t.store, records, t.changedFrom, differs)
		if err != nil {
			return 0, err
		}
		n += moved + kept
		rs.opts.Log.Info("rebuild spilled records to the new generation", "projection", t.projection,
			"spilled", len(records.spilled), "rewritten", moved, "left", kept)
	}
	if t.bulkEnd, err = rs.lastSequence(ctx, t.store); err != nil {
		return 0, err
	}
	return n, nil
}

// rewriteSpilled reads the latest write of every record s holds from
// before the final writes (before), and writes again those the fold did
// not change since it spilled them and that differ from the replaced
// generation, with the event that caused them. It returns how many it
// rewrote and how many it left.
func (rs *Rebuilds) rewriteSpilled(ctx context.Context, s *kvstore.Store, records *projectionRecords, before uint64, differs func(string, []byte) bool) (moved, kept int, err error) {
	prefix := "$KV." + s.Bucket() + "."
	var msgs []*nats.Msg
	flush := func() error {
		for _, err := range jsio.PublishAsync(ctx, rs.js, msgs, nil, nil) {
			if err != nil {
				return domain.Wrap(domain.CodeStoreUnavailable, err, "write "+s.Bucket())
			}
		}
		msgs = msgs[:0]
		return nil
	}
	var failed error
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverLastPerSubjectPolicy}
	err = jsio.OrderedRead(ctx, rs.js, domain.BucketStream(s.Bucket()), cfg, domain.CodeStoreUnavailable, func(m jetstream.Msg) {
		meta, err := m.Metadata()
		if failed != nil || err != nil || meta.Sequence.Stream >= before {
			return // one of the final writes
		}
		key := strings.TrimPrefix(m.Subject(), prefix)
		if r, ok := records.mem[key]; ok && r.dirty {
			return // written again since the spill
		}
		if !differs(key, m.Data()) {
			kept++
			return
		}
		moved++
		msgs = append(msgs, &nats.Msg{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()})
		if len(msgs) == 1024 {
			failed = flush()
		}
	})
	if err == nil {
		err = failed
	}
	if err == nil {
		err = flush()
	}
	return moved, kept, err
}

// lastSequence is the last sequence of s's stream.
func (rs *Rebuilds) lastSequence(ctx context.Context, s *kvstore.Store) (uint64, error) {
	return jsio.LastSequence(ctx, rs.js, domain.BucketStream(s.Bucket()), domain.CodeStoreUnavailable)
}

// bucketDigests returns the digest of every record a store holds.
func bucketDigests(ctx context.Context, s *kvstore.Store) (map[string][sha256.Size]byte, error) {
	out := map[string][sha256.Size]byte{}
	err := s.EachValue(ctx, func(key string, value []byte) { out[key] = sha256.Sum256(value) })
	return out, err
}

// writeRecords writes keys of records into s with asynchronous publishes,
// a bounded number in flight, each carrying the event that last changed it.
func (rs *Rebuilds) writeRecords(ctx context.Context, s *kvstore.Store, records foldedRecords, keys []string) error {
	const inFlight = 512 // four projections spilling at once stay under nats.go's 4,000 outstanding
	var futures []jetstream.PubAckFuture
	wait := func() error {
		for _, f := range futures {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				return domain.Wrap(domain.CodeStoreUnavailable, err, "write "+s.Bucket())
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		futures = futures[:0]
		return nil
	}
	for _, key := range keys {
		r := records[key]
		f, err := rs.js.PublishMsgAsync(s.WriteMsg(key, r.value, r.cause, 0))
		if err != nil {
			return domain.Wrap(domain.CodeStoreUnavailable, err, "write "+s.Bucket())
		}
		if futures = append(futures, f); len(futures) == inFlight {
			if err := wait(); err != nil {
				return err
			}
		}
	}
	return wait()
}

// catchUp runs a projector into each new generation from the event after
// the fold until its backlog is below caughtUpBelow. The projectors stop
// when catchUp returns; their durable consumers carry on in the engines
// once the generation is switched.
func (rs *Rebuilds) catchUp(ctx context.Context, rb *Rebuild, targets map[string]*target, p *progress) error {
	cctx, stop := context.WithCancel(ctx)
	defer stop()
	var projectors []*projections.Projector
	for _, t := range targets {
		pr := rs.engine.CatchUpProjector(t.projection, t.store, rs.opts.Log, rb.JournalHead+1)
		if _, err := pr.EnsureConsumer(ctx); err != nil {
			return err
		}
		projectors = append(projectors, pr)
		go func() { _ = pr.Run(cctx) }()
	}
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		caught, backlog := uint64(0), uint64(0)
		for _, pr := range projectors {
			c, err := rs.js.Consumer(ctx, domain.JournalStream, pr.Durable())
			if err != nil {
				return domain.Wrap(domain.CodeStoreUnavailable, err, "catch-up consumer")
			}
			info, err := c.Info(ctx)
			if err != nil {
				return domain.Wrap(domain.CodeStoreUnavailable, err, "catch-up consumer")
			}
			backlog = max(backlog, info.NumPending+uint64(info.NumAckPending))
			caught = max(caught, info.AckFloor.Stream-min(info.AckFloor.Stream, rb.JournalHead))
		}
		p.caught.Store(caught)
		if backlog < caughtUpBelow {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// switchTo makes t's generation current: it pauses the replaced
// generation's projector in every engine, waits until its relay has
// published everything it wrote, and then points the projection at the new
// generation, whose relay starts after what was published. A failure after
// the pause un-pauses the replaced generation.
func (rs *Rebuilds) switchTo(ctx context.Context, rb *Rebuild, t *target) (err error) {
	cur, rev, err := rs.engine.LoadGeneration(ctx, t.projection)
	if err != nil {
		return err
	}
	if cur.Number != t.from || cur.Paused {
		return domain.Errorf(domain.CodeConflict, "%s moved to generation %d while the rebuild ran", t.projection, cur.Number)
	}
	if cur.Previous > 0 {
		// Only one replaced generation is kept: the newest.
		rs.removeGeneration(ctx, t.projection, cur.Previous)
	}
	paused := cur
	paused.Paused, paused.RebuildID, paused.Previous, paused.RetireAt = true, rb.ID, 0, time.Time{}
	if rev, err = rs.engine.SaveGeneration(ctx, paused, rev); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			unpaused := paused
			unpaused.Paused = false
			if _, uerr := rs.engine.SaveGeneration(context.Background(), unpaused, rev); uerr != nil {
				rs.opts.Log.Error("generation left paused after a failed switch; the janitor un-pauses it", "projection", t.projection, "error", uerr)
			}
		}
	}()
	if _, err := rs.modify(ctx, rb.ID, func(s *Rebuild) bool { s.Status = RebuildSwitching; return true }); err != nil {
		return err
	}
	if err := rs.engine.WaitGeneration(ctx, paused); err != nil {
		return err
	}
	if err := rs.waitRelayDrained(ctx, t.projection, cur.Number); err != nil {
		return err
	}
	published, err := rs.engine.Position(ctx, t.projection, cur.Number)
	if err != nil {
		return domain.Wrap(domain.CodeStoreUnavailable, err, "replaced generation's projector")
	}
	next := kvstore.Generation{
		Projection: t.projection, Number: t.store.Generation(), Previous: cur.Number,
		RetireAt: time.Now().UTC().Add(rs.opts.Grace), RebuildID: rb.ID, SwitchedAt: time.Now().UTC(),
		Relay: kvstore.RelayStart{From: t.changedFrom, SkipFrom: t.bulkEnd + 1, PublishedUpTo: published},
	}
	if rb.Republish {
		// Every record is in the writes from changedFrom on (nothing is
		// known, so nothing is "same"); a spill's earlier writes are not
		// published.
		next.Relay = kvstore.RelayStart{From: t.changedFrom}
	}
	if _, err = rs.engine.SaveGeneration(ctx, next, rev); err != nil {
		return err
	}
	// Done means this process serves the new generation.
	if err := rs.engine.WaitGeneration(ctx, next); err != nil {
		return err
	}
	_ = rs.js.DeleteConsumer(ctx, domain.JournalStream, domain.ProjectorDurable(t.projection, cur.Number))
	rs.opts.Log.Info("projection switched to a new generation", "projection", t.projection,
		"generation", next.Number, "previous", cur.Number, "rebuild_id", rb.ID, "relay_from", next.Relay.From)
	return nil
}

// waitRelayDrained waits, at most 30 s, until a generation's relay has
// published every write in its bucket. After the timeout the switch goes
// on: a write the old relay had not published is then published by the
// new generation's relay if a later event changed the record, or not at
// all (docs/replay.md says so).
func (rs *Rebuilds) waitRelayDrained(ctx context.Context, projection string, generation int) error {
	deadline := time.Now().Add(30 * time.Second)
	// The projector of the paused generation may be finishing one event.
	jsio.Sleep(ctx, 200*time.Millisecond)
	for time.Now().Before(deadline) {
		c, err := rs.js.Consumer(ctx, domain.BucketStream(domain.ProjectionBucket(projection, generation)), domain.FeedDurable(projection, generation))
		if err != nil {
			return nil // no relay: nothing to wait for
		}
		info, err := c.Info(ctx)
		if err == nil && info.NumPending == 0 && info.NumAckPending == 0 {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		jsio.Sleep(ctx, 50*time.Millisecond)
	}
	rs.opts.Log.Warn("relay of the replaced generation not drained after 30s; switching anyway", "projection", projection)
	return nil
}

// settleDeadLetters records what the new generations did with the events
// that were dead letters: an open one the fold applied is resolved, and an
// event the fold refused is a dead letter again, its attempts raised.
func (rs *Rebuilds) settleDeadLetters(ctx context.Context, rb *Rebuild, refused map[string]map[string]bool, refusals []deadletter.Letter) error {
	by := KindRebuild + " " + rb.ID
	now := time.Now().UTC()
	for _, name := range rb.Projections {
		open, err := rs.engine.DeadLetterStore().List(ctx, deadletter.Filter{Projection: name})
		if err != nil {
			return err
		}
		for _, dl := range open {
			if dl.JournalSequence > rb.JournalHead || refused[name][dl.Subject()] {
				continue
			}
			resolved, err := rs.engine.DeadLetterStore().Resolve(ctx, name, dl.Namespace, dl.EventID, by, nil, now)
			if err != nil {
				return err
			}
			if resolved {
				rb.DeadLettersResolved++
				rs.engine.Options().Replay.CountReplayed(KindRebuild, deadletter.OutcomeApplied)
			}
		}
	}
	for _, dl := range refusals {
		dl.FailedAt = now
		if err := rs.engine.DeadLetterStore().Fail(ctx, dl, nil); err != nil {
			return err
		}
		rs.engine.Options().Replay.CountReplayed(KindRebuild, deadletter.OutcomeFailed)
	}
	return nil
}

// removeGeneration deletes a generation's bucket (and with it its relay's
// consumer), its projector's consumer, any joint fold's consumer that
// names it and its recorded fold position. Missing pieces are fine.
func (rs *Rebuilds) removeGeneration(ctx context.Context, projection string, n int) {
	if n < 1 {
		return
	}
	err := rs.js.DeleteKeyValue(ctx, domain.ProjectionBucket(projection, n))
	if err != nil && !errors.Is(err, jetstream.ErrBucketNotFound) && !errors.Is(err, jetstream.ErrStreamNotFound) {
		rs.opts.Log.Warn("generation bucket not removed", "projection", projection, "generation", n, "error", err)
	}
	_ = rs.js.DeleteConsumer(ctx, domain.JournalStream, domain.ProjectorDurable(projection, n))
	// A joint fold's consumer that names the generation is left only when
	// no engine split it (none ran while the switch paused it); no engine
	// folds a removed generation.
	if journal, err := rs.js.Stream(ctx, domain.JournalStream); err == nil {
		names := journal.ConsumerNames(ctx)
		for name := range names.Name() {
			if domain.FoldsGeneration(name, projection, n) {
				_ = rs.js.DeleteConsumer(ctx, domain.JournalStream, name)
			}
		}
	}
	if positions, err := rs.js.KeyValue(ctx, domain.FoldPositionsBucket); err == nil {
		_ = positions.Purge(ctx, domain.FoldPositionKey(projection, n))
	}
}

// Run tidies until ctx is done: every few seconds it marks rebuilds whose
// owner stopped heart-beating interrupted (un-pausing and removing what
// they built) and removes replaced generations past their grace period.
func (rs *Rebuilds) Run(ctx context.Context) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		rs.tidy(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (rs *Rebuilds) tidy(ctx context.Context) {
	all, err := rs.List(ctx)
	if err != nil {
		return
	}
	for _, rb := range all {
		if rb.Finished() || time.Since(rb.UpdatedAt) < staleAfter {
			continue
		}
		rs.mu.Lock()
		_, mine := rs.local[rb.ID]
		rs.mu.Unlock()
		if mine {
			continue
		}
		rs.interrupt(ctx, rb)
	}
	for _, name := range rs.engine.Projections() {
		g, rev, err := rs.engine.LoadGeneration(ctx, name)
		if err != nil || g.Previous == 0 || time.Now().Before(g.RetireAt) {
			continue
		}
		prev := g.Previous
		g.Previous, g.RetireAt = 0, time.Time{}
		if _, err := rs.engine.SaveGeneration(ctx, g, rev); err == nil {
			rs.removeGeneration(ctx, name, prev)
			rs.opts.Log.Info("replaced generation removed after its grace period", "projection", name, "generation", prev)
		}
	}
}

// interrupt ends a rebuild whose process died: the projections it was
// switching are un-paused, the generations it had not switched to are
// removed, and its record says interrupted.
func (rs *Rebuilds) interrupt(ctx context.Context, rb Rebuild) {
	stale := rb.UpdatedAt
	cur, err := rs.modify(ctx, rb.ID, func(s *Rebuild) bool {
		if s.Finished() || !s.UpdatedAt.Equal(stale) {
			return false // finished, or alive after all
		}
		s.Status, s.Code, s.FinishedAt = RebuildInterrupted, domain.CodeRebuildInterrupted, time.Now().UTC()
		s.Error = "the process running it stopped (" + s.Owner + "); start it again"
		return true
	})
	if err != nil || cur.Status != RebuildInterrupted {
		return
	}
	for name, n := range rb.Generations {
		g, rev, err := rs.engine.LoadGeneration(ctx, name)
		if err != nil {
			continue
		}
		if g.Paused && g.RebuildID == rb.ID {
			g.Paused = false
			if _, err := rs.engine.SaveGeneration(ctx, g, rev); err != nil {
				continue
			}
		}
		if g.Number != n {
			rs.removeGeneration(ctx, name, n)
		}
	}
	rs.engine.Options().Replay.CountFinished(rb.Kind, RebuildInterrupted)
	rs.opts.Log.Warn(rb.Kind+" interrupted: its process stopped before it finished", "id", rb.ID, "owner", rb.Owner)
}
