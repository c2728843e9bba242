package ledger

import (
	"context"
	"encoding/json"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/projections/jsio"
)

// DeliveryLog is the one reader of the delivery log (BILLFOLD_DELIVERIES,
// written by ingest's DeliveryLog): the ledger reads an event's deliveries
// and the list by outcome through it, the console its deliveries page and
// overview, and billfold doctor its recent failures. Every read is made
// with direct gets, so none leaves a consumer on the server.
type DeliveryLog struct {
	js jetstream.JetStream
}

// NewDeliveryLog returns the delivery log's reader over js.
func NewDeliveryLog(js jetstream.JetStream) *DeliveryLog { return &DeliveryLog{js: js} }

// DeliverySummary counts an event's deliveries.
type DeliverySummary struct {
	Count       int               `json:"count"`
	Duplicates  int               `json:"duplicates"`
	LastOutcome domain.Outcome    `json:"last_outcome,omitempty"`
	Deliveries  []domain.Delivery `json:"deliveries"`
}

// OfEvent summarizes the deliveries of event id in namespace: the counts
// from the stream's per-subject index, and the last MaxLedgerDeliveries
// entries read with direct gets (no consumer: a lookup storm must not
// exhaust the stream's consumers), their attempts numbered by receipt time
// after the ones before them.
func (l *DeliveryLog) OfEvent(ctx context.Context, namespace, id string) (DeliverySummary, error) {
	subject := domain.DeliverySubject(namespace, id)
	sum := DeliverySummary{Deliveries: []domain.Delivery{}}
	count, err := jsio.CountOnSubject(ctx, l.js, domain.DeliveryStream, subject)
	if err != nil || count == 0 {
		return sum, err
	}
	var from uint64
	skipped := 0
	if skip := count - MaxLedgerDeliveries; skip > 0 {
		_, last, err := jsio.EachOnSubject(ctx, l.js, domain.DeliveryStream, subject, 0, skip, func(m *jetstream.RawStreamMsg) {
			var d domain.Delivery
			if json.Unmarshal(m.Data, &d) == nil && d.Outcome == domain.OutcomeDuplicate {
				sum.Duplicates++
			}
		})
		if err != nil {
			return sum, err
		}
		from, skipped = last+1, skip
	}
	var recent []domain.Delivery
	_, _, err = jsio.EachOnSubject(ctx, l.js, domain.DeliveryStream, subject, from, MaxLedgerDeliveries, func(m *jetstream.RawStreamMsg) {
		var d domain.Delivery
		if json.Unmarshal(m.Data, &d) == nil {
			recent = append(recent, d)
		}
	})
	read := len(recent)
	recent = domain.NumberAttempts(recent) // drops a rewritten copy of an accepted entry
	for i := range recent {
		recent[i].Attempt += skipped
		if recent[i].Outcome == domain.OutcomeDuplicate {
			sum.Duplicates++
		}
		sum.LastOutcome = recent[i].Outcome
	}
	sum.Deliveries = recent
	sum.Count = count - (read - len(recent))
	return sum, err
}

// Since calls fn with every entry received at or after since (zero: every
// entry), oldest first. It reads with an ordered consumer it deletes when
// done.
func (l *DeliveryLog) Since(ctx context.Context, since time.Time, fn func(*domain.Delivery)) error {
	cfg := jetstream.OrderedConsumerConfig{}
	if !since.IsZero() {
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &since
	}
	return jsio.OrderedRead(ctx, l.js, domain.DeliveryStream, cfg, domain.CodeJournalUnavailable, func(m jetstream.Msg) {
		var d domain.Delivery
		if json.Unmarshal(m.Data(), &d) == nil {
			fn(&d)
		}
	})
}

// DeliveryEntry is one delivery log entry and its stream sequence.
type DeliveryEntry struct {
	Seq uint64
	domain.Delivery
}

// DeliveryPage is a run of the newest delivery log entries before a
// position.
type DeliveryPage struct {
	// Entries are newest first.
	Entries []DeliveryEntry
	// Read is how many messages the page read, entries that did not decode
	// included.
	Read int
	// Older is the before of the next older page; 0 when none is left.
	Older uint64
}

// Newest reads at most n entries before sequence before (0: from the
// newest), in one batched direct get per jsio.RangeBatch entries. Entries
// appended while it reads are left for the next read.
func (l *DeliveryLog) Newest(ctx context.Context, before uint64, n int) (DeliveryPage, error) {
	var page DeliveryPage
	s, err := l.js.Stream(ctx, domain.DeliveryStream)
	if err != nil {
		return page, domain.Wrap(domain.CodeJournalUnavailable, err, "delivery log")
	}
	info, err := s.Info(ctx)
	if err != nil {
		return page, domain.Wrap(domain.CodeJournalUnavailable, err, "delivery log")
	}
	first, end := info.State.FirstSeq, info.State.LastSeq
	if before > 0 && before-1 < end {
		end = before - 1
	}
	if end == 0 || end < first || n <= 0 {
		return page, nil
	}
	start := first
	if end-first+1 > uint64(n) {
		start = end - uint64(n) + 1
	}
	page.Read, err = jsio.Range(ctx, l.js.Conn(), domain.DeliveryStream, start, end, func(seq uint64, m *nats.Msg) {
		var d domain.Delivery
		if json.Unmarshal(m.Data, &d) == nil {
			page.Entries = append(page.Entries, DeliveryEntry{Seq: seq, Delivery: d})
		}
	})
	if err != nil {
		return DeliveryPage{}, domain.Wrap(domain.CodeJournalUnavailable, err, "delivery log")
	}
	slices.Reverse(page.Entries)
	if start > first {
		page.Older = start
	}
	return page, nil
}
