package reducers

import (
	"bytes"
	"maps"
	"slices"

	"github.com/billfold/billfold/domain"
)

// Wallet entry reasons.
const (
	ReasonSignupBonus    = "signup_bonus"
	ReasonTopUp          = "top_up"
	ReasonRefundReversal = "refund_reversal"
)

// walletMerge is the merge state of a wallet: whether the user is known
// and deleted (sticky flags), and its entries keyed by reference, so a
// payment credits once however often it is seen.
type walletMerge struct {
	// Folded is the user's own (Clerk) events; Parts the latest events of
	// the top-ups and identity entries the wallet is derived from, for
	// updated_at, event_ids and trust. The wallet's version is the sum of
	// its own and its parts' (deriveWallet).
	Folded  Folded                 `json:"folded"`
	Parts   Folded                 `json:"parts"`
	Known   bool                   `json:"known,omitempty"`
	Deleted bool                   `json:"deleted,omitempty"`
	Entries map[string]walletEntry `json:"entries,omitempty"`
	// TopUps is, by top-up, the version of the top-up its entries were
	// set from. A top-up changes by compare-and-set, so its versions are
	// one chain; keeping the entries of the highest version makes the
	// wallet independent of the order in which processes that read
	// different versions of a top-up write it.
	TopUps map[string]int `json:"topups,omitempty"`
	// Identities are, by Stripe customer that paid a top-up of the
	// wallet, the customer's links to users (copied from its identity
	// entry, merged register by register): what the top-up is checked
	// against.
	Identities map[string]customerClaims `json:"identities,omitempty"`
	// IdentityVersions is, by customer, the latest version of its identity
	// entry the wallet took.
	IdentityVersions map[string]int `json:"identity_versions,omitempty"`
	// ExternalID is the user's Clerk external_id as a link to a Stripe
	// customer ("" when it names none), latest by provider time; Named
	// every customer it ever named, and ClaimEvents the user's events
	// that set it: what the identity entries of those customers learn.
	ExternalID  *stampedValue   `json:"external_id,omitempty"`
	Named       map[string]bool `json:"named,omitempty"`
	ClaimEvents Folded          `json:"claim_events,omitempty"`
}

type walletEntry struct {
	Stamp  Stamp  `json:"stamp"`
	Amount int64  `json:"amount"`
	Reason string `json:"reason"`
	// Customer is the Stripe customer that paid a top-up.
	Customer string `json:"customer,omitempty"`
}

type storedWallet = Stored[domain.WalletRecord, walletMerge]

// TopUp is a paid top-up as the wallets projection tracks it, keyed by its
// payment intent (or its checkout session when it has none): the credits
// it grants and the refunds that may reverse them.
type TopUp struct {
	ID             string `json:"id"`
	UserID         string `json:"user_id,omitempty"`
	Credits        int64  `json:"credits,omitempty"`
	Amount         int64  `json:"amount"`
	AmountRefunded int64  `json:"amount_refunded"`
	Reversed       bool   `json:"reversed"`
	domain.RecordMeta
}

type topUpMerge struct {
	Folded Folded `json:"folded"`
	// Grant is the earliest crediting event (by stamp) with its metadata.
	Grant   *topUpGrant  `json:"grant,omitempty"`
	Amount  int64        `json:"amount,omitempty"`
	Refunds refundLedger `json:"refunds"`
	// LastRefund is the latest refund-reporting event, the reference of a
	// reversal.
	LastRefund *Stamp `json:"last_refund,omitempty"`
}

type topUpGrant struct {
	Stamp    Stamp  `json:"stamp"`
	UserID   string `json:"user_id"`
	Credits  int64  `json:"credits"`
	Customer string `json:"customer,omitempty"`
}

type storedTopUp = Stored[TopUp, topUpMerge]

// Wallets is the wallets projection: signup bonuses for Clerk users and
// paid Stripe top-ups, with full refunds reversing them, each top-up
// checked against the links of the customer that paid it (identity.go).
type Wallets struct{ o Options }

// Name implements Projection.
func (Wallets) Name() string { return domain.ProjectionWallets }

