package gameday

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// metricLine is one sample of the Prometheus text format:
// name{label="value",...} number.
var metricLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)`)

// metricLabel is one label="value" pair.
var metricLabel = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)

// metricSum adds up the samples of metric name in text whose labels
// include every pair of match.
func metricSum(text, name string, match map[string]string) float64 {
	var sum float64
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		m := metricLine.FindStringSubmatch(sc.Text())
		if m == nil || m[1] != name {
			continue
		}
		labels := map[string]string{}
		for _, l := range metricLabel.FindAllStringSubmatch(m[2], -1) {
			labels[l[1]] = l[2]
		}
		ok := true
		for k, v := range match {
			ok = ok && labels[k] == v
		}
		if v, err := strconv.ParseFloat(m[3], 64); ok && err == nil {
			sum += v
		}
	}
	return sum
}

// logSink keeps the engines' JSON log lines for the drills to read, as an
// operator reads the logs.
type logSink struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write implements io.Writer for the engines' log handlers.
func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

// count returns how many log lines have message msg and every attribute
// of attrs.
func (s *logSink) count(msg string, attrs map[string]string) int {
	s.mu.Lock()
	lines := bytes.Split(s.buf.Bytes(), []byte("\n"))
	s.mu.Unlock()
	n := 0
	for _, line := range lines {
		var rec map[string]any
		if json.Unmarshal(line, &rec) != nil || rec["msg"] != msg {
			continue
		}
		ok := true
		for k, v := range attrs {
			ok = ok && fmt.Sprint(rec[k]) == v
		}
		if ok {
			n++
		}
	}
	return n
}

// percentile is the q-quantile (nearest rank) of ds.
func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(float64(len(s))*q)) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// ms is d in milliseconds, to the hundredth.
func ms(d time.Duration) float64 { return roundTo(float64(d)/float64(time.Millisecond), 2) }

// secs is d in seconds, to the millisecond.
func secs(d time.Duration) float64 { return roundTo(d.Seconds(), 3) }

func roundTo(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p)/p + 0 // + 0: no "-0"
}
