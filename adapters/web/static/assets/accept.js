// The accept page: opening the link only shows the invitation (link
// scanners and prefetchers accept nothing); the form's POST accepts it.
import { api, showNotice, hideNotice, fmtTime } from "/assets/app.js";

const $ = (id) => document.getElementById(id);
// The token moves from the address bar into this tab's session, so that it
// stays out of the browser's history (anyone at this machine could accept
// with it) and a reload still finds it.
const KEY_ACCEPT = "usersd.acceptToken";
const fromURL = new URLSearchParams(location.search).get("token");
if (fromURL) {
  sessionStorage.setItem(KEY_ACCEPT, fromURL);
  history.replaceState(null, "", "/accept");
}
const token = sessionStorage.getItem(KEY_ACCEPT) || "";

async function start() {
  const notice = $("notice");
  if (!token) {
    showNotice(notice, "error", "This page needs the link from your invitation e-mail: it carries the invitation's token.");
    return;
  }
  let inv;
  try {
    inv = await api("POST", "/v1/invitations/lookup", { body: { token }, auth: false });
  } catch (err) {
    showNotice(notice, "error", err);
    document.body.dataset.ready = "true";
    return;
  }
  $("inv-workspace").textContent = inv.workspaceName;
  $("inv-email").textContent = inv.email;
  $("inv-role").textContent = inv.role;
  $("inv-expires").textContent = fmtTime(inv.expiresAt);
  $("invitation").hidden = false;
  $("accept-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const name = $("accept-name").value.trim();
    if (!name) {
      showNotice(notice, "error", "Type your name: the people of this workspace will see it.");
      $("accept-name").focus();
      return;
    }
    $("accept-submit").disabled = true;
    try {
      const res = await api("POST", "/v1/invitations/accept", { body: { token, name }, auth: false });
      sessionStorage.removeItem(KEY_ACCEPT); // used up
      hideNotice(notice);
      $("invitation").hidden = true;
      $("welcome-text").textContent = `Welcome, ${name}: you are now a member of ${inv.workspaceName} as ${res.role}.`;
      $("welcome").hidden = false;
    } catch (err) {
      showNotice(notice, "error", err);
      $("accept-submit").disabled = false;
    }
  });
  $("accept-name").focus();
  document.body.dataset.ready = "true";
}

start();
