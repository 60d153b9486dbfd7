// Shared by every page: the session (bearer token, workspace, last write
// position), the API client, the page header and small DOM helpers.
//
// The bearer token arrives in the URL fragment (#token=...), which browsers
// never send to servers or put in Referer headers; it is moved to
// sessionStorage at once and the fragment removed from the address bar, so it
// is neither bookmarked nor shared by copying the URL.

const KEY_TOKEN = "usersd.token";
const KEY_WORKSPACE = "usersd.workspace";
const KEY_POSITION = "usersd.position";

export const ROLES = ["Admin", "Manager", "Editor", "Monitor", "AgentUser"];

export const session = {
  token() { return sessionStorage.getItem(KEY_TOKEN) || ""; },
  setToken(t) { sessionStorage.setItem(KEY_TOKEN, t); },
  clear() {
    for (const k of [KEY_TOKEN, KEY_WORKSPACE, KEY_POSITION]) sessionStorage.removeItem(k);
  },
  workspace() { return sessionStorage.getItem(KEY_WORKSPACE) || ""; },
  setWorkspace(id) { sessionStorage.setItem(KEY_WORKSPACE, id); },
  // position is the position of this tab's last write: reads send it in
  // X-Consistent-With so that they include that write.
  position() { return sessionStorage.getItem(KEY_POSITION) || ""; },
  setPosition(p) { if (p) sessionStorage.setItem(KEY_POSITION, p); },
  forgetPosition() { sessionStorage.removeItem(KEY_POSITION); },
  // claims decodes the token's payload for display only; the server is
  // what checks the token.
  claims() {
    const parts = this.token().split(".");
    if (parts.length !== 3) return null;
    try {
      const b64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
      return JSON.parse(atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4)));
    } catch {
      return null;
    }
  },
};

// captureToken moves #token=... from the address bar into the session.
function captureToken() {
  const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (!m) return;
  session.clear();
  try {
    session.setToken(decodeURIComponent(m[1]));
  } catch {
    // A mangled link: the page offers to sign in with a pasted token.
  }
  history.replaceState(null, "", location.pathname + location.search);
}
captureToken();

// ApiError is a failed API call, with the problem+json answer's parts.
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `the server answered ${status}`);
    this.status = status;
    this.code = problem.code || "";
    this.fieldErrors = Array.isArray(problem.errors) ? problem.errors : [];
    this.requestId = problem.requestId || "";
  }
}

// api calls the HTTP API. opts: body (sent as JSON), accept (an Accept
// header; the answer is then returned as a Blob), auth (default true).
// It answers the parsed JSON (null for 204) and remembers the position of
// every write.
export async function api(method, path, opts = {}) {
  const headers = {};
  if (opts.auth !== false && session.token()) headers["Authorization"] = "Bearer " + session.token();
  if (opts.body !== undefined) headers["Content-Type"] = "application/json";
  if (opts.accept) headers["Accept"] = opts.accept;
  if (method === "GET" && session.position()) headers["X-Consistent-With"] = session.position();
  let res;
  try {
    res = await fetch(path, {
      method, headers, credentials: "omit", cache: "no-store",
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
    });
  } catch {
    throw new ApiError(0, { detail: "usersd cannot be reached: is it running?" });
  }
  if (!res.ok && headers["X-Consistent-With"] && (res.status === 504 || res.status === 400)) {
    // The remembered write is not coming (the database was reset behind
    // this tab, or the read models lag for good): forget it and read what
    // there is, rather than fail every page until sign-out.
    session.forgetPosition();
    return api(method, path, opts);
  }
  if (!res.ok) {
    let problem = {};
    try { problem = await res.json(); } catch { /* not JSON: keep the status */ }
    if (res.status === 401 && opts.auth !== false) {
      problem.detail = (problem.detail || "not signed in") + ". Open the link usersd printed when it started, or sign in with a token from `usersd token`.";
    }
    throw new ApiError(res.status, problem);
  }
  if (opts.accept) return res.blob();
  if (res.status === 204) return null;
  const data = await res.json();
  if (method !== "GET" && data && typeof data.position === "string") session.setPosition(data.position);
  return data;
}

