package bench

import (
	"context"
	"fmt"
	"syscall"
	"time"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/projections"
	"github.com/billfold/billfold/projections/client"
)

// benchE2E delivers --events deliveries of the onboarding mix (every
// customer new) at full rate from --concurrency senders and reports how
// long until every projection has folded the last one and the change feed
// has relayed its last write, beside the time to acknowledge them, and the
// process's CPU per event. The limits are the same machine's durable
// append (synchronous JetStream publishes of the same payloads) and an
// ordered read of the journal, measured in the same run.
func benchE2E(ctx context.Context, b *benchRun) ([]benchRow, error) {
	o := b.o
	work := onboardingWorkload(b.runID+"e", o.events, time.Now())
	bytes := 0
	for _, d := range work {
		bytes += len(d.body)
	}
	// The senders' own CPU (signing, the HTTP client) runs in this process
	// too: measured against a bare handler, it is taken out of billfold's.
	cpu0 := processCPU()
	if _, err := b.httpCeiling(work); err != nil {
		return nil, err
	}
	senderCPU := processCPU() - cpu0
	appendCeiling, err := b.appendCeiling(ctx, work)
	if err != nil {
		return nil, err
	}

	consumers := b.engineConsumers(ctx)
	countsBefore, err := countMessages(ctx, b.js)
	if err != nil {
		return nil, err
	}
	cpuStart, start := processCPU(), time.Now()
	sent := b.deliver("end to end", work, 0)
	ackTime, cpuAcked := time.Since(start), processCPU()
	if sent.failed > 0 {
		return nil, fmt.Errorf("%d of %d deliveries were not accepted: %v", sent.failed, len(work), sent.err)
	}
	if err := b.waitCaughtUp(ctx, consumers.projectors, "projectors folding", 10*time.Millisecond); err != nil {
		return nil, err
	}
	foldTime, cpuFolded := time.Since(start), processCPU()
	if err := b.waitCaughtUp(ctx, consumers.relays, "feed relays", 10*time.Millisecond); err != nil {
		return nil, err
	}
	feedTime, cpuFed := time.Since(start), processCPU()
	countsAfter, err := countMessages(ctx, b.js)
	if err != nil {
		return nil, err
	}

	readStart, read := time.Now(), 0
	if err := projections.EachJournalEvent(ctx, b.js, func(*domain.Envelope) error { read++; return nil }); err != nil {
		return nil, err
	}
	orderedRead := float64(read) / time.Since(readStart).Seconds()

	n := float64(len(work))
	perEvent := func(d time.Duration) float64 { return float64(d.Microseconds()) / n }
	billfoldCPU := perEvent(cpuFed - cpuStart - senderCPU)
	rate := n / foldTime.Seconds()
	messages, messagesNote := countsAfter.since(countsBefore, n)
	const appendOf = "synchronous JetStream publishes of the same payloads, same concurrency"
	return []benchRow{
		benchRow{Figure: "time to acknowledge every delivery", Unit: "s", Value: ackTime.Seconds(),
			Note: fmt.Sprintf("%d deliveries of the onboarding mix, %.1f KB a body on average, %d senders", len(work), float64(bytes)/n/1000, o.concurrency)}.
			withLimit(n/appendCeiling.rate, appendOf),
		benchRow{Figure: "time until every projection folded the last event", Unit: "s", Value: foldTime.Seconds()}.
			withLimit(ackTime.Seconds(), "the time to acknowledge, same run").
			withTarget("<= 1.25× the time to acknowledge", foldTime.Seconds() <= 1.25*ackTime.Seconds()),
		benchRow{Figure: "events folded per second end to end", Unit: "/s", Value: rate}.
			withLimit(appendCeiling.rate, appendOf).withTarget(">= 10,000/s", rate >= 10_000),
		benchRow{Figure: "time until the change feed relayed the last write", Unit: "s", Value: feedTime.Seconds()},
		benchRow{Figure: "ordered read of the journal", Unit: "/s", Value: orderedRead,
			Note: fmt.Sprintf("%d events, an ordered consumer doing nothing", read)},
		benchRow{Figure: "CPU per event (intake + fold + feed)", Unit: "µs", Value: billfoldCPU,
			Note: fmt.Sprintf("process CPU while acknowledging %.0f µs, then folding %.0f µs, then relaying %.0f µs per event, less the senders' own %.0f µs (measured against a bare handler)",
				perEvent(cpuAcked-cpuStart), perEvent(cpuFolded-cpuAcked), perEvent(cpuFed-cpuFolded), perEvent(senderCPU))}.
			withTarget("<= 100 µs", billfoldCPU <= 100),
		benchRow{Figure: "JetStream messages stored and delivered per event", Unit: "messages", Value: messages, Note: messagesNote},
	}, nil
}

// engineConsumers are the durable consumers of the current generation's
// projectors (on the journal) and change relays (on the buckets).
type engineConsumers struct{ projectors, relays [][2]string }

func (b *benchRun) engineConsumers(ctx context.Context) engineConsumers {
	var c engineConsumers
	gens := map[string]int{}
	for _, p := range domain.Projections {
		g := client.New(b.js).Generation(ctx, p)
		gens[p] = g
		c.relays = append(c.relays, [2]string{domain.BucketStream(domain.ProjectionBucket(p, g)), domain.FeedDurable(p, g)})
	}
	// One joint consumer folds every projection, or one each while they
	// fold split (projections/jointfold.go): the one furthest on for each,
	// each consumer once.
	known, _ := projections.FoldPositions(ctx, b.js, gens)
	seen := map[string]bool{}
	for _, p := range domain.Projections {
		if cs := known[p].Consumers; len(cs) > 0 && !seen[cs[0].Name] {
			seen[cs[0].Name] = true
			c.projectors = append(c.projectors, [2]string{domain.JournalStream, cs[0].Name})
		}
	}
	return c
}

// processCPU is the user and system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
