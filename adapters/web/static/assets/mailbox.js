// The development mailbox: the e-mails usersd would have sent, text part
// only, with their links made clickable.
import { api, h, shell, showNotice, hideNotice, fmtTime } from "/assets/app.js";

const $ = (id) => document.getElementById(id);

// linkify turns the http(s) URLs of text into links and leaves the rest as
// text: nothing of the message is ever parsed as markup.
function linkify(text) {
  const out = [];
  const re = /https?:\/\/[^\s<>"]+/g;
  let last = 0;
  for (const m of text.matchAll(re)) {
    out.push(text.slice(last, m.index));
    const url = m[0].replace(/[.,;:!?)]+$/, "");
    out.push(h("a", { href: url, rel: "noreferrer noopener" }, url));
    last = m.index + url.length;
  }
  out.push(text.slice(last));
  return out;
}

async function load() {
  const notice = $("mail-notice");
  try {
    const box = await api("GET", "/v1/dev/mailbox");
    hideNotice(notice);
    const items = [...(box.items || [])].sort((a, b) => String(b.sentAt).localeCompare(String(a.sentAt)));
    $("mail-list").replaceChildren(...items.map((m) => h("article", { class: "mail", "data-to": m.to },
      h("h3", {}, m.subject || "(no subject)"),
      h("div", { class: "muted" }, `To ${m.to} · ${fmtTime(m.sentAt)}`),
      h("pre", {}, linkify(m.text || "")))));
    if (items.length === 0) $("mail-list").append(h("p", { class: "muted" }, "No messages yet."));
  } catch (err) {
    if (err.status === 404 && err.code === "not_found") {
      showNotice(notice, "warn", "This usersd sends real e-mail (SMTP_URL is set), or has no development mailbox.");
    } else {
      showNotice(notice, "error", err);
    }
  }
}

async function start() {
  await shell("/mailbox", $("notice"), () => load());
  $("mail-refresh").addEventListener("click", load);
  await load();
  document.body.dataset.ready = "true";
}

start();
