package projections

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/projections/jsio"
	"github.com/billfold/billfold/projections/kvstore"
)

// The engine folds the journal into its projections in one of two ways.
//
// Joint: one durable consumer on the journal (domain.FoldDurable, named by
// every projection's generation) delivers each event once; every
// projection folds the batch in its own burst, and each event is
// acknowledged once all of them folded it (or handed back once, if any of
// them could not store it). Its acknowledgement floor is every
// projection's position. This is the steady state: a quarter of the
// deliveries and acknowledgements of one consumer per projection, which
// were the largest share of the messages an event costs
// (docs/performance.md).
//
// Split: one durable consumer per projection (domain.ProjectorDurable),
// each its own position. Projections fold split while any is held (an
// operator's pause, a generation a rebuild is switching away from) and
// after a generation switch until the new generation caught up, because
// then their positions differ.
//
// The consumers are the positions, so every change between the two keeps
// them: a split creates each projection's consumer after the joint one's
// acknowledgement floor before it deletes the joint one; a merge creates
// the joint consumer after the lowest floor of the split ones before it
// deletes them. Either way an event may be folded twice (the reducers make
// the second fold change nothing) and none is skipped. Every process
// decides for itself from the same shared state (the pauses and generation
// buckets, the consumers that exist), and a process that is late to see a
// change finds its consumer gone and decides again.

// mergeBelow is the backlog (pending plus unacknowledged) under which every
// split consumer must be for the projections to fold jointly again: the
// events the leading projections fold a second time after a merge.
const mergeBelow = 4 * DefaultBatch

// mergeCheck is how often projections folding split look whether they can
// fold jointly again.
const mergeCheck = 2 * time.Second

// errConsumerGone ends a fold whose consumer another process deleted (a
// split or a merge): the fold decides again which consumers to use.
var errConsumerGone = errors.New("fold consumer deleted")

// runFold folds the journal into every projection's current generation,
// jointly or split, until ctx is done, deciding again at every change of a
// slot or a hold and whenever its consumers change.
func (e *Engine) runFold(ctx context.Context) {
	for ctx.Err() == nil {
		switched := e.Switched()
		slots, held := e.foldState()
		err := e.foldOnce(ctx, slots, held, switched)
		switch {
		case err == nil, ctx.Err() != nil:
		case errors.Is(err, errConsumerGone):
			e.opts.Log.Info("fold consumers changed by another process, deciding again", "error", err)
		default:
			e.opts.Log.Warn("projectors interrupted, resuming", "error", err)
			jsio.Sleep(ctx, time.Second)
		}
	}
}

// foldState is the slots of every projection, in the engine's order, and
// the names of those held (paused by an operator, or a generation paused by
// a rebuild's switch).
func (e *Engine) foldState() ([]*slot, map[string]bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	slots := make([]*slot, 0, len(e.names))
	held := map[string]bool{}
	for _, name := range e.names {
		s := e.slots[name]
		slots = append(slots, s)
		if _, paused := e.paused[name]; paused || s.gen.Paused {
			held[name] = true
		}
	}
	return slots, held
}

// generationsOf maps each slot's projection to its generation number.
func generationsOf(slots []*slot) map[string]int {
	gens := make(map[string]int, len(slots))
	for _, s := range slots {
		gens[s.gen.Projection] = s.gen.Number
	}
	return gens
}

// jointDurable is the joint fold's consumer for these slots.
func jointDurable(slots []*slot) string { return domain.FoldDurable(generationsOf(slots)) }

// foldOnce folds with the consumers the state calls for until the state
// changes (switched is closed), a consumer is deleted, or ctx ends.
func (e *Engine) foldOnce(ctx context.Context, slots []*slot, held map[string]bool, switched <-chan struct{}) error {
	joint, err := e.ensureFold(ctx, slots, held)
	switch {
	case err != nil:
		return err
	case joint != nil:
		return e.foldJointly(ctx, joint, slots, switched)
	default:
		return e.foldSplit(ctx, slots, held, switched)
	}
}

