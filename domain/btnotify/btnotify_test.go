package btnotify_test

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/domain/btnotify"
)

// Payloads from ../shared/testvectors.md, section Braintree.
const (
	vecCheckPayload = "PD94bWwgdmVyc2lvbj0iMS4wIiBlbmNvZGluZz0iVVRGLTgiPz4KPG5vdGlm\naWNhdGlvbj4KICA8a2luZD5jaGVjazwva2luZD4KICA8dGltZXN0YW1wIHR5\ncGU9ImRhdGV0aW1lIj4yMDE3LTA0LTI0VDA0OjI1OjEwWjwvdGltZXN0YW1w\nPgogIDxzdWJqZWN0PgogICAgPGNoZWNrIHR5cGU9ImJvb2xlYW4iPnRydWU8\nL2NoZWNrPgogIDwvc3ViamVjdD4KPC9ub3RpZmljYXRpb24+Cg==\n"
	vecSubPayload   = "PG5vdGlmaWNhdGlvbj4KICAgIDx0aW1lc3RhbXAgdHlwZT0iZGF0ZXRpbWUiPjIwMjQtMDEtMDJUMDM6MDQ6MDVaPC90aW1lc3RhbXA+CiAgICA8a2luZD5zdWJzY3JpcHRpb25fY2hhcmdlZF9zdWNjZXNzZnVsbHk8L2tpbmQ+CiAgICAKICAgIDxzdWJqZWN0PjxzdWJzY3JpcHRpb24+CiAgICA8aWQ+c3ViXzEyMzwvaWQ+CiAgICA8dHJhbnNhY3Rpb25zIHR5cGU9ImFycmF5Ij4KICAgICAgPHRyYW5zYWN0aW9uPgogICAgICAgIDxpZD5zdWJfMTIzPC9pZD4KICAgICAgICA8c3RhdHVzPnN1Ym1pdHRlZF9mb3Jfc2V0dGxlbWVudDwvc3RhdHVzPgogICAgICAgIDxhbW91bnQ+NDkuOTk8L2Ftb3VudD4KICAgICAgPC90cmFuc2FjdGlvbj4KICAgIDwvdHJhbnNhY3Rpb25zPgogICAgPGFkZF9vbnMgdHlwZT0iYXJyYXkiPjwvYWRkX29ucz4KICAgIDxkaXNjb3VudHMgdHlwZT0iYXJyYXkiPjwvZGlzY291bnRzPgo8L3N1YnNjcmlwdGlvbj48L3N1YmplY3Q+Cjwvbm90aWZpY2F0aW9uPg=="
)

// body builds a form body the way Braintree sends it.
func body(payload string) []byte {
	return []byte("bt_signature=" + url.QueryEscape("pub|00") + "&bt_payload=" + url.QueryEscape(payload))
}

func xmlBody(doc string) []byte {
	return body(base64.StdEncoding.EncodeToString([]byte(doc)))
}

func TestDecodeCheckVector(t *testing.T) {
	n, err := btnotify.Decode(body(vecCheckPayload))
	require.NoError(t, err)
	assert.Equal(t, "check", n.Kind)
	assert.Equal(t, time.Date(2017, 4, 24, 4, 25, 10, 0, time.UTC), n.Timestamp)
	assert.Nil(t, n.Subscription)
	assert.Equal(t, "check", n.SubjectKind)
	assert.Empty(t, n.SubjectID)
}

func TestDecodeSubscriptionVector(t *testing.T) {
	n, err := btnotify.Decode(body(vecSubPayload))
	require.NoError(t, err)
	assert.Equal(t, "subscription_charged_successfully", n.Kind)
	assert.Equal(t, time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC), n.Timestamp)
	assert.Equal(t, "subscription", n.SubjectKind)
	assert.Equal(t, "sub_123", n.SubjectID)
	require.NotNil(t, n.Subscription)
	assert.Equal(t, "sub_123", n.Subscription.ID)
	require.Len(t, n.Subscription.Transactions, 1)
	tx := n.Subscription.Transactions[0]
	assert.Equal(t, "49.99", tx.Amount)
	assert.Equal(t, "submitted_for_settlement", tx.Status)
	minor, err := btnotify.MinorUnits(tx.Amount)
	require.NoError(t, err)
	assert.Equal(t, int64(4999), minor)
}