// h makes an element: h("td", {class: "x"}, "text", child). Strings become
// text nodes, never markup.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// showNotice fills el with a message: kind "ok", "warn" or "error". An
// ApiError shows its detail and every field error.
export function showNotice(el, kind, message) {
  el.replaceChildren();
  el.className = "notice " + kind;
  el.hidden = false;
  if (message instanceof ApiError) {
    el.append(h("strong", {}, message.message));
    if (message.fieldErrors.length) {
      el.append(h("ul", {}, message.fieldErrors.map((f) => h("li", {}, `${f.field}: ${f.message}`))));
    }
    if (message.requestId) el.append(h("div", { class: "hint" }, "Request id: " + message.requestId));
  } else if (message instanceof Error) {
    el.append(h("strong", {}, message.message));
  } else {
    el.append(message);
  }
}

export function hideNotice(el) {
  el.hidden = true;
  el.replaceChildren();
}

export function fmtTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return isNaN(d) ? iso : d.toLocaleString();
}

// shell draws the top bar (navigation, workspace picker, sign-out) and
// resolves to the chosen workspace ({id, membership}), or null when there is
// none to show (the page then explains why in the notice element given).
export async function shell(current, notice, onWorkspace) {
  const bar = document.getElementById("topbar");
  const link = (href, text) => h("a", { href, "aria-current": current === href ? "page" : null }, text);
  const picker = h("select", { id: "workspace" });
  const pickerBox = h("span", { class: "session" },
    h("label", { for: "workspace" }, "Workspace"), picker,
    h("button", { type: "button", id: "sign-out", onclick: () => { session.clear(); location.assign("/"); } }, "Sign out"));
  bar.replaceChildren(
    h("span", { class: "brand" }, "usersd"),
    h("nav", { "aria-label": "Main" }, link("/", "Users & Roles"), link("/audit", "Audit"), link("/reviews", "Access reviews"), link("/mailbox", "Mailbox")),
    pickerBox);
  if (!session.token()) {
    pickerBox.hidden = true;
    showSignIn(notice);
    return null;
  }
  let list;
  try {
    list = await api("GET", "/v1/me/workspaces");
  } catch (err) {
    if (err.status === 401) {
      // An expired or foreign token: offer to sign in again.
      pickerBox.hidden = true;
      showSignIn(notice, err.message);
    } else {
      showNotice(notice, "error", err);
    }
    return null;
  }
  const joined = list.filter((w) => w.status === "active");
  if (joined.length === 0) {
    showNotice(notice, "warn", "You are not an active member of any workspace.");
    pickerBox.querySelector("select").disabled = true;
    return null;
  }
  for (const w of joined) picker.append(h("option", { value: w.workspaceId }, `${w.name} (${w.role})`));
  const saved = session.workspace();
  picker.value = joined.some((w) => w.workspaceId === saved) ? saved : joined[0].workspaceId;
  session.setWorkspace(picker.value);
  picker.addEventListener("change", () => {
    session.setWorkspace(picker.value);
    onWorkspace(picker.value, joined.find((w) => w.workspaceId === picker.value));
  });
  return { id: picker.value, membership: joined.find((w) => w.workspaceId === picker.value) };
}

// showSignIn offers to paste a token when the page was opened without one,
// or with one the server refused (why).
function showSignIn(notice, why) {
  const input = h("input", { type: "text", id: "token-input", autocomplete: "off", spellcheck: "false", size: "60" });
  const form = h("form", {},
    why ? h("p", {}, h("strong", {}, why)) : null,
    h("p", {}, "You are not signed in. Open the link usersd printed when it started (it ends in #token=…), or paste a token made by ",
      h("code", {}, "usersd token"), "."),
    h("label", { for: "token-input" }, "Bearer token"), input,
    h("div", { class: "buttons" }, h("button", { type: "submit", class: "primary" }, "Sign in")));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const t = input.value.trim();
    if (!t) return;
    session.clear();
    session.setToken(t);
    location.reload();
  });
  showNotice(notice, "warn", form);
}
