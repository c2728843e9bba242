package ledger

import (
	"strings"

	"github.com/billfold/billfold/domain"
)

// endpointRedaction shows unsigned endpoints by their label
// (domain.UnsignedLabel) in what the ledger answers, and takes the label
// in a lookup: an unsigned endpoint's name is its only secret, and the
// event ledger is readable by anyone with the API token.
type endpointRedaction struct {
	labels map[string]string // name → label
	names  map[string]string // label → name
}

// RedactEndpoints makes the ledger show each of the unsigned endpoints
// names by its label instead.
func (l *Ledger) RedactEndpoints(names []string) {
	r := endpointRedaction{labels: map[string]string{}, names: map[string]string{}}
	for _, n := range names {
		label := domain.UnsignedLabel(n)
		r.labels[n], r.names[label] = label, n
	}
	l.redact = r
}

// show replaces an unsigned endpoint's name at the start of s (a name or a
// namespace such as "<name>~unsigned") with its label.
func (r endpointRedaction) show(s string) string { return swapHead(s, r.labels) }

// resolve is show's inverse, for lookups by label.
func (r endpointRedaction) resolve(s string) string { return swapHead(s, r.names) }

func swapHead(s string, to map[string]string) string {
	head, rest, _ := strings.Cut(s, "~")
	if v, ok := to[head]; ok {
		if rest != "" || strings.Contains(s, "~") {
			return v + "~" + rest
		}
		return v
	}
	return s
}

// entry redacts e.
func (r endpointRedaction) entry(e EventEntry) EventEntry {
	if len(r.labels) == 0 {
		return e
	}
	e.Namespace = r.show(e.Namespace)
	if e.Journal != nil {
		j := *e.Journal
		j.Endpoint = r.show(j.Endpoint)
		e.Journal = &j
	}
	for i := range e.Deliveries.Deliveries {
		e.Deliveries.Deliveries[i].Endpoint = r.show(e.Deliveries.Deliveries[i].Endpoint)
	}
	for name, st := range e.Projections {
		if st.DeadLetter != nil {
			dl := *st.DeadLetter
			dl.Namespace = r.show(dl.Namespace)
			st.DeadLetter = &dl
			e.Projections[name] = st
		}
	}
	return e
}
