package doctor

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest"
	"github.com/billfold/billfold/projections"
)

// streamReports reads every stream billfold owns.
func (d *Doctor) streamReports(ctx context.Context, rep *Report) []streamReport {
	type named struct{ name, role string }
	list := []named{
		{domain.JournalStream, "journal"},
		{domain.DeliveryStream, "delivery log"},
		{domain.DeadLetterStream, "dead letters"},
		{domain.ChangesStream, "change feed"},
	}
	for _, p := range domain.Projections {
		if s := d.engine.Store(p); s != nil {
			list = append(list, named{domain.BucketStream(s.Bucket()), "projection " + p})
		}
	}
	out := make([]streamReport, 0, len(list))
	for _, n := range list {
		sr := streamReport{Name: n.name, Role: n.role}
		code := domain.CodeStoreUnavailable
		if n.name == domain.JournalStream || n.name == domain.DeliveryStream {
			code = domain.CodeJournalUnavailable
		}
		info, err := streamInfo(ctx, d.js, n.name)
		if err != nil {
			sr.Error = err.Error()
			rep.Problems = append(rep.Problems, newProblem(code, "stream %s (%s) cannot be read: %v", n.name, n.role, err))
			out = append(out, sr)
			continue
		}
		sr.Messages, sr.Bytes, sr.Replicas = info.State.Msgs, info.State.Bytes, info.Config.Replicas
		sr.Healthy = true
		if ci := info.Cluster; ci != nil {
			sr.Cluster, sr.Leader = ci.Name, ci.Leader
			for _, p := range ci.Replicas {
				sr.Peers = append(sr.Peers, peerReport{Name: p.Name, Current: p.Current, Offline: p.Offline, Lag: p.Lag})
				if p.Offline || !p.Current {
					sr.Healthy = false
					rep.Problems = append(rep.Problems, newProblem(code, "stream %s (%s): replica %s is %s", n.name, n.role, p.Name, peerState(p)))
				}
			}
			if ci.Leader == "" && sr.Replicas > 1 {
				sr.Healthy = false
				rep.Problems = append(rep.Problems, newProblem(code, "stream %s (%s) has no leader: writes to it fail until a quorum of its %d replicas is back", n.name, n.role, sr.Replicas))
			}
		}
		out = append(out, sr)
	}
	return out
}

func peerState(p *jetstream.PeerInfo) string {
	if p.Offline {
		return "offline"
	}
	return fmt.Sprintf("behind the leader by %d operations", p.Lag)
}

func streamInfo(ctx context.Context, js jetstream.JetStream, name string) (*jetstream.StreamInfo, error) {
	s, err := js.Stream(ctx, name)
	if err != nil {
		return nil, err
	}
	return s.Info(ctx)
}

// projectionReports reads each projector's lag (Engine.Lag) and calls a
// projector stalled when it has events to fold but acknowledged nothing
// for stalledAfter, measured on the server's clock so skew cannot fake it.
func (d *Doctor) projectionReports(ctx context.Context, rep *Report) []projectionReport {
	lag, err := d.engine.Lag(ctx)
	if err != nil {
		rep.Problems = append(rep.Problems, newProblem(domain.CodeStoreUnavailable, "projector lag cannot be read: %v", err))
	}
	byProjection := map[string]int{}
	for _, g := range rep.DeadLetters.ByCode {
		for p, n := range g.Projections {
			byProjection[p] += n
		}
	}
	paused := map[string]*projections.Pause{}
	for _, p := range d.engine.Paused() {
		paused[p.Projection] = &p
	}
	out := make([]projectionReport, 0, len(domain.Projections))
	for _, name := range domain.Projections {
		pr := projectionReport{Name: name, Lag: lag[name], DeadLetters: byProjection[name], Paused: paused[name]}
		if s := d.engine.Store(name); s != nil {
			pr.Bucket = s.Bucket()
		}
		gen := d.engine.Generation(name).Number
		if known, err := projections.FoldPositions(ctx, d.js, map[string]int{name: gen}); err == nil && len(known[name].Consumers) > 0 {
			ci := known[name].Consumers[0]
			pr.LastAckedAt = ci.AckFloor.Last
			if pr.Paused == nil && pr.Lag > 0 && !ci.TimeStamp.IsZero() && (ci.AckFloor.Last == nil || ci.TimeStamp.Sub(*ci.AckFloor.Last) > stalledAfter) {
				rep.Problems = append(rep.Problems, newProblem(domain.CodeStoreUnavailable,
					"projector %s has %d events to fold and acknowledged none for over %s: it is stalled (check its log lines and the KV bucket %s)", name, pr.Lag, stalledAfter, pr.Bucket))
			}
		}
		out = append(out, pr)
	}
	return out
}