const pastDueXML = `<?xml version="1.0" encoding="UTF-8"?>
<notification>
  <kind>subscription_went_past_due</kind>
  <timestamp type="datetime">2024-03-05T06:07:08.5+01:00</timestamp>
  <subject>
    <subscription>
      <id>sub_pd</id>
      <status>Past Due</status>
      <plan-id>gold_monthly</plan-id>
      <price>49.99</price>
      <first-billing-date type="date">2024-01-05</first-billing-date>
      <next-billing-date type="date">2024-04-05</next-billing-date>
      <billing_period_end_date type="date">2024-04-04</billing_period_end_date>
      <trial-period type="boolean">true</trial-period>
      <trial-duration type="integer">14</trial-duration>
      <trial-duration-unit>day</trial-duration-unit>
      <failure-count type="integer">2</failure-count>
      <add-ons type="array"/>
      <transactions type="array">
        <transaction>
          <id>tx_1</id>
          <status>processor_declined</status>
          <amount>49.99</amount>
          <currency-iso-code>EUR</currency-iso-code>
          <created-at type="datetime">2024-03-05T05:07:00Z</created-at>
          <customer><id>cus_1</id><first-name>Ada</first-name><last-name>Lovelace</last-name><email>Ada@Example.com</email>
            <custom-fields><user-id>user_ada</user-id><DEAL_ID>deal_9</DEAL_ID><empty></empty></custom-fields></customer>
          <custom-fields><user_id>user_tx</user_id><run-id>run_1</run-id></custom-fields>
        </transaction>
        <transaction>
          <id>tx_0</id>
          <amount>49.99</amount>
          <customer><id></id></customer>
          <customer-details><id>cus_2</id><email nil="true"/></customer-details>
          <created-at type="datetime" nil="true"/>
        </transaction>
      </transactions>
    </subscription>
  </subject>
</notification>
`

func TestDecodeHandWrittenSubscription(t *testing.T) {
	n, err := btnotify.Decode(xmlBody(pastDueXML))
	require.NoError(t, err)
	assert.Equal(t, "subscription_went_past_due", n.Kind)
	assert.Equal(t, time.Date(2024, 3, 5, 5, 7, 8, 500_000_000, time.UTC), n.Timestamp)
	assert.Equal(t, time.UTC, n.Timestamp.Location())
	want := &btnotify.Subscription{
		ID:                   "sub_pd",
		Status:               "Past Due",
		PlanID:               "gold_monthly",
		Price:                "49.99",
		NextBillingDate:      "2024-04-05",
		BillingPeriodEndDate: "2024-04-04",
		FirstBillingDate:     "2024-01-05",
		TrialPeriod:          true,
		TrialDuration:        14,
		TrialDurationUnit:    "day",
		FailureCount:         2,
		Transactions: []btnotify.Transaction{
			{ID: "tx_1", Status: "processor_declined", Amount: "49.99", CurrencyISOCode: "EUR", CustomerID: "cus_1",
				CustomerEmail: "Ada@Example.com", CustomerFirstName: "Ada", CustomerLastName: "Lovelace",
				// the customer's custom fields over the transaction's; names as the API spells them
				CustomFields: map[string]string{"user_id": "user_ada", "deal_id": "deal_9", "run_id": "run_1"},
				CreatedAt:    time.Date(2024, 3, 5, 5, 7, 0, 0, time.UTC)},
			{ID: "tx_0", Amount: "49.99", CustomerID: "cus_2"},
		},
	}
	assert.Equal(t, want, n.Subscription)
	assert.Equal(t, "sub_pd", n.SubjectID)
}

func TestDecodeOtherSubjects(t *testing.T) {
	n, err := btnotify.Decode(xmlBody(`<notification><kind>dispute_opened</kind><timestamp>2024-01-02T03:04:05Z</timestamp><subject><dispute><amount>1.00</amount><id>dp_1</id></dispute></subject></notification>`))
	require.NoError(t, err)
	assert.Equal(t, "dispute", n.SubjectKind)
	assert.Equal(t, "dp_1", n.SubjectID)
	assert.Nil(t, n.Subscription)

	n, err = btnotify.Decode(xmlBody(`<notification><kind>x</kind><timestamp>2024-01-02T03:04:05Z</timestamp></notification>`))
	require.NoError(t, err)
	assert.Empty(t, n.SubjectKind)
	assert.Empty(t, n.SubjectID)
}

