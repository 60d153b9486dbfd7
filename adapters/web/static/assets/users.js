// The Users & Roles page: invite by address with a default role, then the
// user list with filters, paging and a menu per row.
import { api, h, shell, showNotice, hideNotice, fmtTime, ROLES } from "/assets/app.js";

const $ = (id) => document.getElementById(id);
const PAGE_SIZE = 25;

const state = {
  ws: "",
  myRole: "",
  cursors: [""], // cursors[i] opens page i; the last one is the page shown
  asOf: "", // the list's moment (RFC 3339), "" for now
  busy: false,
};

const OUTCOMES = {
  invited: "Invited",
  already_member: "Already a member",
  already_invited: "Already invited (no second e-mail)",
  invalid: "Invalid",
};

const base = () => `/v1/workspaces/${encodeURIComponent(state.ws)}`;

// --- invitations ----------------------------------------------------------

async function sendInvitations(ev) {
  ev.preventDefault();
  const notice = $("invite-notice");
  const emails = $("invite-emails").value.trim();
  hideNotice(notice);
  if (!emails) {
    showNotice(notice, "error", "Type one or more e-mail addresses, separated by commas.");
    $("invite-emails").focus();
    return;
  }
  const send = $("invite-send");
  send.disabled = true;
  try {
    const res = await api("POST", `${base()}/invitations`, { body: { emails, role: $("invite-role").value } });
    const list = $("invite-results");
    list.replaceChildren(...res.results.map((r) => h("li", { "data-email": r.email, "data-outcome": r.outcome },
      h("span", { class: `outcome outcome-${r.outcome}` }, OUTCOMES[r.outcome] || r.outcome), " ",
      h("span", {}, r.email), r.detail ? h("span", { class: "muted" }, ` (${r.detail})`) : null)));
    // Keep only what needs fixing in the box.
    $("invite-emails").value = res.results.filter((r) => r.outcome === "invalid").map((r) => r.email).join(", ");
    await loadUsers();
  } catch (err) {
    showNotice(notice, "error", err);
  } finally {
    send.disabled = false;
  }
}

function resetInvitations() {
  hideNotice($("invite-notice"));
  $("invite-results").replaceChildren();
}

// --- the list -------------------------------------------------------------

function filterQuery(cursor) {
  const q = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if ($("filter-status").value) q.set("status", $("filter-status").value);
  if ($("filter-role").value) q.set("role", $("filter-role").value);
  if ($("filter-q").value.trim()) q.set("q", $("filter-q").value.trim());
  if (state.asOf) {
    // A past list pages by name, with status, role and q only (the API
    // refuses inactiveSince and sort with asOf).
    q.set("asOf", state.asOf);
  } else {
    // The day starts at local midnight; the API wants an RFC 3339 instant.
    const since = $("filter-inactive").value;
    if (since) q.set("inactiveSince", new Date(`${since}T00:00`).toISOString());
    if ($("filter-sort").value !== "displayName") q.set("sort", $("filter-sort").value);
  }
  if (cursor) q.set("cursor", cursor);
  return q.toString();
}

// asOfValue is the "as of" picker's local date and time as an RFC 3339
// instant, or "" for the list as it is now.
function asOfValue() {
  const v = $("filter-asof").value;
  if (!v) return "";
  const d = new Date(v);
  return isNaN(d) ? "" : d.toISOString();
}

async function loadUsers() {
  const notice = $("list-notice");
  const cursor = state.cursors[state.cursors.length - 1];
  state.asOf = asOfValue();
  try {
    const page = await api("GET", `${base()}/users?${filterQuery(cursor)}`);
    hideNotice(notice);
    $("user-rows").replaceChildren(...page.items.map(userRow));
    if (page.items.length === 0) {
      $("user-rows").append(h("tr", {}, h("td", { colspan: "7", class: "muted" }, "No users match these filters.")));
    }
    $("single-admin").hidden = !page.singleAdmin;
    if (state.asOf) showNotice($("asof-notice"), "warn", `The list as it was on ${fmtTime(state.asOf)}. Changes are made on the list as it is now: clear "As of" to make them.`);
    else hideNotice($("asof-notice"));
    state.next = page.nextCursor || "";
    $("next-page").disabled = !state.next;
    $("prev-page").disabled = state.cursors.length < 2;
    $("page-info").textContent = `Page ${state.cursors.length}`;
  } catch (err) {
    showNotice(notice, "error", err);
  }
}

function deliveryCell(u) {
  if (!u.invitation) return "—";
  const inv = u.invitation;
  const parts = [h("span", { class: inv.emailStatus === "failed" ? "email-failed" : "" }, inv.emailStatus)];
  parts.push(h("div", { class: "hint" }, inv.expired ? "expired" : `expires ${fmtTime(inv.expiresAt)}`));
  return parts;
}

