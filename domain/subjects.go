package domain

import (
	"encoding/base64"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Stream, bucket and subject names. They are defined here once and
// documented in docs/architecture.md; nothing else spells them out.
const (
	// JournalStream holds each verified provider event once, as received.
	JournalStream = "BILLFOLD_JOURNAL"
	// JournalSubjectPrefix is followed by "<namespace>.<event id token>".
	JournalSubjectPrefix = "billfold.journal."

	// DeliveryStream holds one entry per HTTP delivery, accepted or not,
	// for a limited time.
	DeliveryStream = "BILLFOLD_DELIVERIES"
	// DeliverySubjectPrefix is followed by "<namespace>.<event id token>",
	// or "<endpoint>._unverified" when no trusted event id is known.
	DeliverySubjectPrefix = "billfold.deliveries."
	// UnverifiedToken stands in for the event id of a delivery that was
	// rejected before its id could be trusted.
	UnverifiedToken = "_unverified"
)

// MaxStreamConsumers is the consumer cap billfold sets explicitly on each of
// its streams. Durable consumers are few (a projector per projection and
// generation, a relay per projection, a shared change-feed reader per
// projection filter, subscribers' own on BILLFOLD_CHANGES); a request
// creates none that outlives it, and reads that need one are bounded.
const MaxStreamConsumers = 512

// JournalSubject is the subject of the journal entry for one provider event.
// There is at most one message per subject: that is how dedupe works.
func JournalSubject(namespace, eventID string) string {
	return JournalSubjectPrefix + SubjectToken(namespace) + "." + SubjectToken(eventID)
}

// DeliverySubject is the subject of the delivery log entries for one event.
func DeliverySubject(namespace, eventID string) string {
	return DeliverySubjectPrefix + SubjectToken(namespace) + "." + SubjectToken(eventID)
}

// UnverifiedDeliverySubject is the subject for deliveries of an endpoint that
// carried no trusted event id.
func UnverifiedDeliverySubject(endpoint string) string {
	return DeliverySubjectPrefix + SubjectToken(endpoint) + "." + UnverifiedToken
}

// SubjectToken maps any string to a single NATS subject token, one to one.
// Ids made of letters, digits, '_' and '-' (all Stripe, Svix and Clerk ids)
// are kept as they are so subjects stay readable; anything else, including
// the empty string and a leading '~' or '_', becomes '~' followed by the
// unpadded base64url of its bytes.
func SubjectToken(s string) string {
	if plainToken(s) {
		return s
	}
	return "~" + base64.RawURLEncoding.EncodeToString([]byte(s))
}

// ParseSubjectToken is the inverse of SubjectToken.
func ParseSubjectToken(tok string) (string, bool) {
	if !strings.HasPrefix(tok, "~") {
		return tok, plainToken(tok) || tok == UnverifiedToken
	}
	b, err := base64.RawURLEncoding.DecodeString(tok[1:])
	if err != nil {
		return "", false
	}
	return string(b), true
}

func plainToken(s string) bool {
	if s == "" || s[0] == '_' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Projection stores, projector consumers and dead letters.
const (
	// DeadLetterStream holds events a projection could not apply.
	DeadLetterStream = "BILLFOLD_DEADLETTERS"
	// DeadLetterSubjectPrefix is followed by
	// "<projection>.<namespace>.<event id token>".
	DeadLetterSubjectPrefix = "billfold.deadletters."
)

// ProjectionBucket is the KV bucket of one generation of a projection's
// records, for example BILLFOLD_SUBSCRIPTIONS_G1.
func ProjectionBucket(projection string, generation int) string {
	return "BILLFOLD_" + strings.ToUpper(projection) + "_G" + strconv.Itoa(generation)
}

// ProjectorDurable is the durable consumer name of the projector of one
// generation of a projection over the journal. Generation 1 keeps the name
// releases before rebuilds used.
func ProjectorDurable(projection string, generation int) string {
	return "billfold-" + projection + generationSuffix(generation)
}

// FoldDurable is the durable consumer name of the engine's joint fold over
// the journal: one consumer for every projection, while all of them fold
// live at the same position. It names each projection's generation, so a
// generation switch folds from a new consumer, never from one whose
// position belongs to the generation replaced.
func FoldDurable(generations map[string]int) string {
	var b strings.Builder
	b.WriteString("billfold-fold")
	for _, name := range slices.Sorted(maps.Keys(generations)) {
		b.WriteString("-" + name + "-" + strconv.Itoa(max(generations[name], 1)))
	}
	return b.String()
}

// FoldsGeneration reports whether durable is a joint fold's consumer
// (FoldDurable) that folds the generation of projection.
func FoldsGeneration(durable, projection string, generation int) bool {
	return strings.HasPrefix(durable, "billfold-fold-") &&
		strings.Contains(durable+"-", "-"+projection+"-"+strconv.Itoa(max(generation, 1))+"-")
}

func generationSuffix(generation int) string {
	if generation <= 1 {
		return ""
	}
	return "-g" + strconv.Itoa(generation)
}

// Rebuild bookkeeping.
const (
	// GenerationsBucket is the KV bucket that says, per projection, which
	// generation is current: the one pointer a rebuild switches.
	GenerationsBucket = "BILLFOLD_GENERATIONS"
	// RebuildsBucket is the KV bucket of rebuilds and replays, by id, with
	// their progress.
	RebuildsBucket = "BILLFOLD_REBUILDS"
	// PausesBucket is the KV bucket of the projections an operator
	// paused, one key each.
	PausesBucket = "BILLFOLD_PAUSES"
	// FoldPositionsBucket is the KV bucket of the fold positions of the
	// journal consumers an engine deleted (FoldPositionKey): what a
	// projection generation had folded, should every consumer that folds
	// it be gone.
	FoldPositionsBucket = "BILLFOLD_FOLD_POSITIONS"
)

// FoldPositionKey is the key of one projection generation's position in
// FoldPositionsBucket.
func FoldPositionKey(projection string, generation int) string {
	return projection + ".g" + strconv.Itoa(max(generation, 1))
}

// DeadLetterSubject is the dead-letter subject of one event in one
// projection.
func DeadLetterSubject(projection, namespace, eventID string) string {
	return DeadLetterSubjectPrefix + projection + "." + SubjectToken(namespace) + "." + SubjectToken(eventID)
}

// Change feed names. docs/consuming.md documents them for subscribers.
const (
	// ChangesStream holds every change of every record, and every
	// lifecycle transition, once, in the order the projections stored them.
	ChangesStream = "BILLFOLD_CHANGES"
	// ChangeSubjectPrefix is followed by
	// "<projection>.<provider>.<record id token>".
	ChangeSubjectPrefix = "billfold.changes."
	// LifecycleSubjectPrefix is followed by "<provider>.<to state>".
	LifecycleSubjectPrefix = "billfold.lifecycle."
)

// ChangeSubject is the subject of one record's changes.
func ChangeSubject(projection, provider, id string) string {
	return ChangeSubjectPrefix + projection + "." + SubjectToken(provider) + "." + SubjectToken(id)
}

// ChangeFilter is the subject filter of every change of a projection, or
// of every projection when projection is "".
func ChangeFilter(projection string) string {
	if projection == "" {
		return ChangeSubjectPrefix + ">"
	}
	return ChangeSubjectPrefix + projection + ".>"
}

// LifecycleSubject is the subject of subscription transitions into state
// at provider.
func LifecycleSubject(provider string, state LifecycleState) string {
	return LifecycleSubjectPrefix + SubjectToken(provider) + "." + SubjectToken(string(state))
}

// FeedDurable is the durable consumer name of a projection generation's
// change relay on its KV bucket's stream.
func FeedDurable(projection string, generation int) string {
	return "billfold-feed-" + projection + generationSuffix(generation)
}

// BucketStream is the JetStream stream behind a KV bucket.
func BucketStream(bucket string) string { return "KV_" + bucket }
