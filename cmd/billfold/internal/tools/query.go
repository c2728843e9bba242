// Package tools holds billfold's commands that talk to a running server
// over its admin API: get, list, watch, replay, dlq, verify, events,
// pause, resume, and sign/send (which deliver to the public listener).
// Each takes --server and -o from cli.Flags and calls the API through
// package cli; it must never import the serve wiring (package main),
// ingest's intake, or the projections' stores: only the API's types.
package tools

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/billfold/billfold/cmd/billfold/internal/cli"
	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/projections/httpapi"
	"github.com/billfold/billfold/projections/query"
)

// ---------------------------------------------------------------------------
// billfold get / billfold list.

// Get is `billfold get` with its arguments; it returns the exit code.
func Get(args []string, stdout, stderr io.Writer) int {
	var f cli.Flags
	var asOf string
	fs := cli.NewFlagSet("get", stderr)
	f.Register(fs)
	fs.StringVar(&asOf, "as-of", "", "show the record as it stood at this provider time (RFC 3339); folds the whole journal")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: billfold get subscription|customer|order <provider> <id> [flags]   (an order by its payment intent, session or charge id)\n       billfold get wallet <user_id> [flags]")
		fs.PrintDefaults()
	}
	pos, err := cli.ParseInterleaved(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) == 0 {
		fs.Usage()
		return 2
	}
	kind := strings.TrimSuffix(pos[0], "s")
	var path string
	switch {
	case kind == "wallet" && len(pos) == 2:
		path = "/v1/wallets/" + url.PathEscape(pos[1])
	case (kind == "subscription" || kind == "customer" || kind == "order") && len(pos) == 3:
		path = "/v1/" + kind + "s/" + url.PathEscape(pos[1]) + "/" + url.PathEscape(pos[2])
	default:
		fs.Usage()
		return 2
	}
	v := url.Values{}
	if asOf != "" {
		v.Set("as_of", asOf)
	}
	body, err := cli.AdminGet(f.Server, path, v)
	if err != nil {
		return cli.Fail(stderr, "get", err)
	}
	if f.Output == "json" {
		_, _ = stdout.Write(body)
		return 0
	}
	if err := printRecord(stdout, kind, body); err != nil {
		return cli.Fail(stderr, "get", err)
	}
	return 0
}

// List is `billfold list` with its arguments; it returns the exit code.
func List(args []string, stdout, stderr io.Writer) int {
	var f cli.Flags
	var state, provider, customer, account, cursor string
	var limit int
	fs := cli.NewFlagSet("list", stderr)
	f.Register(fs)
	fs.StringVar(&state, "state", "", "subscriptions: lifecycle state: "+strings.Join(stateNames(), ", "))
	fs.StringVar(&provider, "provider", "", "provider")
	fs.StringVar(&customer, "customer", "", "subscriptions: the provider's customer id")
	fs.StringVar(&account, "account", "", "a Stripe Connect account (acct_...): only the records its events made")
	fs.IntVar(&limit, "limit", 0, "list at most this many (0: all, following next_cursor to the end)")
	fs.StringVar(&cursor, "cursor", "", "start after this cursor (next_cursor of an earlier list)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: billfold list subscriptions [--state s] [--provider p] [--customer c] [--account acct_...] [--limit n] [flags]\n"+
			"       billfold list customers|orders [--provider p] [--account acct_...] [--limit n] [flags]")
		fs.PrintDefaults()
	}
	pos, err := cli.ParseInterleaved(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) != 1 || !slices.Contains([]string{"subscriptions", "customers", "orders"}, pos[0]) {
		fs.Usage()
		return 2
	}
	what := pos[0]
	if what != "subscriptions" && (state != "" || customer != "") {
		fmt.Fprintf(stderr, "billfold list %s: --state and --customer select subscriptions only\n", what)
		return 2
	}
	if limit < 0 {
		fmt.Fprintln(stderr, "billfold list: --limit must be positive")
		return 2
	}
	var all query.Page
	all.Items = []json.RawMessage{}
	for {
		v := url.Values{}
		for k, s := range map[string]string{"state": state, "provider": provider, "customer": customer, "account": account, "cursor": cursor} {
			if s != "" {
				v.Set(k, s)
			}
		}
		page := httpapi.MaxListLimit
		if limit > 0 {
			page = min(page, limit-len(all.Items))
		}
		v.Set("limit", strconv.Itoa(page))
		body, err := cli.AdminGet(f.Server, "/v1/"+what, v)
		if err != nil {
			return cli.Fail(stderr, "list", err)
		}
		var p query.Page
		if err := json.Unmarshal(body, &p); err != nil {
			return cli.Fail(stderr, "list", err)
		}
		all.Items = append(all.Items, p.Items...)
		cursor, all.NextCursor = p.NextCursor, p.NextCursor
		if cursor == "" || (limit > 0 && len(all.Items) >= limit) {
			break
		}
	}
	if f.Output == "json" {
		return cli.WriteJSON(stdout, all)
	}
	if err := printList(stdout, what, all.Items); err != nil {
		return cli.Fail(stderr, "list", err)
	}
	if all.NextCursor != "" {
		fmt.Fprintf(stderr, "more: --cursor %s\n", all.NextCursor)
	}
	return 0
}