function userRow(u) {
  const tr = h("tr", { "data-user-id": u.userId, "data-email": u.email, "data-status": u.status, "data-role": u.role, "data-role-until": u.roleUntil || "" },
    h("td", { class: "name" }, u.name ? u.displayName : h("span", { class: "muted" }, u.displayName)),
    h("td", { class: "email" }, u.email),
    h("td", { class: "role" }, u.role, u.roleUntil ? h("div", { class: "hint" }, `until ${fmtTime(u.roleUntil)}`) : null),
    h("td", { class: "login" }, u.lastLoginAt ? fmtTime(u.lastLoginAt) : "never"),
    h("td", { class: "status" }, h("span", { class: `badge status-${u.status}` }, u.status)),
    h("td", { class: "delivery" }, deliveryCell(u)),
    h("td", { class: "actions" }));
  const items = menuItems(u);
  if (items.length) tr.lastChild.append(...rowMenu(u, items));
  return tr;
}

// menuItems lists what the signed-in person may do to u: Admins everything,
// Managers resend or revoke invitations, others nothing.
function menuItems(u) {
  const history = [{ label: "History", run: () => showHistory(u) }];
  // A past row is for reading: its history, no changes.
  if (state.asOf) return history;
  const admin = state.myRole === "Admin";
  const manager = state.myRole === "Manager";
  const items = [];
  if (admin) {
    items.push({ label: "Change role to", group: true });
    for (const r of ROLES) items.push({ label: r, role: r, checked: r === u.role, run: () => changeRole(u, r) });
    items.push({ separator: true });
  }
  if (u.status === "invited" && (admin || manager)) {
    items.push({ label: "Resend invitation", run: () => resend(u) });
    items.push({ label: "Revoke invitation", run: () => remove(u, true) });
  }
  if (admin && u.status === "active") items.push({ label: "Suspend", run: () => post(u, "suspend", `${u.email} is suspended.`) });
  if (admin && u.status === "suspended") items.push({ label: "Reactivate", run: () => post(u, "reactivate", `${u.email} is active again.`) });
  if (admin && u.status !== "invited") items.push({ label: "Remove user", run: () => remove(u, false) });
  while (items.length && items[items.length - 1].separator) items.pop();
  if (items.length) items.push({ separator: true });
  return items.concat(history);
}

// rowMenu is the kebab button and its menu (the WAI-ARIA menu button
// pattern): Enter, Space or ArrowDown open it on the first item, ArrowUp on
// the last; arrows, Home and End move; Escape closes and returns to the
// button; Tab or a click elsewhere closes it.
let menuSeq = 0;
function rowMenu(u, items) {
  const id = `menu-${++menuSeq}`;
  const button = h("button", {
    type: "button", class: "kebab", "aria-haspopup": "menu", "aria-expanded": "false", "aria-controls": id,
    "aria-label": `Actions for ${u.email}`,
  }, "⋮");
  const menu = h("ul", { class: "menu", role: "menu", id, "aria-label": `Actions for ${u.email}`, hidden: true });
  for (const it of items) {
    if (it.separator) menu.append(h("li", { role: "separator" }, h("hr")));
    else if (it.group) menu.append(h("li", { role: "presentation", class: "group-label" }, it.label));
    else {
      const item = h("button", {
        type: "button", tabindex: "-1",
        role: it.role ? "menuitemradio" : "menuitem",
        "aria-checked": it.role ? String(it.checked) : null,
        "aria-disabled": it.checked ? "true" : null,
        "data-action": it.role ? `role:${it.role}` : it.label,
      }, it.label);
      item.addEventListener("click", () => {
        if (it.checked) return;
        close(false);
        it.run();
      });
      menu.append(h("li", { role: "none" }, item));
    }
  }
  const entries = () => [...menu.querySelectorAll("button")];
  const focusAt = (i) => { const e = entries(); e[(i + e.length) % e.length].focus(); };
  function open(at) {
    closeOpenMenu();
    menu.hidden = false;
    button.setAttribute("aria-expanded", "true");
    openMenu = close;
    focusAt(at);
  }
  function close(refocus) {
    menu.hidden = true;
    button.setAttribute("aria-expanded", "false");
    if (openMenu === close) openMenu = null;
    if (refocus) button.focus();
  }
  button.addEventListener("click", () => (menu.hidden ? open(0) : close(true)));
  button.addEventListener("keydown", (ev) => {
    if (ev.key === "ArrowDown") { ev.preventDefault(); open(0); }
    if (ev.key === "ArrowUp") { ev.preventDefault(); open(-1); }
  });
  menu.addEventListener("keydown", (ev) => {
    const e = entries();
    const i = e.indexOf(document.activeElement);
    switch (ev.key) {
      case "ArrowDown": ev.preventDefault(); focusAt(i + 1); break;
      case "ArrowUp": ev.preventDefault(); focusAt(i - 1); break;
      case "Home": ev.preventDefault(); focusAt(0); break;
      case "End": ev.preventDefault(); focusAt(-1); break;
      case "Escape": ev.preventDefault(); close(true); break;
      case "Tab": close(false); break;
    }
  });
  return [button, menu];
}

let openMenu = null;
function closeOpenMenu() { if (openMenu) openMenu(false); }
document.addEventListener("click", (ev) => {
  if (openMenu && !ev.target.closest(".actions")) closeOpenMenu();
});

