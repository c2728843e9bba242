// billfold console: the two live parts, without dependencies. Values go
// into the page as text (textContent), never as markup.
"use strict";

// The change feed over SSE: the newest changes on top, at most 30 kept.
function followChanges(list) {
  const status = document.querySelector("[data-feed-status]");
  const es = new EventSource(list.dataset.feed);
  es.onopen = () => { status.textContent = "Connected: changes appear here as they are stored."; };
  es.onerror = () => { status.textContent = "The change feed is not connected; the browser retries."; };
  // The feed names its events "change".
  es.addEventListener("change", (msg) => {
    let ch;
    try { ch = JSON.parse(msg.data); } catch (e) { return; }
    const li = document.createElement("li");
    let href = null;
    if (ch.projection === "subscriptions") href = "/ui/subscriptions/";
    if (ch.projection === "customers") href = "/ui/customers/";
    const what = (ch.projection || "") + " " + (ch.id || "") + " v" + (ch.version || 0);
    if (href && ch.provider && ch.id) {
      const a = document.createElement("a");
      a.href = href + encodeURIComponent(ch.provider) + "/" + encodeURIComponent(ch.id);
      a.textContent = what;
      li.appendChild(a);
    } else {
      li.appendChild(document.createTextNode(what));
    }
    if (ch.event_id) li.appendChild(document.createTextNode(" ← " + ch.event_id));
    list.insertBefore(li, list.firstChild);
    while (list.children.length > 30) list.removeChild(list.lastChild);
  });
}

// shortTime writes an RFC 3339 time as the server-rendered pages do.
function shortTime(s) {
  const d = new Date(s);
  return isNaN(d) ? s : d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

// A rebuild's progress, read every second until it finishes.
function followRebuild(section) {
  const url = section.dataset.rebuild;
  const set = (name, text) => {
    const el = section.querySelector('[data-field="' + name + '"]');
    if (el) el.textContent = text;
  };
  const finished = (s) => s !== "running" && s !== "switching";
  const tick = async () => {
    let rb;
    try {
      const res = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (!res.ok) throw new Error("HTTP " + res.status);
      rb = await res.json();
    } catch (e) {
      set("live", "Progress unavailable (" + e.message + "); retrying.");
      setTimeout(tick, 2000);
      return;
    }
    const pct = rb.journal_head > 0 ? Math.min(100, Math.floor(rb.folded * 100 / rb.journal_head)) : 0;
    const bar = section.querySelector("progress");
    if (bar) { bar.value = pct; bar.textContent = pct + "%"; }
    const badge = section.querySelector('[data-field="status"]');
    if (badge) { badge.textContent = rb.status; badge.className = "badge " + rb.status; }
    set("folded", String(rb.folded));
    set("journal_head", String(rb.journal_head));
    set("caught_up", String(rb.caught_up || 0));
    set("rate_per_second", String(Math.round(rb.rate_per_second || 0)));
    set("eta", Math.round(rb.eta_seconds || 0) + "s");
    set("records", String(rb.records || 0));
    set("dead_letters_resolved", String(rb.dead_letters_resolved || 0));
    if (rb.finished_at) set("finished_at", shortTime(rb.finished_at));
    if (rb.error) set("error", (rb.code ? rb.code + " " : "") + rb.error);
    if (finished(rb.status)) {
      set("live", "Finished: " + rb.status + ".");
      const cancel = section.querySelector("[data-hide-when-finished]");
      if (cancel) cancel.remove();
      return;
    }
    set("live", "Following live.");
    setTimeout(tick, 1000);
  };
  tick();
}

document.addEventListener("DOMContentLoaded", () => {
  const feed = document.querySelector("[data-feed]");
  if (feed && window.EventSource) followChanges(feed);
  const rb = document.querySelector("[data-rebuild]");
  if (rb && window.fetch) followRebuild(rb);
});