func TestDecodeMalformed(t *testing.T) {
	const ok = "<kind>check</kind><timestamp>2017-04-24T04:25:10Z</timestamp>"
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	cases := []struct {
		name string
		body []byte
		msg  string // substring of the error
	}{
		{"empty body", nil, "bt_payload is missing"},
		{"no payload", []byte("bt_signature=a%7Cb"), "bt_payload is missing"},
		{"empty payload", []byte("bt_payload="), "bt_payload is missing"},
		{"two payloads", []byte("bt_payload=" + b64("<notification/>") + "&bt_payload=x"), "more than one"},
		{"bad form escape", []byte("bt_payload=%zz"), "not a form"},
		{"semicolon in form", []byte("a=1;b=2&bt_payload=x"), "not a form"},
		{"illegal character", body("PD94 bWw="), "outside"},
		{"carriage return", body("PD94\r\nbWw="), "outside"},
		{"url-safe base64", body("ab-_"), "outside"},
		{"not base64", body("abc"), "not base64"},
		{"not XML", body(b64("hello")), "outside the root"},
		{"only a declaration", body(b64(`<?xml version="1.0"?>`)), "no root element"},
		{"truncated XML", body(b64("<notification><kind>")), "does not decode"},
		{"mismatched tags", body(b64("<notification></kind>")), "does not decode"},
		{"two roots", body(b64("<notification>" + ok + "</notification><notification/>")), "more than one root"},
		{"other root", body(b64("<subscription>" + ok + "</subscription>")), "not <notification>"},
		{"no kind", body(b64("<notification><timestamp>2017-04-24T04:25:10Z</timestamp></notification>")), "field kind is missing"},
		{"empty kind", body(b64("<notification><kind> </kind><timestamp>2017-04-24T04:25:10Z</timestamp></notification>")), "field kind is missing"},
		{"nil kind", body(b64(`<notification><kind nil="true">x</kind><timestamp>2017-04-24T04:25:10Z</timestamp></notification>`)), "field kind is missing"},
		{"no timestamp", body(b64("<notification><kind>check</kind></notification>")), "field timestamp is missing"},
		{"bad timestamp", body(b64("<notification><kind>check</kind><timestamp>yesterday</timestamp></notification>")), "field timestamp is not"},
		{"bad trial-period", body(b64("<notification>" + ok + "<subject><subscription><trial-period>maybe</trial-period></subscription></subject></notification>")), "trial-period is not a boolean"},
		{"bad trial-duration", body(b64("<notification>" + ok + "<subject><subscription><trial-duration>x</trial-duration></subscription></subject></notification>")), "trial-duration is not an integer"},
		{"huge failure-count", body(b64("<notification>" + ok + "<subject><subscription><failure-count>99999999999</failure-count></subscription></subject></notification>")), "failure-count is not an integer"},
		{"bad created-at", body(b64("<notification>" + ok + "<subject><subscription><transactions><transaction><created-at>x</created-at></transaction></transactions></subscription></subject></notification>")), "created-at is not"},
		{"too deep", body(b64("<notification>" + strings.Repeat("<a>", 100) + strings.Repeat("</a>", 100) + "</notification>")), "deeper"},
		{"undeclared charset", body(b64(`<?xml version="1.0" encoding="ISO-8859-1"?><notification>` + ok + "</notification>")), "does not decode"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := btnotify.Decode(c.body)
			require.Error(t, err)
			assert.Equal(t, domain.CodeEventMalformed, domain.ErrorCode(err))
			assert.Contains(t, err.Error(), c.msg)
		})
	}
}

func TestMinorUnits(t *testing.T) {
	good := map[string]int64{
		"49.99": 4999, "0.01": 1, "0": 0, "49": 4900, "49.9": 4990, "49.990": 4999,
		"007.00": 700, "-5.25": -525, "92233720368547758.07": 9223372036854775807,
	}
	for in, want := range good {
		got, err := btnotify.MinorUnits(in)
		if assert.NoError(t, err, in) {
			assert.Equal(t, want, got, in)
		}
	}
	for _, in := range []string{"", "-", ".", "1.", ".5", "49.999", "1e3", " 1.00", "1.00 ", "+1", "1,00", "--1", "1.2.3", "0x10", "92233720368547758.08", "١٢"} {
		_, err := btnotify.MinorUnits(in)
		if assert.Error(t, err, in) {
			assert.Equal(t, domain.CodeEventMalformed, domain.ErrorCode(err), in)
		}
	}
}

// FuzzDecode feeds arbitrary bodies to Decode: it must never panic, fail
// only with CodeEventMalformed, and an accepted notification always has a
// kind and a UTC timestamp.
func FuzzDecode(f *testing.F) {
	f.Add(string(body(vecCheckPayload)))
	f.Add(string(body(vecSubPayload)))
	f.Add(string(xmlBody(pastDueXML)))
	f.Add("bt_payload=%zz")
	f.Add("bt_payload=" + base64.StdEncoding.EncodeToString([]byte("<notification><kind>k</kind><timestamp>2024-01-02T03:04:05Z</timestamp><subject/></notification>")))
	f.Fuzz(func(t *testing.T, b string) {
		n, err := btnotify.Decode([]byte(b))
		if err != nil {
			assert.Equal(t, domain.CodeEventMalformed, domain.ErrorCode(err))
			return
		}
		assert.NotEmpty(t, n.Kind)
		assert.Equal(t, time.UTC, n.Timestamp.Location())
		if n.Subscription != nil {
			assert.Equal(t, n.Subscription.ID, n.SubjectID)
			for _, tx := range n.Subscription.Transactions {
				assert.LessOrEqual(t, len(tx.CustomFields), 64, "custom fields are bounded")
				for k, v := range tx.CustomFields {
					assert.Equal(t, strings.ReplaceAll(strings.ToLower(k), "-", "_"), k, "custom field names as the API spells them")
					assert.NotEmpty(t, v)
				}
			}
		}
	})
}

// FuzzMinorUnits checks that whatever MinorUnits accepts formats back to
// the same amount.
func FuzzMinorUnits(f *testing.F) {
	for _, s := range []string{"49.99", "0", "-1.5", "1.", "92233720368547758.07"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := btnotify.MinorUnits(s)
		if err != nil {
			return
		}
		again, err := btnotify.MinorUnits(format(n))
		require.NoError(t, err)
		assert.Equal(t, n, again)
	})
}

func format(n int64) string {
	sign, u := "", uint64(n)
	if n < 0 {
		sign, u = "-", -u
	}
	return fmt.Sprintf("%s%d.%02d", sign, u/100, u%100)
}