// Handles implements Projection.
func (Wallets) Handles(p domain.Provider, t string) bool {
	switch p {
	case domain.Clerk:
		return t == "user.created" || t == "user.updated" || t == "user.deleted"
	case domain.Stripe:
		return t == "checkout.session.completed" || t == "checkout.session.async_payment_succeeded" || isStripeRefundEvent(t) || isStripeCustomerEvent(t)
	}
	return false
}

// Apply implements Projection.
func (w Wallets) Apply(ev *domain.Envelope, records Lookup) (Changes, error) {
	if err := failSwitch(w.o, ev); err != nil {
		return nil, err
	}
	if !w.creditsFrom(ev) {
		return nil, nil
	}
	if ev.Provider == domain.Clerk {
		return w.applyClerk(ev, records)
	}
	if isStripeCustomerEvent(ev.EventType) {
		return w.applyCustomer(ev, records)
	}
	p, err := decodeStripePayment(ev)
	if err != nil {
		return nil, err
	}
	var grant *topUpGrant
	if p.Kind == "checkout.session" {
		if _, isTopUp := p.Metadata["credits"]; !isTopUp {
			return nil, nil // a purchase, not a top-up
		}
		if ev.EventType == "checkout.session.completed" && p.PaymentStatus != "paid" {
			return nil, nil // credited when async_payment_succeeded says it is paid
		}
		if grant, err = w.topUpGrant(ev, p); err != nil {
			return nil, err
		}
	}
	id := p.paymentID()
	if id == "" {
		id = p.sessionID()
	}
	if id == "" {
		return nil, nil // a refund of a legacy charge: never a top-up
	}
	key := recordKey(domain.KindTopUp, ev.Namespace(), id)
	raw, err := records.Get(key)
	if err != nil {
		return nil, err
	}
	topUp, err := decodeStored[TopUp, topUpMerge](raw)
	if err != nil {
		return nil, err
	}
	var changes Changes
	changed, err := foldEvent(&topUp.Merge.Folded, &topUp.Record.RecordMeta, ev, topUp.encode, func() error {
		stamp := stampOf(ev, 0)
		m := &topUp.Merge
		if grant != nil && (m.Grant == nil || grant.Stamp.FirstOver(m.Grant.Stamp)) {
			m.Grant = grant
		}
		paid := p.AmountTotal // a session's total; a charge says its amount
		if p.Kind == "charge" {
			paid = p.Amount
		}
		m.Amount = max(m.Amount, paid)
		if isStripeRefundEvent(ev.EventType) {
			p.addRefunds(&m.Refunds, stamp)
			if m.LastRefund == nil || stamp.After(*m.LastRefund) {
				m.LastRefund = &stamp
			}
		}
		w.deriveTopUp(&topUp.Record, m, id)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if changed {
		changes = Changes{key: topUp.encode()}
	}
	credited := topUp.Merge.Grant
	if credited == nil {
		return changes, nil // no user to credit yet
	}
	// Always recompute the wallet from the top-up (and the paying
	// customer's links), even for an event the top-up had already folded:
	// the process may have stopped between the writes.
	var identity *identityEntry
	if credited.Customer != "" {
		c, e, err := w.updateIdentity(records, credited.Customer, credited.UserID, func(e *identityEntry) { listWallet(e, credited.UserID) })
		if err != nil {
			return nil, err
		}
		changes, identity = merge(changes, c), &e
	}
	c, err := w.updateWallet(overlay{records, changes}, credited.UserID, func(wm *walletMerge, meta *domain.RecordMeta) {
		wm.Parts.union(topUp.Merge.Folded)
		// The wallet keeps its top-ups' Connect account as a record keeps
		// its events' (Folded.add): the least, whatever the order.
		if a := topUp.Record.Account; a != "" && (meta.Account == "" || a < meta.Account) {
			meta.Account = a
		}
		setTopUpEntries(wm, id, topUp.Record, topUp.Merge)
		if identity != nil {
			wm.takeIdentity(*identity)
		}
	})
	return merge(changes, c), err
}

// isStripeCustomerEvent reports whether t is a Stripe customer's own
// event: what the customer's metadata link is read from.
func isStripeCustomerEvent(t string) bool {
	return t == "customer.created" || t == "customer.updated" || t == "customer.deleted"
}

// creditsFrom reports whether ev may move credits. Credits are money:
// input no signature vouches for never moves them unless its endpoint
// explicitly allows it (Options.UnsignedCredits).
func (w Wallets) creditsFrom(ev *domain.Envelope) bool {
	return untrusted(ev) == "" || slices.Contains(w.o.UnsignedCredits, ev.Endpoint)
}

// MaxTopUpCredits is the most credits one top-up may grant. It keeps every
// wallet sum far from int64 overflow: a balance would need millions of
// top-ups at the ceiling to wrap, where an unchecked metadata value of
// 2^63-1 wrapped a wallet of 100 to a negative balance in one event.
const MaxTopUpCredits = 1_000_000_000_000

// topUpGrant validates a top-up's metadata: a user and a positive integer
// number of credits, or a permanent error that says which is wrong.
func (w Wallets) topUpGrant(ev *domain.Envelope, p stripePayment) (*topUpGrant, error) {
	user := p.Metadata[w.o.UserIDKey]
	if user == "" {
		return nil, domain.Errorf(domain.CodeReducerInvalid, "top-up %s (event %s) has credits but no metadata %q naming the user", p.ID, ev.EventID, w.o.UserIDKey)
	}
	credits, ok := parsePositiveInt(p.Metadata["credits"])
	if !ok || credits > MaxTopUpCredits {
		return nil, domain.Errorf(domain.CodeReducerInvalid, "top-up %s (event %s): metadata credits %q is not a positive integer up to %d", p.ID, ev.EventID, p.Metadata["credits"], int64(MaxTopUpCredits))
	}
	return &topUpGrant{Stamp: stampOf(ev, 0), UserID: user, Credits: credits, Customer: string(p.Customer)}, nil
}

func (w Wallets) deriveTopUp(r *TopUp, m *topUpMerge, id string) {
	*r = TopUp{ID: id, Amount: m.Amount, AmountRefunded: m.Refunds.total(m.Folded.signed()), RecordMeta: r.RecordMeta}
	if m.Grant != nil {
		r.UserID, r.Credits = m.Grant.UserID, m.Grant.Credits
	}
	r.Reversed = r.Amount > 0 && r.AmountRefunded >= r.Amount
}

// setTopUpEntries writes a top-up's entries into its user's wallet: the
// credit, and its reversal while the top-up is fully refunded.
func setTopUpEntries(wm *walletMerge, id string, t TopUp, m topUpMerge) {
	if wm.TopUps[id] > t.Version {
		return // set from a later version of the top-up already
	}
	if wm.TopUps == nil {
		wm.TopUps = map[string]int{}
	}
	wm.TopUps[id] = t.Version
	if wm.Entries == nil {
		wm.Entries = map[string]walletEntry{}
	}
	wm.Entries[ReasonTopUp+":"+id] = walletEntry{Stamp: m.Grant.Stamp, Amount: t.Credits, Reason: ReasonTopUp, Customer: m.Grant.Customer}
	reversal := ReasonRefundReversal + ":" + id
	delete(wm.Entries, reversal)
	if t.Reversed && m.LastRefund != nil {
		wm.Entries[reversal] = walletEntry{Stamp: *m.LastRefund, Amount: -t.Credits, Reason: ReasonRefundReversal, Customer: m.Grant.Customer}
	}
}

func (w Wallets) applyClerk(ev *domain.Envelope, records Lookup) (Changes, error) {
	u, err := clerkFacts(ev)
	if err != nil {
		return nil, err
	}
	changes, err := w.updateWallet(records, u.ID, func(wm *walletMerge, meta *domain.RecordMeta) {
		_, _ = foldEvent(&wm.Folded, meta, ev, func() []byte { return mustJSON(wm) }, func() error {
			w.applyUser(wm, ev, u.ID, stripeCustomerRef(u.ExternalID))
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	// Always, even for an event already folded: the process may have
	// stopped between the writes.
	c, err := w.pushClerkClaims(overlay{records, changes}, u.ID)
	return merge(changes, c), err
}

// applyUser folds a Clerk user event into the user's wallet: deleted,
// the external_id link, the signup bonus.
func (w Wallets) applyUser(wm *walletMerge, ev *domain.Envelope, user, externalCustomer string) {
	if ev.EventType == "user.deleted" {
		wm.Deleted = true // a deletion carries no profile: the external_id stands
		return
	}
	wm.offerExternalID(ev, externalCustomer)
	if ev.EventType != "user.created" {
		return
	}
	wm.Known = true
	if wm.Entries == nil {
		wm.Entries = map[string]walletEntry{}
	}
	ref := ReasonSignupBonus + ":" + user
	bonus := walletEntry{Stamp: stampOf(ev, 0), Amount: w.o.SignupBonus, Reason: ReasonSignupBonus}
	if old, ok := wm.Entries[ref]; !ok || bonus.Stamp.FirstOver(old.Stamp) {
		wm.Entries[ref] = bonus // once per user, from the earliest user.created
	}
}

// offerExternalID records a Clerk profile event's external_id link
// (customer, "" for none) in the user's register.
func (wm *walletMerge) offerExternalID(ev *domain.Envelope, customer string) {
	wm.ClaimEvents.add(&domain.RecordMeta{}, ev)
	offerValue(&wm.ExternalID, stampedValue{Stamp: stampOf(ev, customerRanks[ev.EventType]), Value: customer})
	if customer != "" {
		if wm.Named == nil {
			wm.Named = map[string]bool{}
		}
		wm.Named[customer] = true
	}
}

// updateWallet reads a user's wallet, changes it, and returns it when its
// encoding changed.
func (w Wallets) updateWallet(records Lookup, userID string, change func(*walletMerge, *domain.RecordMeta)) (Changes, error) {
	key := WalletKey(userID)
	raw, err := records.Get(key)
	if err != nil {
		return nil, err
	}
	s, err := decodeStored[domain.WalletRecord, walletMerge](raw)
	if err != nil {
		return nil, err
	}
	change(&s.Merge, &s.Record.RecordMeta)
	deriveWallet(&s.Record, &s.Merge, userID)
	b := s.encode()
	if bytes.Equal(b, raw) {
		return nil, nil
	}
	return Changes{key: b}, nil
}

// deriveWallet computes the wallet from its merge state. Entries are held
// (pending, not available) while the user is unknown or once deleted, and
// a top-up's while its customer's links name another user.
func deriveWallet(r *domain.WalletRecord, m *walletMerge, userID string) {
	*r = domain.WalletRecord{UserID: userID, UserKnown: m.Known, Deleted: m.Deleted, Entries: []domain.WalletEntry{}, RecordMeta: r.RecordMeta}
	all := m.Folded
	all.Recent = slices.Clone(m.Folded.Recent)
	all.union(m.Parts)
	all.describe(&r.RecordMeta)
	r.Version = m.Folded.Count
	for _, v := range m.TopUps {
		r.Version += v
	}
	for _, v := range m.IdentityVersions {
		r.Version += v
	}
	for _, ref := range slices.Sorted(maps.Keys(m.Entries)) {
		e := m.Entries[ref]
		reason, users := heldReason(m, e, userID)
		held := reason != ""
		r.Entries = append(r.Entries, domain.WalletEntry{Amount: e.Amount, Reason: e.Reason, Reference: ref, EventID: e.Stamp.EventID,
			Held: held, HeldReason: reason, CustomerID: e.Customer, CustomerUsers: users})
		r.Balance += e.Amount
		if held {
			r.Pending += e.Amount
		} else {
			r.Available += e.Amount
		}
	}
	slices.SortStableFunc(r.Entries, func(a, b domain.WalletEntry) int {
		return m.Entries[a.Reference].Stamp.Compare(m.Entries[b.Reference].Stamp)
	})
}
