// The messenger's views: the header, the chat list, the contact lists and the open chat (its
// messages, their read state, the inline editor). Drawn from `S` on every render; lists are
// updated by key, so focus and in-progress edits survive live events.

import { $, h, sync } from "../dom.js";
import { current } from "../tokens.js";
import { ui } from "./notice.js";
import { chatTitle, nameOf } from "./profiles.js";
import { S, me, render } from "./state.js";
import {
  deleteMessage, discardPending, editMessage, openChat, openDirect, othersRead, retryPending, typingText,
} from "./chats.js";
import { acceptFriend, declineFriend, removeFriend } from "./friends.js";
import { attachmentNode, renderUploads } from "./uploads.js";

function when(ms) {
  if (!ms) return "";
  const d = new Date(ms);
  const today = new Date().toDateString() === d.toDateString();
  return today ? d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
    : d.toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
}

function dot(userId) {
  const on = S.online.has(userId);
  return h("span", { class: "dot" + (on ? " online" : ""), title: on ? "online" : "offline", "aria-label": on ? "online" : "offline", role: "img" });
}
function badge(n, label) {
  return n > 0 ? h("span", { class: "badge", "aria-label": `${n} ${label}` }, n > 99 ? "99+" : n) : null;
}

export function renderPage() {
  if (!current()) return;
  $("m-me").textContent = S.user ? `${S.user.display_name || S.user.username} (@${S.user.username})` : "";
  const chats = [...S.chats.values()].sort((a, b) => b.chat.last_activity_at - a.chat.last_activity_at || b.chat.id - a.chat.id);
  const total = chats.reduce((n, s) => n + s.unread, 0);
  document.title = total ? `(${total}) GAX` : "GAX";
  $("unread-total").textContent = total;
  $("unread-total").hidden = !total;
  $("incoming-count").textContent = S.friends.incoming.length;
  $("incoming-count").hidden = !S.friends.incoming.length;
  $("chat-list-empty").hidden = chats.length > 0;

  sync($("chat-list"), chats, (s) => s.chat.id, (s) => JSON.stringify([chatTitle(s), s.unread, s.chat.last_activity_at,
    s.chat.id === S.open, s.peer != null && S.online.has(s.peer), typingText(s.chat.id)]), (s) => {
    const typing = typingText(s.chat.id);
    return h("li", {}, h("button", {
      type: "button", class: "item chat-item", "aria-current": s.chat.id === S.open ? "true" : null,
      onclick: ui(() => openChat(s.chat.id)),
    }, s.peer != null ? dot(s.peer) : h("span", { class: "dot group", "aria-hidden": "true" }),
    h("span", { class: "name" }, chatTitle(s)),
    h("span", { class: "hint" }, typing || when(s.chat.last_activity_at)),
    badge(s.unread, "unread")));
  });

  const person = (p, ...acts) => h("li", { class: "item" }, dot(p.id),
    h("span", { class: "name" }, p.display_name || p.username, " ", h("span", { class: "hint" }, "@" + p.username)),
    h("span", { class: "acts" }, acts));
  const btn = (text, fn, cls) => h("button", { type: "button", class: cls, onclick: ui(fn) }, text);
  const pv = (p) => JSON.stringify([p.display_name, p.username, S.online.has(p.id)]);
  sync($("incoming-list"), S.friends.incoming, (p) => p.id, pv, (p) => person(p,
    btn("Accept", () => acceptFriend(p.id)), btn("Decline", () => declineFriend(p.id), "secondary")));
  sync($("outgoing-list"), S.friends.outgoing, (p) => p.id, pv, (p) => person(p,
    btn("Cancel", () => removeFriend(p.id), "secondary")));
  sync($("friend-list"), S.friends.friends, (p) => p.id, pv, (p) => person(p,
    btn("Message", () => openDirect(p.id)), btn("Remove", () => removeFriend(p.id), "secondary")));

  renderChat();
}

