// Generates notifications.json: Braintree webhook notifications built and
// signed by Braintree's official Node library (braintree@3.40.0), for the
// billfold tests. Run from a directory where `npm install braintree@3.40.0`
// was done:  node generate.js > notifications.json
// The output is deterministic: the library reads the clock through
// `new Date()`, which is pinned here to each fixture's time.
"use strict";
const braintree = require("braintree");

const keys = {
  merchantId: "billfold_merchant",
  publicKey: "billfold_public_key",
  privateKey: "billfold_private_key",
};
const gateway = new braintree.BraintreeGateway({ environment: braintree.Environment.Sandbox, ...keys });
const testing = gateway.webhookTesting;
const Kind = braintree.WebhookNotification.Kind;

// Pin the clock the library's sampleXml reads.
const RealDate = Date;
let pinned = RealDate.parse("2026-01-01T00:00:00Z");
global.Date = class extends RealDate {
  constructor(...a) {
    if (a.length === 0) super(pinned);
    else super(...a);
  }
  static now() {
    return pinned;
  }
};

const out = [];
// sample asks the library for a signed notification of kind about id at
// time at. subject, when given, replaces the library's sample subject (the
// library's envelope, encoding and signature are kept); replace rewrites
// fixed values of the library's subject for kinds whose sample ignores id.
function sample(name, kind, id, at, opts = {}) {
  pinned = RealDate.parse(at);
  const orig = testing.subjectXmlFor;
  if (opts.subject || opts.replace) {
    testing.subjectXmlFor = function (k, i) {
      let xml = opts.subject || orig.call(this, k, i);
      for (const [from, to] of opts.replace || []) xml = xml.split(from).join(to);
      return xml;
    };
  }
  try {
    const n = testing.sampleNotification(kind, id);
    out.push({ name, kind, id, at, bt_signature: n.bt_signature, bt_payload: n.bt_payload });
  } finally {
    testing.subjectXmlFor = orig;
  }
}

// 1. The library's own sample for every kind it knows, twice: two objects
//    in the same second (kinds whose sample ignores the id get it written
//    into their identifying element, see README.md).
const same = "2026-01-01T00:00:00Z";
const rewrite = {
  local_payment_completed: "a-payment-id",
  local_payment_expired: "a-payment-id",
  local_payment_funded: "a-payment-id",
  local_payment_reversed: "a-payment-id",
  payment_method_customer_data_updated: "<token>TOKEN-12345</token>",
  grantor_updated_granted_payment_method: "<token>abc123z</token>",
  recipient_updated_granted_payment_method: "<token>abc123z</token>",
  partner_merchant_connected: "<partner-merchant-id>abc123</partner-merchant-id>",
  partner_merchant_disconnected: "<partner-merchant-id>abc123</partner-merchant-id>",
  partner_merchant_declined: "<partner-merchant-id>abc123</partner-merchant-id>",
};
for (const kind of Object.values(Kind).sort()) {
  for (const obj of ["obj_a", "obj_b"]) {
    const opts = {};
    const fixed = rewrite[kind];
    if (fixed) {
      opts.replace = [[fixed, fixed.startsWith("<") ? fixed.replace(/>[^<]*</, `>${obj}<`) : obj]];
    }
    if ((kind === Kind.Check || kind === Kind.AccountUpdaterDailyReport) && obj === "obj_b") {
      continue; // no object: one notification per second is all there is
    }
    sample(`${kind}/${obj}`, kind, obj, same, opts);
  }
}
// The same check a second later is another notification.
sample("check/later", Kind.Check, "", "2026-01-01T00:00:01Z");

// 2. Subscription histories with the subject fields Braintree sends
//    (status, trial, dates, transactions), signed by the library.
function subscription(id, f) {
  const txs = (f.transactions || [])
    .map(
      (t) => `
      <transaction>
        <id>${t.id}</id>
        <status>${t.status}</status>
        <amount>49.99</amount>
        <currency-iso-code>USD</currency-iso-code>
        <created-at type="datetime">${t.at}</created-at>
        <customer><id>bt_cus_1</id></customer>
      </transaction>`
    )
    .join("");
  const date = (name, v) => (v ? `<${name} type="date">${v}</${name}>` : `<${name} nil="true"/>`);
  return `<subscription>
    <id>${id}</id>
    <status>${f.status}</status>
    <plan-id>gold</plan-id>
    <price>49.99</price>
    <balance>${f.balance || "0.00"}</balance>
    <trial-period type="boolean">${!!f.trial}</trial-period>
    <trial-duration type="integer">${f.trial ? 14 : ""}</trial-duration>
    <trial-duration-unit>day</trial-duration-unit>
    <failure-count type="integer">${f.failures || 0}</failure-count>
    ${date("first-billing-date", f.first)}
    ${date("next-billing-date", f.next)}
    ${date("billing-period-end-date", f.periodEnd)}
    <transactions type="array">${txs}
    </transactions>
    <add_ons type="array"></add_ons>
    <discounts type="array"></discounts>
</subscription>`;
}
const S = (name, kind, at, id, f) => sample(name, kind, id, at, { subject: subscription(id, f) });
// A trial whose first cycle is paid by the balance.
S("trial/went_active", Kind.SubscriptionWentActive, "2026-01-01T10:00:00Z", "bt_sub_trial",
  { status: "Active", trial: true, first: "2026-01-15", next: "2026-01-15", balance: "-49.99" });
