// Access reviews: the workspace's reviews, starting one, deciding each
// frozen item (keep, change the role, revoke) in a dialog, completing the
// review and downloading its evidence.
import { api, h, shell, showNotice, hideNotice, fmtTime, ROLES } from "/assets/app.js";

const $ = (id) => document.getElementById(id);
const state = { ws: "", admin: false, review: null };
const base = () => `/v1/workspaces/${encodeURIComponent(state.ws)}/access-reviews`;

// who shows a person as the API gives them: an id, or an object that may
// say the person was erased (their address is gone; the id stays).
function who(p) {
  if (!p) return "—";
  if (typeof p === "string") return p;
  if (p.erased) return `erased user ${p.userId}`;
  return p.email || p.displayName || p.userId || "—";
}

// itemName shows a reviewed person: their name and address, the address
// alone where the name is the address (a pending invitation), or their id
// once erased.
function itemName(it) {
  if (it.erased || (!it.email && !it.displayName)) return `erased user ${it.userId}`;
  if (!it.displayName || it.displayName === it.email) return it.email;
  return `${it.displayName} <${it.email}>`;
}

const DECISIONS = { keep: "Keep", change_role: "Change role", revoke: "Revoke" };

function decisionText(it) {
  if (!it.decision) return "";
  let text = DECISIONS[it.decision] || it.decision;
  if (it.decision === "change_role" && it.newRole) text += ` → ${it.newRole}`;
  return text;
}

async function loadList() {
  const notice = $("reviews-notice");
  try {
    const list = await api("GET", base());
    hideNotice(notice);
    $("review-rows").replaceChildren(...list.items.map((r) => h("tr", { "data-review-id": r.reviewId, "data-status": r.status },
      h("td", {}, r.name),
      h("td", {}, fmtTime(r.startedAt)),
      h("td", {}, who(r.startedBy)),
      h("td", {}, h("span", { class: `badge ${r.status === "completed" ? "status-active" : "status-invited"}` }, r.status)),
      h("td", {}, `${r.decided} of ${r.items}`),
      h("td", {}, h("button", { type: "button", class: "open", onclick: () => openReview(r.reviewId) }, "Open")))));
    if (list.items.length === 0) {
      $("review-rows").append(h("tr", {}, h("td", { colspan: "6", class: "muted" }, "No access review yet.")));
    }
  } catch (err) {
    showNotice(notice, "error", err);
  }
}

async function startReview(ev) {
  ev.preventDefault();
  const notice = $("reviews-notice");
  const name = $("review-name").value.trim();
  if (!name) return;
  $("review-start").disabled = true;
  try {
    const r = await api("POST", base(), { body: { name } });
    $("review-name").value = "";
    showNotice(notice, "ok", `Started "${name}": ${r.items} to review.`);
    await loadList();
    await openReview(r.reviewId);
  } catch (err) {
    showNotice(notice, "error", err);
  } finally {
    $("review-start").disabled = false;
  }
}

async function openReview(id) {
  const notice = $("review-notice");
  try {
    state.review = await api("GET", `${base()}/${encodeURIComponent(id)}`);
    hideNotice(notice);
    $("review-section").hidden = false;
    renderReview();
    $("review-section").scrollIntoView();
  } catch (err) {
    showNotice($("reviews-notice"), "error", err);
  }
}

function renderReview() {
  const r = state.review;
  const items = r.items || [];
  const decided = items.filter((it) => it.decision).length;
  const open = r.status !== "completed";
  $("review-section").dataset.reviewId = r.reviewId;
  $("review-section").dataset.status = r.status;
  $("review-title").textContent = r.name;
  $("review-summary").textContent = `Started ${fmtTime(r.startedAt)} by ${who(r.startedBy)} · ` +
    `${decided} of ${items.length} decided · ` +
    (open ? "open" : `completed ${fmtTime(r.completedAt)}${r.completedBy ? " by " + who(r.completedBy) : ""}`);
  $("review-complete").hidden = !state.admin || !open;
  $("review-complete").disabled = decided !== items.length;
  const filter = $("item-filter").value;
  const shown = items.filter((it) => filter === "all" || (filter === "undecided" && !it.decision) || (filter === "dormant" && it.dormant));
  $("item-rows").replaceChildren(...shown.map((it) => h("tr", {
    "data-user-id": it.userId, "data-email": it.email || "", "data-decision": it.decision || "",
  },
  h("td", {}, itemName(it), it.dormant ? [" ", h("span", { class: "badge status-suspended" }, "dormant")] : null),
  h("td", { class: "role" }, it.role),
  h("td", { class: "status" }, h("span", { class: `badge status-${it.status}` }, it.status)),
  h("td", {}, who(it.grantedBy), h("div", { class: "hint" }, fmtTime(it.grantedAt))),
  h("td", {}, fmtTime(it.lastLoginAt)),
  h("td", { class: "decision" },
    it.decision
      ? [h("strong", {}, decisionText(it)), h("div", { class: "hint" }, `${who(it.decidedBy)}, ${fmtTime(it.decidedAt)}`),
        it.comment ? h("div", { class: "hint" }, it.comment) : null]
      : open && state.admin ? h("button", { type: "button", class: "decide", onclick: () => decide(it) }, "Decide…") : h("span", { class: "muted" }, "undecided")))));
  if (shown.length === 0) {
    $("item-rows").append(h("tr", {}, h("td", { colspan: "6", class: "muted" }, "Nothing to show with this filter.")));
  }
}

