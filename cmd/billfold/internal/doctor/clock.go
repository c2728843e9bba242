package doctor

import (
	"context"
	"fmt"
	"time"

	"github.com/billfold/billfold/domain"
)

// serverTime reads the NATS server's clock: JetStream stamps every stream
// info answer with the server's time when it gathered it ("ts", added in
// nats-server 2.10 so that tools can compute deltas in the server's
// clock). Reading it writes nothing, so doctor stays read-only.
func (d *Doctor) serverTime(ctx context.Context) (time.Time, error) {
	s, err := d.js.Stream(ctx, domain.JournalStream)
	if err != nil {
		return time.Time{}, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return time.Time{}, err
	}
	if info.TimeStamp.IsZero() {
		return time.Time{}, fmt.Errorf("the NATS server does not report its time (nats-server 2.10 or later does)")
	}
	return info.TimeStamp, nil
}

// clockSample is one reading of the server's clock between two readings
// of billfold's.
type clockSample struct {
	sent, received, server time.Time
}

// estimateSkew is billfold's clock minus the server's, from the sample with
// the shortest round trip (the one the network distorted least), assuming
// the server read its clock half-way through; the uncertainty is half that
// round trip.
func estimateSkew(samples []clockSample) (skew, uncertainty time.Duration, best clockSample) {
	for i, s := range samples {
		if i == 0 || s.received.Sub(s.sent) < best.received.Sub(best.sent) {
			best = s
		}
	}
	rtt := best.received.Sub(best.sent)
	local := best.sent.Add(rtt / 2)
	return local.Sub(best.server), rtt / 2, best
}

// clockSamples is how many times measureClock reads the server's clock.
const clockSamples = 3

// measureClock compares now with the server's clock.
func measureClock(ctx context.Context, now func() time.Time, server func(context.Context) (time.Time, error), threshold time.Duration) clockReport {
	c := clockReport{Method: "JetStream stream info timestamp (server time), best of 3 round trips", ThresholdSeconds: threshold.Seconds()}
	var samples []clockSample
	for range clockSamples {
		sent := now()
		st, err := server(ctx)
		if err != nil {
			c.Error = err.Error()
			return c
		}
		samples = append(samples, clockSample{sent: sent, received: now(), server: st})
	}
	skew, unc, best := estimateSkew(samples)
	c.SkewSeconds, c.UncertaintySeconds = skew.Seconds(), unc.Seconds()
	c.LocalTime, c.ServerTime = best.received.UTC(), best.server.UTC()
	return c
}

// clockProblem is BILLFOLD-CLOCK-SKEW when the skew is past the threshold
// even at the favourable end of its uncertainty.
func clockProblem(c clockReport) *problem {
	if c.Error != "" {
		return nil // reported in the clock section; the streams say why NATS is unreadable
	}
	skew := c.SkewSeconds
	if skew < 0 {
		skew = -skew
	}
	if skew-c.UncertaintySeconds <= c.ThresholdSeconds {
		return nil
	}
	dir := "ahead of"
	if c.SkewSeconds < 0 {
		dir = "behind"
	}
	p := newProblem(domain.CodeClockSkew, "billfold's clock is %.1fs %s the NATS server's (threshold %.1fs): signature timestamps will be judged wrongly; sync both with NTP",
		skew, dir, c.ThresholdSeconds)
	return &p
}
