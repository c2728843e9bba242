package query

import (
	"context"
	"encoding/json"
	"time"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/reducers"
)

// OrderResolution says which of an order's other ids a query named: a
// checkout session or a charge, resolved through the orders projection's
// alias records.
type OrderResolution struct {
	Kind string `json:"kind"` // session or charge
	ID   string `json:"id"`
}

// orderAliasKinds are the ids an order is found by besides its key, in the
// order they are tried.
var orderAliasKinds = []string{"session", "charge"}

// Order returns the JSON of the order id names at provider: the order keyed
// by id (a Stripe payment intent, or the session or charge of an order
// without one; a PactaPay payment), else the order a checkout session or
// charge id belongs to. An order found through another id answers with two
// more members, "key_id" (the id the order is keyed by, its "id") and
// "resolved_from" (the id asked, with its kind). A non-nil asOf folds the
// record as it stood then (see AsOf), found by the same rule.
func (q *Query) Order(ctx context.Context, provider, id string, asOf *time.Time) (json.RawMessage, error) {
	keyID, from, err := q.orderKeyID(ctx, provider, id)
	if err != nil {
		return nil, err
	}
	var rec json.RawMessage
	if asOf != nil {
		rec, err = q.AsOf(ctx, domain.KindOrder, provider, keyID, *asOf)
	} else {
		rec, err = q.Record(ctx, domain.KindOrder, provider, keyID)
	}
	if err != nil || from == nil {
		return rec, err
	}
	return withResolution(rec, keyID, from)
}

// orderKeyID is the id the order named by id is keyed by, and how it was
// resolved (nil when id is the key itself, or names nothing).
func (q *Query) orderKeyID(ctx context.Context, provider, id string) (string, *OrderResolution, error) {
	if id == "" {
		return "", nil, domain.Errorf(domain.CodeBadRequest, "empty id")
	}
	v := q.view.Load()
	rec, err := v.read(ctx, domain.ProjectionOrders, reducers.OrderKey(provider, id))
	if err != nil || rec != nil {
		return id, nil, err
	}
	for _, kind := range orderAliasKinds {
		raw, err := v.read(ctx, domain.ProjectionOrders, reducers.OrderAliasKey(provider, kind, id))
		if err != nil {
			return "", nil, err
		}
		if raw == nil {
			continue
		}
		var alias reducers.OrderAlias
		if err := json.Unmarshal(raw, &alias); err != nil || alias.OrderID == "" {
			return "", nil, domain.Wrap(domain.CodeReducerDecode, err, "order alias "+kind+" "+id)
		}
		return alias.OrderID, &OrderResolution{Kind: kind, ID: id}, nil
	}
	return id, nil, nil
}

// withResolution adds key_id and resolved_from to an order's JSON, first,
// leaving the record's own bytes as stored.
func withResolution(rec json.RawMessage, keyID string, from *OrderResolution) (json.RawMessage, error) {
	head, err := json.Marshal(struct {
		KeyID        string           `json:"key_id"`
		ResolvedFrom *OrderResolution `json:"resolved_from"`
	}{keyID, from})
	if err != nil {
		return nil, err
	}
	if len(rec) < 2 || rec[0] != '{' || rec[1] == '}' {
		return rec, nil // not a record billfold wrote
	}
	out := append(head[:len(head)-1:len(head)-1], ',') // head without its closing brace
	return append(out, rec[1:]...), nil
}