// ensureFold makes the consumers the state calls for exist and returns the
// joint one, or nil when the projections fold split. With none held the
// joint consumer is kept if it exists, and created when no projection has
// a consumer of its own (a new install: from the first event). Otherwise
// every projection gets its own consumer, from the event after its known
// position, and then the joint consumer, if any, is deleted: a split.
func (e *Engine) ensureFold(ctx context.Context, slots []*slot, held map[string]bool) (jetstream.Consumer, error) {
	name := jointDurable(slots)
	joint, err := e.js.Consumer(ctx, domain.JournalStream, name)
	jointly := err == nil
	switch {
	case jointly && len(held) == 0:
		return joint, nil
	case !jointly && !errors.Is(err, jetstream.ErrConsumerNotFound):
		return nil, domain.Wrap(domain.CodeStoreUnavailable, err, "joint fold consumer")
	}
	known, err := e.knownPositions(ctx, slots)
	if err != nil {
		return nil, err
	}
	if !jointly && len(held) == 0 && !slices.ContainsFunc(known, func(k FoldPosition) bool { return k.Own }) {
		from := known[0].Folded
		for _, k := range known {
			from = min(from, k.Folded)
		}
		return e.createJoint(ctx, slots, from+1)
	}
	for i, s := range slots {
		if !known[i].Own {
			if _, err := s.projector.From(known[i].Folded + 1).EnsureConsumer(ctx); err != nil {
				return nil, err
			}
		}
	}
	if jointly {
		info, err := joint.Info(ctx)
		if err != nil {
			return nil, domain.Wrap(domain.CodeStoreUnavailable, err, "joint fold consumer")
		}
		for _, s := range slots {
			if err := e.recordPosition(ctx, s.gen, info.AckFloor.Stream); err != nil {
				return nil, err
			}
		}
		if err := e.js.DeleteConsumer(ctx, domain.JournalStream, name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return nil, domain.Wrap(domain.CodeStoreUnavailable, err, "joint fold consumer")
		}
		e.opts.Log.Info("projections fold split while one is held", "held", holdsOf(held))
	}
	return nil, nil
}

// knownPositions reads the fold position of every slot's generation.
func (e *Engine) knownPositions(ctx context.Context, slots []*slot) ([]FoldPosition, error) {
	byName, err := FoldPositions(ctx, e.js, generationsOf(slots))
	if err != nil {
		return nil, err
	}
	known := make([]FoldPosition, len(slots))
	for i, s := range slots {
		known[i] = byName[s.gen.Projection]
		recorded, _, err := e.recordedPosition(ctx, s.gen)
		if err != nil {
			return nil, err
		}
		known[i].Folded = max(known[i].Folded, recorded)
	}
	return known, nil
}

// recordPosition records that gen had folded every event up to floor,
// before a consumer that says so is deleted: should every consumer that
// folds gen be deleted (two processes splitting and merging at once, on
// different views of a pause), the fold resumes from there, not from the
// journal's first event. A record only ever rises.
func (e *Engine) recordPosition(ctx context.Context, gen kvstore.Generation, floor uint64) error {
	key := domain.FoldPositionKey(gen.Projection, gen.Number)
	for {
		recorded, revision, err := e.recordedPosition(ctx, gen)
		if err != nil || recorded >= floor {
			return err
		}
		_, err = jsio.PutIfRevision(ctx, e.positions, key, strconv.AppendUint(nil, floor, 10), revision, "fold position of "+gen.Projection)
		if domain.ErrorCode(err) != domain.CodeConflict {
			return err
		}
	}
}

// recordedPosition is the position recorded for gen (recordPosition) and
// its revision; 0 and 0 when none is.
func (e *Engine) recordedPosition(ctx context.Context, gen kvstore.Generation) (uint64, uint64, error) {
	entry, err := e.positions.Get(ctx, domain.FoldPositionKey(gen.Projection, gen.Number))
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return 0, 0, nil
	case err != nil:
		return 0, 0, domain.Wrap(domain.CodeStoreUnavailable, err, "fold position of "+gen.Projection)
	}
	floor, _ := strconv.ParseUint(string(entry.Value()), 10, 64)
	return floor, entry.Revision(), nil
}

// createJoint creates the joint fold's consumer for slots, delivering from
// journal sequence from; one another process created first is kept.
func (e *Engine) createJoint(ctx context.Context, slots []*slot, from uint64) (jetstream.Consumer, error) {
	cfg := projectorConsumerConfig(jointDurable(slots), "billfold joint fold: every projection", from)
	c, err := e.js.CreateConsumer(ctx, domain.JournalStream, cfg)
	if errors.Is(err, jetstream.ErrConsumerExists) {
		c, err = e.js.Consumer(ctx, domain.JournalStream, cfg.Durable)
	}
	if err != nil {
		return nil, domain.Wrap(domain.CodeStoreUnavailable, err, "joint fold consumer")
	}
	return c, nil
}