function renderChat() {
  const s = S.chats.get(S.open);
  $("m-app").classList.toggle("chat-open", !!s);
  $("chat-pane").hidden = !s;
  $("chat-placeholder").hidden = !!s;
  if (!s) return;
  const id = s.chat.id;
  $("chat-title").textContent = chatTitle(s);
  const mem = [...(S.members.get(id) || new Map()).keys()];
  $("chat-sub").textContent = s.chat.kind === "group"
    ? `${mem.length} members: ${mem.slice(0, 6).map(nameOf).join(", ")}${mem.length > 6 ? "…" : ""}`
    : s.peer != null && S.online.has(s.peer) ? "online" : "";
  $("chat-typing").textContent = typingText(id);
  const held = S.msgs.get(id) || new Map();
  $("load-older").hidden = !S.more.get(id);
  $("load-older").disabled = !!S.loadingOlder;

  const sc = $("chat-scroll");
  const atBottom = sc.scrollHeight - sc.scrollTop - sc.clientHeight < 80;
  const before = { height: sc.scrollHeight, top: sc.scrollTop };
  const readUpTo = othersRead(id);
  const items = [...held.values()].sort((a, b) => a.seq - b.seq)
    .concat([...S.pending.values()].filter((p) => p.chat === id).map((p) => ({ ...p, pending: true, sender: me() })));
  const keyOf = (m) => (m.pending ? "p:" + m.client_key : `${id}:${m.seq}`);
  const editing = (m) => !m.pending && S.editing && S.editing.chat === id && S.editing.seq === m.seq;
  sync($("chat-log"), items, keyOf, (m) => JSON.stringify([m.text, m.edited_at, m.deleted_at, m.error, nameOf(m.sender),
    m.sender === me() && m.seq <= readUpTo, editing(m)]), (m) => messageItem(m, readUpTo, editing(m)));

  renderUploads();
  if (S.keepOffset) sc.scrollTop = before.top + (sc.scrollHeight - before.height);
  else if (S.stick || atBottom) sc.scrollTop = sc.scrollHeight;
  S.keepOffset = S.stick = false;
}

function messageItem(m, readUpTo, isEditing) {
  const mine = m.sender === me();
  const cls = ["msg", mine ? "mine" : "theirs", m.deleted_at && "deleted", m.pending && "pending", m.error && "failed"];
  let status = null;
  if (m.pending) status = m.error ? `not sent: ${m.error}` : "sending…";
  else if (mine && !m.deleted_at) status = m.seq <= readUpTo ? "read" : "sent";
  const meta = h("div", { class: "meta" }, h("span", { class: "who" }, nameOf(m.sender)),
    h("time", { datetime: new Date(m.created_at).toISOString() }, when(m.created_at)),
    m.edited_at && !m.deleted_at ? h("span", { class: "flag" }, "edited") : null,
    status ? h("span", { class: "state", "data-state": m.pending ? (m.error ? "failed" : "pending") : status }, status) : null);
  let body;
  if (isEditing) {
    const input = h("input", { class: "edit", "aria-label": "Edit message", maxlength: "4000" });
    input.value = S.editing.draft;
    input.addEventListener("input", () => { S.editing.draft = input.value; });
    const save = ui(() => editMessage(m.seq, input.value.trim()));
    const cancel = () => { S.editing = null; render(); };
    input.addEventListener("keydown", (e) => {
      if (e.key === "Enter") { e.preventDefault(); save(); }
      if (e.key === "Escape") cancel();
    });
    body = h("form", { class: "row", onsubmit: (e) => { e.preventDefault(); save(); } }, input,
      h("button", { type: "submit" }, "Save"), h("button", { type: "button", class: "secondary", onclick: cancel }, "Cancel"));
    queueMicrotask(() => input.focus());
  } else if (m.deleted_at) {
    body = h("div", { class: "text" }, "message deleted");
  } else {
    const files = m.attachments || [];
    body = h("div", { class: "text" }, m.text || "",
      files.length ? (m.pending ? h("span", { class: "hint" }, ` [${files.length} attachment(s)]`)
        : h("div", { class: "files" }, ...files.map(attachmentNode))) : null);
  }
  let acts = null;
  if (m.pending && m.error) {
    acts = h("div", { class: "acts" },
      h("button", { type: "button", class: "quiet", onclick: () => retryPending(m.client_key) }, "Retry"),
      h("button", { type: "button", class: "quiet", onclick: () => discardPending(m.client_key) }, "Discard"));
  } else if (mine && !m.pending && !m.deleted_at && !isEditing) {
    const del = h("button", { type: "button", class: "quiet" }, "Delete");
    let armed = false;
    del.addEventListener("click", ui(async () => {
      if (!armed) { armed = true; del.textContent = "Confirm delete"; setTimeout(() => { armed = false; del.textContent = "Delete"; }, 3000); return; }
      await deleteMessage(m.seq, m.chat);
    }));
    acts = h("div", { class: "acts" },
      h("button", { type: "button", class: "quiet", onclick: () => { S.editing = { chat: m.chat, seq: m.seq, draft: m.text || "" }; render(); } }, "Edit"),
      del);
  }
  if (acts) meta.append(acts);
  return h("li", { class: cls.filter(Boolean).join(" "), "data-seq": m.seq ?? null }, meta, body);
}
