package reducers

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"
	"strings"

	"github.com/billfold/billfold/domain"
)

// The identity check of credits. A top-up credits the user its checkout
// session names (metadata user_id), paid by the session's Stripe customer.
// The links billfold knows say whom that customer belongs to: the
// customer's own metadata user_id (its latest snapshot), and every Clerk
// user whose latest external_id names the customer. When a link names
// another user than the credited one, the credit is held
// (domain.HeldIdentityMismatch) instead of given; when the links change so
// that none names another user, it is released. No link at all is no
// mismatch: nothing contradicts the session.
//
// The wallets projection keeps what it needs of those links itself, so the
// check reads nothing outside its own store: one helper entry per Stripe
// customer (identity.<uuid>) with the links as last-writer-wins registers,
// and in each Clerk user's wallet the register of the user's external_id.
// Every wallet credited by a customer holds a copy of the customer's
// registers, merged register by register, so the wallets converge whatever
// the order of the events and of the writes.

// stampedValue is a last-writer-wins register of a string ("" for none).
type stampedValue struct {
	Stamp Stamp  `json:"stamp"`
	Value string `json:"value,omitempty"`
}

// offerValue keeps the value with the latest stamp in the register r.
func offerValue(r **stampedValue, v stampedValue) {
	if *r == nil || v.Stamp.After((*r).Stamp) {
		*r = &v
	}
}

// stampedClaim is a last-writer-wins register of whether a Clerk user's
// latest external_id names the customer.
type stampedClaim struct {
	Stamp  Stamp `json:"stamp"`
	Claims bool  `json:"claims"`
}

// customerClaims are the links that say whom a Stripe customer belongs
// to, each a register: the customer's metadata user_id, and by Clerk user
// whether its external_id names the customer.
type customerClaims struct {
	Stripe *stampedValue           `json:"stripe,omitempty"`
	Clerk  map[string]stampedClaim `json:"clerk,omitempty"`
}

func (c *customerClaims) offerClerk(user string, v stampedClaim) {
	if old, ok := c.Clerk[user]; ok && !v.Stamp.After(old.Stamp) {
		return
	}
	if c.Clerk == nil {
		c.Clerk = map[string]stampedClaim{}
	}
	c.Clerk[user] = v
}

// merge takes every register of o that is later than c's.
func (c *customerClaims) merge(o customerClaims) {
	if o.Stripe != nil {
		offerValue(&c.Stripe, *o.Stripe)
	}
	for user, v := range o.Clerk {
		c.offerClerk(user, v)
	}
}