// decide asks for one item's decision in a dialog and records it. A refusal
// (the last Admin, say) is shown and records nothing.
function decide(it) {
  const roleSelect = h("select", { id: "decision-role", disabled: true }, ROLES.filter((r) => r !== it.role).map((r) => h("option", { value: r }, r)));
  const radios = Object.entries(DECISIONS).map(([value, label]) => h("div", {},
    h("label", { class: "radio" }, h("input", { type: "radio", name: "decision", value, checked: value === "keep" }), " ", label)));
  const comment = h("textarea", { id: "decision-comment", maxlength: "1000" });
  const problem = h("div", { role: "alert", hidden: true });
  const dialog = h("dialog", { id: "decision-dialog", "aria-labelledby": "decision-title" },
    h("form", { method: "dialog" },
      h("h2", { id: "decision-title" }, `Decide: ${itemName(it)}`),
      h("p", { class: "hint" }, `${it.role}, ${it.status}`),
      h("fieldset", {}, h("legend", {}, "Decision"), radios),
      h("label", { for: "decision-role" }, "New role"), roleSelect,
      h("label", { for: "decision-comment" }, "Comment"), comment,
      problem,
      h("div", { class: "buttons" },
        h("button", { type: "submit", class: "primary", value: "save", id: "decision-save" }, "Record decision"),
        h("button", { type: "submit", value: "cancel" }, "Cancel"))));
  dialog.addEventListener("change", () => {
    roleSelect.disabled = dialog.querySelector("input[name=decision]:checked").value !== "change_role";
  });
  dialog.querySelector("form").addEventListener("submit", async (ev) => {
    if (ev.submitter && ev.submitter.value === "cancel") return;
    ev.preventDefault();
    const decision = dialog.querySelector("input[name=decision]:checked").value;
    const body = { decision };
    if (decision === "change_role") body.role = roleSelect.value;
    if (comment.value.trim()) body.comment = comment.value.trim();
    try {
      await api("PUT", `${base()}/${encodeURIComponent(state.review.reviewId)}/items/${encodeURIComponent(it.userId)}`, { body });
      dialog.close();
      await openReview(state.review.reviewId);
      await loadList();
    } catch (err) {
      showNotice(problem, "error", err);
    }
  });
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
}

async function complete() {
  const notice = $("review-notice");
  try {
    await api("POST", `${base()}/${encodeURIComponent(state.review.reviewId)}/complete`, { body: {} });
    await openReview(state.review.reviewId);
    await loadList();
    showNotice(notice, "ok", "The review is complete: its evidence is ready to download.");
  } catch (err) {
    showNotice(notice, "error", err);
  }
}

async function evidence(format) {
  const notice = $("review-notice");
  const accept = { json: "application/json", csv: "text/csv", ndjson: "application/x-ndjson" }[format];
  try {
    const blob = await api("GET", `${base()}/${encodeURIComponent(state.review.reviewId)}/evidence`, { accept });
    const url = URL.createObjectURL(blob);
    const a = h("a", { href: url, download: `access-review-${state.review.reviewId}.${format}` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
    showNotice(notice, "ok", `Downloaded the evidence as ${format.toUpperCase()} (${blob.size} bytes).`);
  } catch (err) {
    showNotice(notice, "error", err);
  }
}

function use(ws) {
  state.ws = ws.id;
  state.admin = ws.membership && ws.membership.role === "Admin";
  state.review = null;
  $("review-section").hidden = true;
  $("start-form").hidden = !state.admin;
}

async function start() {
  const ws = await shell("/reviews", $("notice"), (id, membership) => { use({ id, membership }); loadList(); });
  if (!ws) return;
  use(ws);
  $("reviews-section").hidden = false;
  $("start-form").addEventListener("submit", startReview);
  $("review-complete").addEventListener("click", complete);
  $("item-filter").addEventListener("change", renderReview);
  $("review-close").addEventListener("click", () => { $("review-section").hidden = true; state.review = null; });
  for (const f of ["json", "csv", "ndjson"]) $(`evidence-${f}`).addEventListener("click", () => evidence(f));
  await loadList();
  document.body.dataset.ready = "true";
}

start();