// deadLetters counts the open dead letters and groups them by code, one
// problem line per code naming the newest. It reads the query's index of
// open dead letters (one dead letter per code), however many are open.
func (d *Doctor) deadLetters(ctx context.Context, rep *Report) deadLetterReport {
	dl := deadLetterReport{ByCode: []deadLetterGroup{}}
	codes, err := d.query.OpenDeadLetterCodes(ctx)
	if err != nil {
		return dl // the streams section reports the unreadable stream
	}
	for _, c := range codes {
		l := c.Newest
		// The message often repeats the code it is grouped under.
		g := deadLetterGroup{Code: c.Code, Count: c.Count, Projections: c.Projections,
			LastMessage: strings.TrimPrefix(l.Message, string(c.Code)+": "), LastEventID: l.EventID, LastProvider: d.shownName(l.Namespace)}
		dl.Count += g.Count
		dl.ByCode = append(dl.ByCode, g)
		rep.Problems = append(rep.Problems, newProblem(g.Code, "%s (%s); newest: %s %s: %s",
			plural(g.Count, "dead letter"), countsText(g.Projections), g.LastProvider, g.LastEventID, g.LastMessage))
	}
	return dl
}

// deliveries reads the newest delivery log entries of the window: outcome
// counts, failures by reason code with their likely cause, and the last
// deliveries per endpoint.
func (d *Doctor) deliveries(ctx context.Context, rep *Report) deliveryReport {
	since := d.now().Add(-doctorWindow).UTC()
	dr := deliveryReport{Since: since, Limit: doctorMaxDeliveries, Outcome: map[domain.Outcome]int{},
		SignatureFailures: []failureGroup{}, OtherFailures: []failureGroup{}, Last: map[string][]deliveryLine{}}
	sig, other := map[domain.Code]*failureGroup{}, map[domain.Code]*failureGroup{}
	if c, err := d.js.Consumer(ctx, domain.JournalStream, ingest.DeliveryLogDurable); err == nil {
		if ci, err := c.Info(ctx); err == nil {
			dr.AcceptedPending = ci.NumPending + uint64(ci.NumAckPending)
		}
	}
	page, err := d.deliveryLog.Newest(ctx, 0, doctorMaxDeliveries)
	dr.Scanned = page.Read
	if err != nil {
		// The streams section names the code; this says what failed.
		if cause := errors.Unwrap(err); cause != nil {
			err = cause
		}
		dr.Error = err.Error()
		return dr
	}
	for i := len(page.Entries) - 1; i >= 0; i-- { // oldest first
		del := page.Entries[i].Delivery
		if del.Received.Before(since) {
			continue
		}
		del.Endpoint = d.shownName(del.Endpoint)
		dr.Outcome[del.Outcome]++
		last := append(dr.Last[del.Endpoint], deliveryLine{
			Received: del.Received, EventID: del.EventID, EventType: del.EventType, Outcome: del.Outcome,
			Status: del.Status, Code: del.ReasonCode, Attempt: del.Attempt,
		})
		dr.Last[del.Endpoint] = last[max(0, len(last)-doctorLastDeliveries):]
		groups := other
		switch del.Outcome {
		case domain.OutcomeAccepted, domain.OutcomeDuplicate:
			continue
		case domain.OutcomeRejected:
			groups = sig
		}
		g := groups[del.ReasonCode]
		if g == nil {
			g = &failureGroup{Code: del.ReasonCode, Endpoints: map[string]int{}, LikelyCause: likelyCauses[del.ReasonCode]}
			groups[del.ReasonCode] = g
		}
		g.Count++
		g.Endpoints[del.Endpoint]++
		if !del.Received.Before(g.LastAt) {
			g.LastAt, g.LastReason = del.Received, del.Reason
		}
	}
	for _, l := range dr.Last {
		slices.Reverse(l) // newest first
	}
	flatten := func(groups map[domain.Code]*failureGroup, what string) []failureGroup {
		out := make([]failureGroup, 0, len(groups))
		for _, g := range groups {
			out = append(out, *g)
		}
		slices.SortFunc(out, func(a, b failureGroup) int {
			return cmp.Or(b.Count-a.Count, strings.Compare(string(a.Code), string(b.Code)))
		})
		for _, g := range out {
			msg := fmt.Sprintf("%s %s in the last %d hours (%s)", plural(g.Count, "delivery"), what, int(doctorWindow.Hours()), countsText(g.Endpoints))
			if g.LikelyCause != "" {
				msg += ": likely " + g.LikelyCause
			}
			rep.Problems = append(rep.Problems, newProblem(g.Code, "%s", msg))
		}
		return out
	}
	dr.SignatureFailures = flatten(sig, "failed signature verification")
	dr.OtherFailures = flatten(other, "not journaled")
	return dr
}

// plural is "1 delivery", "2 deliveries", "3 dead letters".
func plural(n int, noun string) string {
	switch {
	case n == 1:
	case strings.HasSuffix(noun, "y"):
		noun = strings.TrimSuffix(noun, "y") + "ies"
	default:
		noun += "s"
	}
	return fmt.Sprintf("%d %s", n, noun)
}

// countsText is "a 3, b 1", by name.
func countsText(m map[string]int) string {
	parts := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}
