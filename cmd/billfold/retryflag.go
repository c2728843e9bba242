package main

import (
	"strings"
	"time"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/projections"
)

// retrySchedule is --retry-schedule: the waits before each scheduled retry
// of a transiently failed event, comma-separated Go durations ("1m,5m"),
// or "none". Unset, it is projections.DefaultRetrySchedule.
type retrySchedule struct {
	set   bool
	waits []time.Duration
}

func (r *retrySchedule) String() string {
	waits := projections.DefaultRetrySchedule
	if r.set {
		waits = r.waits
	}
	if len(waits) == 0 {
		return "none"
	}
	parts := make([]string, len(waits))
	for i, w := range waits {
		parts[i] = w.String()
	}
	return strings.Join(parts, ",")
}

func (r *retrySchedule) Set(v string) error {
	r.set, r.waits = true, []time.Duration{}
	if strings.TrimSpace(v) == "none" {
		return nil
	}
	for _, s := range strings.Split(v, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil || d <= 0 {
			return domain.Errorf(domain.CodeConfigInvalid, "--retry-schedule %q: want positive durations separated by commas (1m,5m,30m) or none", v)
		}
		r.waits = append(r.waits, d)
	}
	return nil
}

// schedule is the engine's RetrySchedule: nil (the default) when unset.
func (r *retrySchedule) schedule() []time.Duration {
	if !r.set {
		return nil
	}
	return r.waits
}