// printList prints a list's records as a table, one row each.
func printList(w io.Writer, what string, items []json.RawMessage) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	header := map[string]string{
		"subscriptions": "PROVIDER\tID\tCUSTOMER\tSTATE\tSTATUS\tENTITLED\tPERIOD END\tACCOUNT\tUPDATED",
		"customers":     "PROVIDER\tID\tEMAIL\tNAME\tDELETED\tLINKS\tACCOUNT\tUPDATED",
		"orders":        "PROVIDER\tID\tCUSTOMER\tSTATUS\tAMOUNT\tREFUNDED\tCURRENCY\tACCOUNT\tUPDATED",
	}[what]
	fmt.Fprintln(tw, header)
	for _, raw := range items {
		var err error
		switch what {
		case "subscriptions":
			var s domain.SubscriptionRecord
			if err = json.Unmarshal(raw, &s); err == nil {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%t\t%s\t%s\t%s\n", s.Provider, s.ID, cli.Dash(s.CustomerID), s.State, cli.Dash(s.ProviderStatus),
					s.Entitled, cli.TimeOrDash(s.CurrentPeriodEnd), cli.Dash(s.Account), s.UpdatedAt.Format(time.RFC3339))
			}
		case "customers":
			var c domain.CustomerRecord
			if err = json.Unmarshal(raw, &c); err == nil {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%t\t%s\t%s\t%s\n", c.Provider, c.ID, cli.Dash(c.Email), cli.Dash(c.Name), c.Deleted,
					linksText(c.Links), cli.Dash(c.Account), c.UpdatedAt.Format(time.RFC3339))
			}
		case "orders":
			var o domain.OrderRecord
			if err = json.Unmarshal(raw, &o); err == nil {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\n", o.Provider, o.ID, cli.Dash(o.CustomerID), o.Status, o.Amount,
					o.AmountRefunded, cli.Dash(o.Currency), cli.Dash(o.Account), o.UpdatedAt.Format(time.RFC3339))
			}
		}
		if err != nil {
			return err
		}
	}
	return tw.Flush()
}

func stateNames() []string {
	out := make([]string, len(domain.LifecycleStates))
	for i, s := range domain.LifecycleStates {
		out[i] = string(s)
	}
	return out
}

func linksText(ls []domain.Link) string {
	parts := make([]string, len(ls))
	for i, l := range ls {
		parts[i] = l.Kind + "=" + l.Value
	}
	return cli.Dash(strings.Join(parts, " "))
}

// printRecord prints one record as an aligned field list.
func printRecord(w io.Writer, kind string, body []byte) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k string, v any) { fmt.Fprintf(tw, "%s\t%v\n", k, v) }
	meta := func(m domain.RecordMeta) {
		row("version", m.Version)
		row("updated_at", m.UpdatedAt.Format(time.RFC3339))
	}
	switch kind {
	case "subscription":
		var r domain.SubscriptionRecord
		if err := json.Unmarshal(body, &r); err != nil {
			return err
		}
		row("provider", r.Provider)
		row("id", r.ID)
		row("customer", cli.Dash(r.CustomerID))
		row("state", r.State)
		row("provider_status", cli.Dash(r.ProviderStatus))
		row("entitled", r.Entitled)
		row("plan", cli.Dash(r.PlanID))
		row("price", cli.Dash(r.PriceID))
		row("cancel_at_period_end", r.CancelAtPeriodEnd)
		row("current_period_end", cli.TimeOrDash(r.CurrentPeriodEnd))
		row("trial_end", cli.TimeOrDash(r.TrialEnd))
		row("ended_at", cli.TimeOrDash(r.EndedAt))
		if r.LastPayment != nil {
			row("last_payment", r.LastPayment.Outcome+" "+r.LastPayment.At.Format(time.RFC3339))
		}
		meta(r.RecordMeta)
		for _, t := range r.Transitions {
			row("transition", fmt.Sprintf("%s -> %s at %s (%s)", cli.Dash(string(t.From)), t.To, t.At.Format(time.RFC3339), t.EventID))
		}
	case "customer":
		var r domain.CustomerRecord
		if err := json.Unmarshal(body, &r); err != nil {
			return err
		}
		row("provider", r.Provider)
		row("id", r.ID)
		row("email", cli.Dash(r.Email))
		row("name", cli.Dash(r.Name))
		row("deleted", r.Deleted)
		row("links", linksText(r.Links))
		row("created_at", cli.TimeOrDash(r.CreatedAt))
		meta(r.RecordMeta)
	case "order":
		var r struct {
			domain.OrderRecord
			ResolvedFrom *query.OrderResolution `json:"resolved_from"`
		}
		if err := json.Unmarshal(body, &r); err != nil {
			return err
		}
		row("provider", r.Provider)
		row("id", r.ID)
		if f := r.ResolvedFrom; f != nil {
			row("resolved_from", f.Kind+" "+f.ID) // the id asked; id above is the order's key
		}
		row("customer", cli.Dash(r.CustomerID))
		row("status", r.Status)
		row("amount", fmt.Sprintf("%d %s", r.Amount, r.Currency))
		row("amount_refunded", r.AmountRefunded)
		row("links", linksText(r.Links))
		meta(r.RecordMeta)
	case "wallet":
		var r domain.WalletRecord
		if err := json.Unmarshal(body, &r); err != nil {
			return err
		}
		row("user_id", r.UserID)
		row("balance", r.Balance)
		row("available", r.Available)
		row("pending", r.Pending)
		row("user_known", r.UserKnown)
		row("user_deleted", r.Deleted)
		meta(r.RecordMeta)
		for _, e := range r.Entries {
			held := ""
			switch {
			case e.HeldReason == domain.HeldIdentityMismatch:
				held = fmt.Sprintf(" (held: %s, customer %s linked to %s)", e.HeldReason, e.CustomerID, strings.Join(e.CustomerUsers, ", "))
			case e.HeldReason != "":
				held = " (held: " + e.HeldReason + ")"
			case e.Held:
				held = " (held)"
			}
			row("entry", fmt.Sprintf("%+d %s %s%s", e.Amount, e.Reason, e.Reference, held))
		}
	}
	return tw.Flush()
}
