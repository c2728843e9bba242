package ledger

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/projections"
)

func TestEndpointRedaction(t *testing.T) {
	const name = "in-3f9a1c7be2d84056af19c2e7b5d0e813"
	l := &Ledger{}
	l.RedactEndpoints([]string{name})
	label := domain.UnsignedLabel(name)
	assert.Regexp(t, `^unsigned-[0-9a-f]{8}$`, label)
	cases := map[string]string{
		name:               label,
		name + "~unsigned": label + "~unsigned",
		"stripe":           "stripe",
		"stripe~unsigned":  "stripe~unsigned",
		name + "x":         name + "x",
		"":                 "",
	}
	for in, want := range cases {
		assert.Equal(t, want, l.redact.show(in), in)
		assert.Equal(t, in, l.redact.resolve(want), "resolve is show's inverse: %s", want)
	}
	e := l.redact.entry(EventEntry{Namespace: name, Journal: &projections.JournalEntry{Endpoint: name},
		Deliveries: DeliverySummary{Deliveries: []domain.Delivery{{Endpoint: name}}}})
	assert.Equal(t, label, e.Namespace)
	assert.Equal(t, label, e.Journal.Endpoint)
	assert.Equal(t, label, e.Deliveries.Deliveries[0].Endpoint)
}
