// The audit history: filtered pages, streamed exports (fetched with the
// bearer token, then saved from a blob) and verification of the hash chain.
import { api, h, shell, showNotice, hideNotice, fmtTime } from "/assets/app.js";

const $ = (id) => document.getElementById(id);
const state = { ws: "", cursor: "", next: "" };
const base = () => `/v1/workspaces/${encodeURIComponent(state.ws)}/audit`;

// filterQuery reads the filters; a datetime-local value is local time and
// the API wants RFC 3339.
function filterQuery(withPaging) {
  const q = new URLSearchParams();
  const set = (name, v) => { if (v) q.set(name, v); };
  set("action", $("audit-action").value);
  set("actor", $("audit-actor").value.trim());
  set("target", $("audit-target").value.trim());
  for (const [name, id] of [["from", "audit-from"], ["to", "audit-to"]]) {
    const v = $(id).value;
    if (v) set(name, new Date(v).toISOString());
  }
  if (withPaging) {
    q.set("limit", "50");
    set("cursor", state.cursor);
  }
  return q.toString();
}

// An erased person (account deleted) is shown by id: their address is gone.
const who = (p) =>
  p ? (p.erased ? `erased user ${p.id}` : p.email || p.id || (p.system ? "the platform" : "—")) : "—";

function details(d) {
  if (!d || typeof d !== "object") return "";
  return Object.entries(d).map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`).join(", ");
}

async function load() {
  const notice = $("audit-notice");
  try {
    const page = await api("GET", `${base()}?${filterQuery(true)}`);
    hideNotice(notice);
    $("audit-rows").replaceChildren(...page.items.map((e) => h("tr", { "data-action": e.action, "data-seq": e.seq },
      h("td", {}, e.seq),
      h("td", {}, fmtTime(e.occurredAt)),
      h("td", { class: "action" }, e.action, e.details && e.details.escalation ? h("span", { class: "badge status-suspended" }, " escalation") : null),
      h("td", {}, e.actor && e.actor.system ? "the platform" : who(e.actor)),
      h("td", {}, who(e.target)),
      h("td", { class: "mono" }, details(e.details)),
      h("td", { class: "mono", title: e.hash }, (e.hash || "").slice(0, 12)))));
    if (page.items.length === 0) {
      $("audit-rows").append(h("tr", {}, h("td", { colspan: "7", class: "muted" }, "No entries match these filters.")));
    }
    state.next = page.nextCursor || "";
    $("audit-older").disabled = !state.next;
    $("audit-newest").disabled = !state.cursor;
  } catch (err) {
    showNotice(notice, "error", err);
  }
}

async function exportAs(format) {
  const notice = $("audit-notice");
  const accept = format === "csv" ? "text/csv" : "application/x-ndjson";
  try {
    const blob = await api("GET", `${base()}?${filterQuery(false)}`, { accept });
    const url = URL.createObjectURL(blob);
    const a = h("a", { href: url, download: `audit-${state.ws}.${format}` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
    showNotice(notice, "ok", `Exported ${format.toUpperCase()} (${blob.size} bytes).`);
  } catch (err) {
    showNotice(notice, "error", err);
  }
}

async function verify() {
  const notice = $("audit-notice");
  try {
    const v = await api("GET", `${base()}/verify`);
    if (v.ok) showNotice(notice, "ok", `The hash chain is intact: ${v.entries} entries verified.`);
    else showNotice(notice, "error", `The hash chain is broken at entry #${v.firstBrokenSeq} (of ${v.entries}).`);
  } catch (err) {
    showNotice(notice, "error", err);
  }
}

async function start() {
  const ws = await shell("/audit", $("notice"), (id) => { state.ws = id; state.cursor = ""; load(); });
  if (!ws) return;
  state.ws = ws.id;
  $("audit-section").hidden = false;
  $("audit-filters").addEventListener("submit", (ev) => { ev.preventDefault(); state.cursor = ""; load(); });
  $("audit-older").addEventListener("click", () => { state.cursor = state.next; load(); });
  $("audit-newest").addEventListener("click", () => { state.cursor = ""; load(); });
  $("export-csv").addEventListener("click", () => exportAs("csv"));
  $("export-ndjson").addEventListener("click", () => exportAs("ndjson"));
  $("verify").addEventListener("click", verify);
  await load();
  document.body.dataset.ready = "true";
}

start();
