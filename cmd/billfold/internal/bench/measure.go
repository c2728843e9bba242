package bench

import (
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/billfold/billfold/cmd/billfold/internal/cli"
)

// settleTimeout bounds settle. A quiet two-core machine relays a million
// records to the change feed in about two minutes; one shared with other
// heavy processes was measured at 500 records/s (over 15 minutes for the
// 1,000,000-subscription queries phase).
var settleTimeout = 45 * time.Minute

// settle waits until every projector and change relay has caught up, so
// that a phase measures its own work and not the backlog of the one
// before.
func (b *benchRun) settle(ctx context.Context) error {
	if b.paused {
		return nil
	}
	ec := b.engineConsumers(ctx)
	return b.waitCaughtUp(ctx, append(ec.projectors, ec.relays...), "catching up (projectors, feed relays)", 100*time.Millisecond)
}

// waitCaughtUp polls consumers every poll until none has a message pending
// or unacknowledged, with a progress bar labelled label.
func (b *benchRun) waitCaughtUp(ctx context.Context, consumers [][2]string, label string, poll time.Duration) error {
	var bar *progressbar.ProgressBar
	defer func() {
		if bar != nil {
			_ = bar.Finish()
		}
	}()
	deadline := time.Now().Add(settleTimeout)
	for {
		pending, behind, err := b.behind(ctx, consumers)
		if err != nil {
			return err
		}
		if pending == 0 {
			return nil
		}
		if bar == nil {
			bar = cli.NewBar(int(pending), label, b.stderr)
		}
		_ = bar.Set(max(bar.GetMax()-int(pending), 0))
		if time.Now().After(deadline) {
			return fmt.Errorf("still behind after %s: %s", settleTimeout, strings.Join(behind, "; "))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(poll):
		}
	}
}

// behind reports the messages consumers (stream, durable) have pending or
// unacknowledged, in all and per consumer that has any.
func (b *benchRun) behind(ctx context.Context, consumers [][2]string) (pending uint64, behind []string, err error) {
	for _, c := range consumers {
		cons, err := b.js.Consumer(ctx, c[0], c[1])
		if err != nil {
			return 0, nil, fmt.Errorf("consumer %s: %w", c[1], err)
		}
		info, err := cons.Info(ctx)
		if err != nil {
			return 0, nil, err
		}
		if n := info.NumPending + uint64(info.NumAckPending); n > 0 {
			pending += n
			behind = append(behind, fmt.Sprintf("%s %d pending, %d unacknowledged, %d waiting pulls", c[1], info.NumPending, info.NumAckPending, info.NumWaiting))
		}
	}
	return pending, behind, nil
}

// latencies are the durations of one measurement, sortable once.
type latencies []time.Duration

// p returns the q-th percentile in milliseconds (nearest rank).
func (l latencies) p(q float64) float64 {
	if len(l) == 0 {
		return 0
	}
	s := slices.Clone(l)
	slices.Sort(s)
	i := int(math.Ceil(float64(len(s))*q/100)) - 1
	return float64(s[min(max(i, 0), len(s)-1)].Nanoseconds()) / 1e6
}

// measured is a measurement's throughput and latencies.
type measured struct {
	rate   float64
	lat    latencies
	failed int
	err    error // the first failure
}

// measure runs do(i) for i in [0, n) from concurrency workers and times
// each call. With rate > 0 the calls are paced to start at most rate per
// second in all (an open loop: a late call does not delay the next
// schedule slot). A non-nil error from do counts as failed.
func measure(label string, n, concurrency int, rate float64, stderr io.Writer, do func(i int) error) measured {
	bar := cli.NewBar(n, label, stderr)
	defer func() { _ = bar.Finish() }()
	var next atomic.Int64
	var failed atomic.Int64
	var firstErr atomic.Value
	lat := make(latencies, n)
	start := time.Now()
	var wg sync.WaitGroup
	for range concurrency {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if rate > 0 {
					if wait := time.Until(start.Add(time.Duration(float64(i) / rate * float64(time.Second)))); wait > 0 {
						time.Sleep(wait)
					}
				}
				t0 := time.Now()
				if err := do(i); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
				lat[i] = time.Since(t0)
				_ = bar.Add(1)
			}
		})
	}
	wg.Wait()
	m := measured{rate: float64(n) / time.Since(start).Seconds(), lat: lat, failed: int(failed.Load())}
	if err, ok := firstErr.Load().(error); ok {
		m.err = err
	}
	return m
}

// get fetches path from the admin listener and discards the body; a
// non-200 answer is an error.
func (b *benchRun) get(path string) error {
	_, err := b.getBody(path, io.Discard)
	return err
}

// getBody fetches path from the admin listener into w.
func (b *benchRun) getBody(path string, w io.Writer) (int64, error) {
	req, _ := http.NewRequest(http.MethodGet, b.admin+path, nil)
	if b.token != "" {
		req.Header.Set("Authorization", "Bearer "+b.token)
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		// The API error's code says which resource refused.
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return 0, fmt.Errorf("GET %s: %s: %s", path, resp.Status, strings.Join(strings.Fields(string(body)), " "))
	}
	return io.Copy(w, resp.Body)
}

func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func waitReady(url string, served <-chan error) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-served:
			return fmt.Errorf("server stopped: %v", err)
		default:
		}
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("server not ready in 60s")
}
