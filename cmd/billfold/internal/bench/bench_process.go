package bench

import (
	"bufio"
	"os"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// processSampler watches the whole bench process (engine, embedded NATS
// server, query indexes and the bench's own clients) while a phase runs:
// its peak resident memory, sampled every 50 ms, and the share of CPU time
// the garbage collector took, from the runtime's own CPU accounting.
type processSampler struct {
	peak        atomic.Int64
	stop, done  chan struct{}
	gc0, total0 float64
	// profile, when set, is rewritten with a heap profile each time the
	// resident memory passes the last profiled peak by 128 MiB, so that
	// it ends holding the heap near the phase's peak.
	profile string
}

// processFigures is what a processSampler saw.
type processFigures struct {
	PeakRSS int64   // bytes
	GCShare float64 // 0..1 of all CPU time the Go runtime accounted
}

// startProcessSampler starts sampling, with a heap profile at the peak
// written to profile when it is not ""; call finish once, at the end of
// what is measured.
func startProcessSampler(profile string) *processSampler {
	s := &processSampler{stop: make(chan struct{}), done: make(chan struct{}), profile: profile}
	s.gc0, s.total0 = cpuSeconds()
	go func() {
		defer close(s.done)
		var profiled int64
		for {
			if rss := residentBytes(); rss > s.peak.Load() {
				s.peak.Store(rss)
				if s.profile != "" && rss > profiled+128<<20 {
					profiled = rss
					_ = writePeakProfile(s.profile)
				}
			}
			select {
			case <-s.stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	return s
}

// finish stops sampling and returns the figures since start.
func (s *processSampler) finish() processFigures {
	close(s.stop)
	<-s.done
	return s.figures()
}

func (s *processSampler) figures() processFigures {
	gc, total := cpuSeconds()
	f := processFigures{PeakRSS: s.peak.Load()}
	if d := total - s.total0; d > 0 {
		f.GCShare = (gc - s.gc0) / d
	}
	return f
}

// split returns the peak resident memory so far and starts a new peak
// from the resident memory now, so that one phase can report the peak of
// its set-up apart from the peak of what it measures; the GC share stays
// over the whole phase.
func (s *processSampler) split() int64 {
	return s.peak.Swap(residentBytes())
}

// writePeakProfile writes the heap as of the last garbage collection,
// without forcing one (that would change the peak being looked at).
func writePeakProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return pprof.Lookup("heap").WriteTo(f, 0)
}

// cpuSeconds is the CPU time the garbage collector and the whole Go
// runtime have used so far, by runtime/metrics.
func cpuSeconds() (gc, total float64) {
	samples := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}, {Name: "/cpu/classes/total:cpu-seconds"}}
	metrics.Read(samples)
	if samples[0].Value.Kind() == metrics.KindFloat64 {
		gc = samples[0].Value.Float64()
	}
	if samples[1].Value.Kind() == metrics.KindFloat64 {
		total = samples[1].Value.Float64()
	}
	return gc, total
}

// residentBytes is this process's resident set size, 0 where /proc is
// not available.
func residentBytes() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