// merge creates the joint consumer from the event after the lowest of the
// split consumers' acknowledgement floors, when none is held and each is
// within mergeBelow of the journal's end, then deletes them; merged says it
// did.
func (e *Engine) merge(ctx context.Context, slots []*slot) (merged bool, err error) {
	floors := make([]uint64, len(slots))
	for i, s := range slots {
		c, err := e.js.Consumer(ctx, domain.JournalStream, s.projector.Durable())
		if err != nil {
			return false, nil // a consumer still to be created, or the server busy: later
		}
		info, err := c.Info(ctx)
		if err != nil || info.NumPending+uint64(info.NumAckPending) >= mergeBelow {
			return false, nil
		}
		floors[i] = info.AckFloor.Stream
	}
	from := slices.Min(floors) + 1
	if _, err := e.createJoint(ctx, slots, from); err != nil {
		return false, err
	}
	for i, s := range slots {
		if err := e.recordPosition(ctx, s.gen, floors[i]); err != nil {
			return false, err // the own consumers stay: the next merge deletes them
		}
		_ = e.js.DeleteConsumer(ctx, domain.JournalStream, s.projector.Durable())
	}
	e.opts.Log.Info("projections fold jointly again", "from", from)
	return true, nil
}

// foldSplit runs the projector of every slot not held, each on its own
// consumer, until the state changes, a consumer is deleted, or the
// projections can fold jointly again.
func (e *Engine) foldSplit(ctx context.Context, slots []*slot, held map[string]bool, switched <-chan struct{}) error {
	sctx, stop := context.WithCancel(ctx)
	gone := make(chan error, len(slots))
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop()
	for _, s := range slots {
		if !held[s.gen.Projection] {
			wg.Go(func() {
				if err := s.projector.Run(sctx); err != nil {
					gone <- err
				}
			})
		}
	}
	t := time.NewTicker(mergeCheck)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-switched:
			return nil
		case err := <-gone:
			return err
		case <-t.C:
			if len(held) > 0 {
				continue
			}
			if merged, err := e.merge(ctx, slots); merged || err != nil {
				return err
			}
		}
	}
}

// foldJointly folds every slot from the joint consumer until the state
// changes, the consumer is deleted, or ctx ends. It deletes no consumer:
// a projector's own consumer a merge left behind (its process stopped
// before it deleted them) may be another process's split in progress, and
// is reused by the next split (from its own, lower, position) and deleted
// by the next merge.
func (e *Engine) foldJointly(ctx context.Context, joint jetstream.Consumer, slots []*slot, switched <-chan struct{}) error {
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		select {
		case <-switched:
			stop()
		case <-sctx.Done():
		}
	}()
	err := jsio.ConsumeBatches(sctx, joint, DefaultBatch, func(msgs []jetstream.Msg) error {
		e.foldTogether(sctx, slots, msgs)
		return nil
	})
	if consumerGone(err) {
		return errConsumerGone
	}
	return err
}

// foldTogether folds a batch into every slot at once, each projection in
// its own burst, then acknowledges each event once, or hands it back once
// if any projection could not store it (the others fold it again, to no
// effect, on its next delivery).
func (e *Engine) foldTogether(ctx context.Context, slots []*slot, msgs []jetstream.Msg) {
	backs := make([][]error, len(slots))
	done := make([]bool, len(slots))
	var wg sync.WaitGroup
	for i, s := range slots {
		backs[i] = make([]error, len(msgs))
		wg.Go(func() { done[i] = s.projector.foldBatch(ctx, msgs, backs[i]) })
	}
	wg.Wait()
	if slices.Contains(done, false) {
		return // ctx ended: the batch is delivered again
	}
	back := backs[0]
	for _, b := range backs[1:] {
		for i, cause := range b {
			if back[i] == nil {
				back[i] = cause
			}
		}
	}
	settle(msgs, back, slots[0].projector.retry, e.opts.Log)
}

// consumerGone reports whether err says the consumer a fold pulled from was
// deleted.
func consumerGone(err error) bool {
	return errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound)
}

// Position is the journal sequence up to which projection's generation has
// folded every event (FoldPositions).
func (e *Engine) Position(ctx context.Context, projection string, generation int) (uint64, error) {
	known, err := FoldPositions(ctx, e.js, map[string]int{projection: generation})
	return known[projection].Folded, err
}

// holdsOf lists the projections in held, for a log line.
func holdsOf(held map[string]bool) []string { return slices.Sorted(maps.Keys(held)) }
