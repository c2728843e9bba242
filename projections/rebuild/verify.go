package rebuild

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/projections"
	"github.com/billfold/billfold/projections/jsio"
	"github.com/billfold/billfold/projections/kvstore"
	"github.com/billfold/billfold/reducers"
)

// VerifyReport compares live projections with a clean fold of the journal.
type VerifyReport struct {
	// JournalHead is the journal sequence the clean fold read up to.
	JournalHead uint64 `json:"journal_head"`
	// Identical is true when no record differs.
	Identical   bool                        `json:"identical"`
	Projections map[string]VerifyProjection `json:"projections"`
	// Differences lists differing records, at most MaxVerifyDifferences.
	Differences []Difference `json:"differences"`
}

// VerifyProjection is one projection's part of a VerifyReport.
type VerifyProjection struct {
	Generation  int `json:"generation"`
	Records     int `json:"records"`
	Differences int `json:"differences"`
	// Moved counts records a live event after JournalHead changed while
	// verify ran: not compared.
	Moved int `json:"moved"`
}

// Difference is one record that differs between the live projection and
// the clean fold.
type Difference struct {
	Projection string `json:"projection"`
	Key        string `json:"key"`
	// Kind is "missing" (the fold has it, live does not), "unexpected"
	// (live has it, the fold does not) or "differs".
	Kind   string      `json:"kind"`
	Fields []FieldDiff `json:"fields,omitempty"`
}

// FieldDiff is one differing field of a record, by its JSON path.
type FieldDiff struct {
	Path     string          `json:"path"`
	Live     json.RawMessage `json:"live"`
	Expected json.RawMessage `json:"expected"`
}

// MaxVerifyDifferences bounds the differences a report lists; the counts
// cover all of them.
const MaxVerifyDifferences = 1000

// Verify folds the journal afresh into memory and compares every record
// with the current generation of projections (all when empty). It first
// waits, at most 30 s, for the projectors to catch up, so that a quiet
// system compares equal; records a live event changed after the fold's
// journal head are counted as moved, not compared.
func Verify(ctx context.Context, e Engine, names []string) (VerifyReport, error) {
	return verify(ctx, e, names, nil)
}

// verify is Verify, telling progress (when not nil) the journal head the
// fold reads up to, then each event it folded.
func verify(ctx context.Context, e Engine, names []string, progress func(folded, head uint64)) (VerifyReport, error) {
	if len(names) == 0 {
		names = e.Projections()
	}
	var projs []reducers.Projection
	for _, n := range names {
		p := e.Projection(n)
		if p == nil {
			return VerifyReport{}, domain.Errorf(domain.CodeBadRequest, "unknown projection %q", n)
		}
		projs = append(projs, p)
	}
	head, err := waitCaughtUp(ctx, e, names, 30*time.Second)
	if err != nil {
		return VerifyReport{}, err
	}
	fold := newMemoryFold(ctx, projs, nil)
	var counted func(context.Context) error
	if progress != nil {
		folded := uint64(0)
		progress(0, head)
		counted = func(context.Context) error { folded++; progress(folded, head); return nil }
	}
	if err := fold.foldJournal(ctx, e.JetStream(), head, counted); err != nil {
		return VerifyReport{}, err
	}
	rep := VerifyReport{JournalHead: head, Projections: map[string]VerifyProjection{}, Differences: []Difference{}}
	for _, name := range names {
		vp, diffs, err := verifyProjection(ctx, e, name, fold.records[name].mem, head)
		if err != nil {
			return VerifyReport{}, err
		}
		rep.Projections[name] = vp
		for _, d := range diffs {
			if len(rep.Differences) < MaxVerifyDifferences {
				rep.Differences = append(rep.Differences, d)
			}
		}
		delete(fold.records, name)
	}
	rep.Identical = len(rep.Differences) == 0
	return rep, nil
}