// --- row actions ----------------------------------------------------------

// act runs a row's action, says how it went, reloads the list (as of the
// write's position) and puts the focus back on the row's menu button, which
// the reload replaced, so that keyboard users keep their place.
async function act(u, fn, okMessage) {
  const notice = $("notice");
  try {
    await fn();
    showNotice(notice, "ok", okMessage);
  } catch (err) {
    showNotice(notice, "error", err);
  }
  await loadUsers();
  const again = document.querySelector(`#user-rows tr[data-user-id="${CSS.escape(u.userId)}"] button.kebab`);
  if (again) again.focus();
}

// changeRole sends the role, with the end set above the list if any (the
// input's local time, sent as an instant).
function changeRole(u, role) {
  const local = $("role-until").value;
  const body = { role };
  let until = "";
  if (local) {
    const d = new Date(local);
    if (!isNaN(d)) {
      body.until = d.toISOString();
      until = ` until ${fmtTime(body.until)}`;
    }
  }
  return act(u, () => api("PUT", `${base()}/users/${encodeURIComponent(u.userId)}/role`, { body }),
    `${u.email} is now ${role}${until}.`);
}

function resend(u) {
  return act(u, () => api("POST", `${base()}/users/${encodeURIComponent(u.userId)}/invitation/resend`),
    `A new invitation is on its way to ${u.email}; the earlier link no longer works.`);
}

function post(u, what, okMessage) {
  return act(u, () => api("POST", `${base()}/users/${encodeURIComponent(u.userId)}/${what}`), okMessage);
}

async function remove(u, revoke) {
  const text = revoke
    ? `Revoke the invitation of ${u.email}? The link they received stops working.`
    : `Remove ${u.email} from this workspace? They keep their account and their other workspaces; the history stays.`;
  if (!(await confirmDialog(text, revoke ? "Revoke invitation" : "Remove user"))) return;
  return act(u, () => api("DELETE", `${base()}/users/${encodeURIComponent(u.userId)}`),
    revoke ? `The invitation of ${u.email} is revoked.` : `${u.email} is removed from this workspace.`);
}

// showHistory opens the person's intervals of role and status, oldest
// first, with who changed them (a name when the page shows that person).
async function showHistory(u) {
  const dlg = $("history");
  const notice = $("history-notice");
  $("history-title").textContent = `History of ${u.displayName || u.userId}`;
  $("history-rows").replaceChildren();
  hideNotice(notice);
  const names = new Map([...document.querySelectorAll("#user-rows tr[data-user-id]")]
    .map((tr) => [tr.dataset.userId, tr.querySelector("td.name").textContent]));
  const who = (id) => (id ? names.get(id) || id : "the system");
  try {
    const res = await api("GET", `${base()}/users/${encodeURIComponent(u.userId)}/history`);
    $("history-rows").replaceChildren(...res.items.map((it) => h("tr", { "data-action": it.action, "data-role": it.role, "data-status": it.status },
      h("td", { class: "from" }, fmtTime(it.from)),
      h("td", { class: "to" }, it.to ? fmtTime(it.to) : "now"),
      h("td", { class: "role" }, it.role),
      h("td", { class: "status" }, h("span", { class: `badge status-${it.status}` }, it.status)),
      h("td", { class: "by" }, who(it.changedBy)),
      h("td", { class: "action" }, it.action))));
  } catch (err) {
    showNotice(notice, "error", err);
  }
  if (!dlg.open) dlg.showModal();
}

function confirmDialog(text, okLabel) {
  const dlg = $("confirm");
  $("confirm-text").textContent = text;
  $("confirm-ok").textContent = okLabel;
  dlg.returnValue = "";
  return new Promise((resolve) => {
    dlg.addEventListener("close", () => resolve(dlg.returnValue === "ok"), { once: true });
    dlg.showModal();
  });
}

// --- start ----------------------------------------------------------------

function choose(ws) {
  state.ws = ws.id;
  state.myRole = ws.membership.role;
  state.cursors = [""];
  const canInvite = state.myRole === "Admin" || state.myRole === "Manager";
  $("invite-section").hidden = !canInvite;
  $("users-section").hidden = false;
  resetInvitations();
  return loadUsers();
}

async function start() {
  const notice = $("notice");
  const ws = await shell("/", notice, (id, membership) => choose({ id, membership }));
  if (!ws) return;
  $("invite-form").addEventListener("submit", sendInvitations);
  $("invite-form").addEventListener("reset", resetInvitations);
  $("filters").addEventListener("submit", (ev) => {
    ev.preventDefault();
    state.cursors = [""];
    loadUsers();
  });
  $("next-page").addEventListener("click", () => {
    if (!state.next) return;
    state.cursors.push(state.next);
    loadUsers();
  });
  $("prev-page").addEventListener("click", () => {
    if (state.cursors.length < 2) return;
    state.cursors.pop();
    loadUsers();
  });
  await choose(ws);
  document.body.dataset.ready = "true";
}

start();
