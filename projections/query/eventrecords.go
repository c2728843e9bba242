package query

import (
	"context"
	"encoding/json"
	"slices"
	"strings"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/projections"
	"github.com/billfold/billfold/reducers"
)

// EventRecord is a record a journal event writes, and what the stored
// record says of it.
type EventRecord struct {
	// Kind is customer, subscription, order or wallet.
	Kind string `json:"kind"`
	// Provider is the record's namespace; "" for a wallet.
	Provider string `json:"provider,omitempty"`
	// ID is the provider's id of the record; a wallet's user id.
	ID string `json:"id"`
	// Changed: the stored record lists the event among those folded into
	// it (its latest event ids). Missing: no such record is stored (the
	// event failed in its projection, or a rebuild has not reached it).
	Changed bool `json:"changed"`
	Missing bool `json:"missing,omitempty"`
}

// recordKindOrder is the order EventRecords are listed in.
var recordKindOrder = []string{domain.KindCustomer, domain.KindSubscription, domain.KindOrder, domain.KindWallet}

// RecordsOf returns the records env writes, in the order customer,
// subscription, order, wallet: each projection that handles env folds it
// alone into empty records (the reducers are pure, so nothing is stored)
// and the records that fold writes are the ones named; the helper entries
// beside them (an order's aliases, a wallet's top-ups) are not records.
// Each is then read from the store (one read each) to say whether it lists
// env. A projection that refuses env (a dead letter) names none, and a
// record env changes only through state earlier events left (a refund
// found through a top-up) is not named. also are records the caller names
// besides (the customer a subscription event is for), read the same way.
func (q *Query) RecordsOf(ctx context.Context, env *domain.Envelope, also ...EventRecord) ([]EventRecord, error) {
	out := slices.Clone(also)
	for _, p := range q.projs {
		if !p.Handles(env.Provider, env.EventType) {
			continue
		}
		changes, err := p.Apply(env, projections.MemoryRecords{})
		if err != nil {
			continue // a refusal is the dead letter's to show
		}
		for key, value := range changes {
			if rec, ok := eventRecord(env, key, value); ok {
				out = append(out, rec)
			}
		}
	}
	slices.SortFunc(out, func(a, b EventRecord) int {
		if d := slices.Index(recordKindOrder, a.Kind) - slices.Index(recordKindOrder, b.Kind); d != 0 {
			return d
		}
		return strings.Compare(a.Provider+"\n"+a.ID, b.Provider+"\n"+b.ID)
	})
	out = slices.CompactFunc(out, func(a, b EventRecord) bool { return a.Kind == b.Kind && a.Provider == b.Provider && a.ID == b.ID })
	for i := range out {
		if err := q.markChanged(ctx, env.EventID, &out[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// eventRecord names the record a fold wrote under key; false for a helper
// entry.
func eventRecord(env *domain.Envelope, key string, value []byte) (EventRecord, bool) {
	kind, _, _ := strings.Cut(key, ".")
	if !domain.IsRecordKind(kind) {
		return EventRecord{}, false
	}
	raw, err := reducers.RecordOf(value)
	var ids struct {
		ID     string `json:"id"`
		UserID string `json:"user_id"`
	}
	if err != nil || raw == nil || json.Unmarshal(raw, &ids) != nil {
		return EventRecord{}, false
	}
	if kind == domain.KindWallet {
		return EventRecord{Kind: kind, ID: ids.UserID}, ids.UserID != ""
	}
	return EventRecord{Kind: kind, Provider: env.Namespace(), ID: ids.ID}, ids.ID != ""
}

// markChanged reads r's stored record and says whether it lists eventID.
func (q *Query) markChanged(ctx context.Context, eventID string, r *EventRecord) error {
	raw, err := q.Record(ctx, r.Kind, r.Provider, r.ID)
	if domain.ErrorCode(err) == domain.CodeNotFound {
		r.Missing = true
		return nil
	}
	if err != nil {
		return err
	}
	var meta domain.RecordMeta
	if err := json.Unmarshal(raw, &meta); err != nil {
		return domain.Wrap(domain.CodeInternal, err, "stored "+r.Kind)
	}
	r.Changed = slices.Contains(meta.EventIDs, eventID)
	return nil
}
