package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// benchIngest measures verified deliveries per second over loopback HTTP at
// --concurrency and their ACK latency, beside the two ceilings measured
// with the same payloads in the same run: a bare net/http handler that
// reads the body and answers 200, and synchronous JetStream publishes to a
// scratch stream. Then it delivers half as many again, paced at half the
// rate it reached, for the ACK latency the target is stated at.
func benchIngest(ctx context.Context, b *benchRun) ([]benchRow, error) {
	o := b.o
	work := workload(b.runID+"i", o.events, o.customers, time.Now())
	httpCeiling, err := b.httpCeiling(work)
	if err != nil {
		return nil, err
	}
	appendCeiling, err := b.appendCeiling(ctx, work)
	if err != nil {
		return nil, err
	}
	full := b.deliver("ingest", work, 0)
	if full.failed > 0 {
		return nil, fmt.Errorf("%d of %d deliveries were not accepted: %v", full.failed, len(work), full.err)
	}
	// The projectors fold the backlog of the full-rate run; let them finish
	// so that the paced run meets the server as a steady stream would.
	if err := b.settle(ctx); err != nil {
		return nil, err
	}
	half := b.deliver("ingest at half rate", workload(b.runID+"h", max(o.events/2, 1), o.customers, time.Now()), full.rate/2)
	if half.failed > 0 {
		return nil, fmt.Errorf("%d of %d paced deliveries were not accepted: %v", half.failed, len(half.lat), half.err)
	}
	const bare = "bare net/http handler, same payloads and concurrency"
	rate := benchRow{Figure: "verified deliveries", Unit: "/s", Value: full.rate}
	return []benchRow{
		rate.withLimit(appendCeiling.rate, "synchronous JetStream publishes of the same payloads, same concurrency").
			withTarget(">= 50% of durable append, >= 10,000/s", full.rate >= appendCeiling.rate/2 && full.rate >= 10000),
		benchRow{Figure: "verified deliveries vs bare HTTP", Unit: "/s", Value: full.rate}.withLimit(httpCeiling.rate, bare),
		{Figure: "ACK p50 at full rate", Unit: "ms", Value: full.lat.p(50)},
		{Figure: "ACK p95 at full rate", Unit: "ms", Value: full.lat.p(95)},
		benchRow{Figure: "ACK p99 at full rate", Unit: "ms", Value: full.lat.p(99)}.withLimit(httpCeiling.lat.p(99), bare),
		benchRow{Figure: "ACK p99 at half rate", Unit: "ms", Value: half.lat.p(99),
			Note: fmt.Sprintf("%.0f deliveries/s offered", full.rate/2)}.withTarget("< 25 ms", half.lat.p(99) < 25),
	}, nil
}

// deliver posts work to billfold from --concurrency senders, paced at rate
// when rate > 0, and counts every answer but 200 as failed.
func (b *benchRun) deliver(label string, work []delivery, rate float64) measured {
	return b.post(label, b.public, work, rate)
}

func (b *benchRun) post(label, base string, work []delivery, rate float64) measured {
	return measure(label, len(work), b.o.concurrency, rate, b.stderr, func(i int) error {
		resp, err := b.client.Do(work[i].request(base, time.Now()))
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("delivery %s: %s", work[i].id, resp.Status)
		}
		return nil
	})
}

// httpCeiling is a bare net/http handler that reads the body and answers
// 200, sent the same signed requests: what this machine's HTTP stack and
// the bench's own client allow.
func (b *benchRun) httpCeiling(work []delivery) (measured, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return measured{}, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusOK)
	})}
	go func() { _ = srv.Serve(l) }()
	defer srv.Close()
	return b.post("HTTP ceiling", "http://"+l.Addr().String(), work, 0), nil
}

// appendCeiling publishes the same payloads synchronously to a scratch
// stream, each on its own subject as the journal does, from --concurrency
// publishers: what JetStream allows for a durable append on this machine.
func (b *benchRun) appendCeiling(ctx context.Context, work []delivery) (measured, error) {
	name := "BILLFOLD_BENCH_CEILING_" + b.runID
	if _, err := b.js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{"billfold.bench." + b.runID + ".>"}, Storage: jetstream.FileStorage}); err != nil {
		return measured{}, err
	}
	defer func() { _ = b.js.DeleteStream(context.WithoutCancel(ctx), name) }()
	m := measure("durable append ceiling", len(work), b.o.concurrency, 0, b.stderr, func(i int) error {
		_, err := b.js.Publish(ctx, "billfold.bench."+b.runID+"."+work[i].id, work[i].body)
		return err
	})
	if m.failed > 0 {
		return m, fmt.Errorf("durable append ceiling: %d publishes failed: %v", m.failed, m.err)
	}
	return m, nil
}