S("trial/billing_skipped", Kind.SubscriptionBillingSkipped, "2026-01-15T10:00:00Z", "bt_sub_trial",
  { status: "Active", trial: true, first: "2026-01-15", next: "2026-02-15", periodEnd: "2026-02-14" });
// A trial that ends and is charged, then a failure and a retry that succeeds
// in one second.
S("paid/went_active", Kind.SubscriptionWentActive, "2026-01-01T11:00:00Z", "bt_sub_paid",
  { status: "Active", trial: true, first: "2026-01-15", next: "2026-01-15" });
S("paid/trial_ended", Kind.SubscriptionTrialEnded, "2026-01-15T11:00:00Z", "bt_sub_paid",
  { status: "Active", trial: true, first: "2026-01-15", next: "2026-01-15" });
S("paid/charged_successfully", Kind.SubscriptionChargedSuccessfully, "2026-01-15T11:00:01Z", "bt_sub_paid",
  { status: "Active", trial: true, first: "2026-01-15", next: "2026-02-15", periodEnd: "2026-02-14",
    transactions: [{ id: "tx_1", status: "submitted_for_settlement", at: "2026-01-15T11:00:00Z" }] });
const renewal = "2026-02-15T11:00:02Z";
S("paid/charged_unsuccessfully", Kind.SubscriptionChargedUnsuccessfully, renewal, "bt_sub_paid",
  { status: "Past Due", trial: true, first: "2026-01-15", next: "2026-02-15", periodEnd: "2026-02-14", failures: 1,
    transactions: [{ id: "tx_2", status: "processor_declined", at: "2026-02-15T11:00:01Z" },
                   { id: "tx_1", status: "settled", at: "2026-01-15T11:00:00Z" }] });
S("paid/went_past_due", Kind.SubscriptionWentPastDue, renewal, "bt_sub_paid",
  { status: "Past Due", trial: true, first: "2026-01-15", next: "2026-02-15", periodEnd: "2026-02-14", failures: 1,
    transactions: [{ id: "tx_2", status: "processor_declined", at: "2026-02-15T11:00:01Z" },
                   { id: "tx_1", status: "settled", at: "2026-01-15T11:00:00Z" }] });
S("paid/charged_successfully_retry", Kind.SubscriptionChargedSuccessfully, renewal, "bt_sub_paid",
  { status: "Active", trial: true, first: "2026-01-15", next: "2026-03-15", periodEnd: "2026-03-14",
    transactions: [{ id: "tx_3", status: "submitted_for_settlement", at: "2026-02-15T11:00:02Z" },
                   { id: "tx_2", status: "processor_declined", at: "2026-02-15T11:00:01Z" },
                   { id: "tx_1", status: "settled", at: "2026-01-15T11:00:00Z" }] });
// A subscription that is canceled in the second of its failed charge.
S("canceled/went_active", Kind.SubscriptionWentActive, "2026-01-01T12:00:00Z", "bt_sub_canceled",
  { status: "Active", next: "2026-02-01", periodEnd: "2026-01-31",
    transactions: [{ id: "tx_c1", status: "settled", at: "2026-01-01T12:00:00Z" }] });
S("canceled/charged_unsuccessfully", Kind.SubscriptionChargedUnsuccessfully, "2026-02-01T12:00:00Z", "bt_sub_canceled",
  { status: "Past Due", next: "2026-02-01", periodEnd: "2026-01-31", failures: 1,
    transactions: [{ id: "tx_c2", status: "processor_declined", at: "2026-02-01T12:00:00Z" },
                   { id: "tx_c1", status: "settled", at: "2026-01-01T12:00:00Z" }] });
S("canceled/canceled", Kind.SubscriptionCanceled, "2026-02-01T12:00:00Z", "bt_sub_canceled",
  { status: "Canceled", next: "2026-02-01", periodEnd: "2026-01-31", failures: 1,
    transactions: [{ id: "tx_c2", status: "processor_declined", at: "2026-02-01T12:00:00Z" },
                   { id: "tx_c1", status: "settled", at: "2026-01-01T12:00:00Z" }] });

// 3. The library's answers to verification challenges.
const challenges = ["38aa1ddb1de5f4ff3b1ef96f7b1fd0be", "0123456789abcdef0123", "ffffffffffffffffffffffffffffffff"].map(
  (c) => ({ challenge: c, response: gateway.webhookNotification.verify(c) })
);

process.stdout.write(
  JSON.stringify(
    { generator: "braintree@3.40.0 webhookTesting.sampleNotification (generate.js)", ...keys, notifications: out, challenges },
    null,
    1
  ) + "\n"
);