// waitCaughtUp waits until the projectors of names have acknowledged the
// journal's head, or until timeout, and returns the head.
func waitCaughtUp(ctx context.Context, e Engine, names []string, timeout time.Duration) (uint64, error) {
	deadline := time.Now().Add(timeout)
	for {
		head, err := projections.JournalHead(ctx, e.JetStream())
		if err != nil {
			return 0, err
		}
		behind := false
		for _, n := range names {
			floor, err := e.Acked(ctx, n)
			if err != nil || floor < head {
				behind = true
			}
		}
		if !behind || time.Now().After(deadline) {
			return head, nil
		}
		jsio.Sleep(ctx, 100*time.Millisecond)
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
	}
}

func verifyProjection(ctx context.Context, e Engine, name string, want foldedRecords, head uint64) (VerifyProjection, []Difference, error) {
	store := e.Store(name)
	vp := VerifyProjection{Generation: store.Generation(), Records: len(want)}
	live, err := bucketValues(ctx, store)
	if err != nil {
		return vp, nil, err
	}
	var diffs []Difference
	for _, key := range slices.Sorted(maps.Keys(keyUnion(want, live))) {
		w, inFold := want[key]
		l, inLive := live[key]
		if inFold && inLive && bytes.Equal(w.value, l) {
			continue
		}
		moved, err := changedAfter(ctx, e, store, key, head)
		if err != nil {
			return vp, nil, err
		}
		if moved {
			vp.Moved++
			continue
		}
		d := Difference{Projection: name, Key: key, Kind: "differs"}
		switch {
		case !inLive:
			d.Kind = "missing"
		case !inFold:
			d.Kind = "unexpected"
		default:
			d.Fields = fieldDiffs(l, w.value)
		}
		diffs = append(diffs, d)
	}
	vp.Differences = len(diffs)
	return vp, diffs, nil
}

func keyUnion(a foldedRecords, b map[string][]byte) map[string]struct{} {
	out := make(map[string]struct{}, len(a))
	for k := range a {
		out[k] = struct{}{}
	}
	for k := range b {
		out[k] = struct{}{}
	}
	return out
}

// bucketValues reads every record a store holds.
func bucketValues(ctx context.Context, s *kvstore.Store) (map[string][]byte, error) {
	out := map[string][]byte{}
	err := s.EachValue(ctx, func(key string, value []byte) { out[key] = value })
	return out, err
}

// changedAfter reports whether the last write of key was caused by a
// journal event after head.
func changedAfter(ctx context.Context, e Engine, s *kvstore.Store, key string, head uint64) (bool, error) {
	stream, err := e.JetStream().Stream(ctx, domain.BucketStream(s.Bucket()))
	if err != nil {
		return false, domain.Wrap(domain.CodeStoreUnavailable, err, "read "+s.Bucket())
	}
	m, err := stream.GetLastMsgForSubject(ctx, "$KV."+s.Bucket()+"."+key)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return false, nil
	}
	if err != nil {
		return false, domain.Wrap(domain.CodeStoreUnavailable, err, "read "+s.Bucket())
	}
	seq, err := strconv.ParseUint(m.Header.Get(kvstore.HeaderJournalSequence), 10, 64)
	return err == nil && seq > head, nil
}

// fieldDiffs lists the JSON paths where live and expected differ.
func fieldDiffs(live, expected []byte) []FieldDiff {
	var l, w any
	if json.Unmarshal(live, &l) != nil || json.Unmarshal(expected, &w) != nil {
		return []FieldDiff{{Path: "$", Live: live, Expected: expected}}
	}
	var out []FieldDiff
	diffValues("$", l, w, &out)
	return out
}

func diffValues(path string, l, w any, out *[]FieldDiff) {
	lm, lok := l.(map[string]any)
	wm, wok := w.(map[string]any)
	if lok && wok {
		keys := map[string]bool{}
		for k := range lm {
			keys[k] = true
		}
		for k := range wm {
			keys[k] = true
		}
		for _, k := range slices.Sorted(maps.Keys(keys)) {
			diffValues(path+"."+k, lm[k], wm[k], out)
		}
		return
	}
	if !reflect.DeepEqual(l, w) {
		lb, _ := json.Marshal(l)
		wb, _ := json.Marshal(w)
		*out = append(*out, FieldDiff{Path: path, Live: lb, Expected: wb})
	}
}