// users are the users the links name, sorted, without duplicates.
func (c customerClaims) users() []string {
	var out []string
	if c.Stripe != nil && c.Stripe.Value != "" {
		out = append(out, c.Stripe.Value)
	}
	for user, v := range c.Clerk {
		if v.Claims {
			out = append(out, user)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// contradicts reports whether a link names another user than user.
func (c customerClaims) contradicts(user string) bool {
	for _, u := range c.users() {
		if u != user {
			return true
		}
	}
	return false
}

// identityEntry is the wallets projection's helper entry for one Stripe
// customer: its links, the events that made them, and the users whose
// wallets hold a top-up it paid (to re-check when the links change).
type identityEntry struct {
	CustomerID string         `json:"customer_id"`
	Claims     customerClaims `json:"claims"`
	Folded     Folded         `json:"folded,omitempty"`
	// Claimed is, by Clerk user, how many of the user's events set its
	// external_id (the count of its wallet's ClaimEvents): the entry's
	// version counts them with its own customer events.
	Claimed map[string]int `json:"claimed,omitempty"`
	Wallets []string       `json:"wallets,omitempty"`
}

// version is how many events made the entry's links: the customer's and
// the Clerk users' that named it.
func (e identityEntry) version() int {
	v := e.Folded.Count
	for _, n := range e.Claimed {
		v += n
	}
	return v
}

// identityKey is the store key of a Stripe customer's identity entry.
func identityKey(customer string) string {
	return recordKey(domain.KindIdentity, string(domain.Stripe), customer)
}

// stripeCustomerRef is an external_id read as a link: a Stripe customer id
// (cus_...), else nothing.
func stripeCustomerRef(externalID string) string {
	if strings.HasPrefix(externalID, "cus_") {
		return externalID
	}
	return ""
}

// overlay reads the changes an Apply made so far before the store, so a
// record changed twice in one Apply keeps both changes.
type overlay struct {
	Lookup
	changes Changes
}

func (o overlay) Get(key string) ([]byte, error) {
	if b, ok := o.changes[key]; ok {
		return b, nil
	}
	return o.Lookup.Get(key)
}

// updateIdentity reads a customer's identity entry, changes it, and
// copies its links into every wallet it lists but except's (also when the
// entry itself is unchanged: the process may have stopped between the
// writes). It returns the changed entries and the identity as changed.
func (w Wallets) updateIdentity(records Lookup, customer, except string, change func(*identityEntry)) (Changes, identityEntry, error) {
	key := identityKey(customer)
	var e identityEntry
	raw, err := records.Get(key)
	if err != nil {
		return nil, e, err
	}
	if raw != nil {
		if err := json.Unmarshal(raw, &e); err != nil {
			return nil, e, domain.Wrap(domain.CodeReducerDecode, err, "identity entry does not decode")
		}
	}
	e.CustomerID = customer
	change(&e)
	changes := Changes{}
	if b := mustJSON(e); !bytes.Equal(b, raw) {
		changes[key] = b
	}
	for _, user := range e.Wallets {
		if user == except {
			continue // its caller writes that wallet with the identity
		}
		c, err := w.updateWallet(overlay{records, changes}, user, func(wm *walletMerge, meta *domain.RecordMeta) {
			wm.takeIdentity(e)
		})
		if err != nil {
			return nil, e, err
		}
		maps.Copy(changes, c)
	}
	return changes, e, nil
}

// takeIdentity merges a customer's links (and the events that made them)
// into the wallet.
func (wm *walletMerge) takeIdentity(e identityEntry) {
	if wm.Identities == nil {
		wm.Identities = map[string]customerClaims{}
	}
	c := wm.Identities[e.CustomerID]
	c.merge(e.Claims)
	wm.Identities[e.CustomerID] = c
	if wm.IdentityVersions == nil {
		wm.IdentityVersions = map[string]int{}
	}
	wm.IdentityVersions[e.CustomerID] = max(wm.IdentityVersions[e.CustomerID], e.version())
	wm.Parts.union(e.Folded)
}

// applyCustomer folds a Stripe customer event into the customer's links:
// its metadata user_id, latest by provider time.
func (w Wallets) applyCustomer(ev *domain.Envelope, records Lookup) (Changes, error) {
	e, err := stripeFacts(ev)
	if err != nil {
		return nil, err
	}
	cus := &e.Object
	if cus.ID == "" {
		return nil, domain.Errorf(domain.CodeReducerDecode, "Stripe %s %s: customer has no id", ev.EventType, ev.EventID)
	}
	v := stampedValue{Stamp: stampOf(ev, customerRanks[ev.EventType]), Value: cus.Metadata[w.o.UserIDKey]}
	changes, _, err := w.updateIdentity(records, cus.ID, "", func(ie *identityEntry) {
		var meta domain.RecordMeta
		_, _ = foldEvent(&ie.Folded, &meta, ev, func() []byte { return mustJSON(ie) }, func() error {
			offerValue(&ie.Claims.Stripe, v)
			return nil
		})
	})
	return changes, err
}

// pushClerkClaims copies a Clerk user's external_id register into the
// identity entry of every customer it ever named: a claim where it names
// the customer now, a withdrawn one where it named it before.
func (w Wallets) pushClerkClaims(records Lookup, user string) (Changes, error) {
	raw, err := records.Get(WalletKey(user))
	if err != nil {
		return nil, err
	}
	s, err := decodeStored[domain.WalletRecord, walletMerge](raw)
	if err != nil {
		return nil, err
	}
	reg := s.Merge.ExternalID
	if reg == nil {
		return nil, nil
	}
	changes := Changes{}
	for _, customer := range slices.Sorted(maps.Keys(s.Merge.Named)) {
		c, _, err := w.updateIdentity(overlay{records, changes}, customer, "", func(ie *identityEntry) {
			ie.Folded.union(s.Merge.ClaimEvents)
			if ie.Claimed == nil {
				ie.Claimed = map[string]int{}
			}
			ie.Claimed[user] = max(ie.Claimed[user], s.Merge.ClaimEvents.Count)
			ie.Claims.offerClerk(user, stampedClaim{Stamp: reg.Stamp, Claims: reg.Value == customer})
		})
		if err != nil {
			return nil, err
		}
		maps.Copy(changes, c)
	}
	return changes, nil
}

// listWallet adds user to the wallets a customer's identity entry keeps
// checked.
func listWallet(e *identityEntry, user string) {
	if i, found := slices.BinarySearch(e.Wallets, user); !found {
		e.Wallets = slices.Insert(e.Wallets, i, user)
	}
}

// heldReason is why an entry of user's wallet is held, "" when it is not:
// a link naming another user first, then the user's own state.
func heldReason(m *walletMerge, e walletEntry, user string) (string, []string) {
	if e.Customer != "" {
		if c := m.Identities[e.Customer]; c.contradicts(user) {
			return domain.HeldIdentityMismatch, c.users()
		}
	}
	switch {
	case m.Deleted:
		return domain.HeldUserDeleted, nil
	case !m.Known:
		return domain.HeldUserUnknown, nil
	}
	return "", nil
}
