package reducers

// Options are the reducers' settings, from the config file.
type Options struct {
	// PastDueEntitled keeps past_due subscriptions entitled (access
	// usually continues while payment is retried).
	PastDueEntitled bool
	// SignupBonus is the credits a new Clerk user gets.
	SignupBonus int64
	// LinkKeys are the metadata keys surfaced as links on records.
	LinkKeys []string
	// UserIDKey is the metadata key naming the billfold user on Stripe
	// customers, checkout sessions and top-ups.
	UserIDKey string
	// UnsignedCredits names the endpoints whose unsigned (or bypassed)
	// input may credit and debit wallets; the wallets projection ignores
	// every other event no signature vouches for. Set by an endpoint's
	// unsigned_credits option.
	UnsignedCredits []string
	// FailTypes makes every event of these types fail in every projection
	// that handles it, with BILLFOLD-REDUCER-FAILED: the switch operators
	// and tests use to rehearse a reducer bug and its recovery.
	FailTypes []string
}

// DefaultOptions are the documented defaults.
func DefaultOptions() Options {
	return Options{
		PastDueEntitled: true,
		SignupBonus:     40,
		LinkKeys:        []string{"user_id", "deal_id", "run_id"},
		UserIDKey:       "user_id",
	}
}

// All returns every projection with the given options.
func All(o Options) []Projection {
	return []Projection{Customers{o}, Subscriptions{o}, Orders{o}, Wallets{o}}
}
