// Use cases on chats and their messages: the chat list (REST snapshot merged with live events),
// opening a chat and paging its history, sending with a client key (kept across reconnects and
// reloads until the server stores it), edits, deletes, read marks, typing, groups, direct
// chats and starting a call from a chat.

import { $, h } from "../dom.js";
import { ApiError } from "../rest.js";
import { api } from "../tokens.js";
import { wsSend, sendWatch } from "./link.js";
import { report } from "./notice.js";
import { nameOf } from "./profiles.js";
import { PAGE, S, me, maxSeq, minSeq, render, renderNow, savePending } from "./state.js";

export function setChats(list) {
  const next = new Map();
  for (const s of list) {
    const old = S.chats.get(s.chat.id);
    if (old && (old.chat.last_seq > s.chat.last_seq || old.last_read_seq > s.last_read_seq)) {
      // Live events (messages, our read marks) got ahead of this REST snapshot.
      s.chat.last_seq = Math.max(s.chat.last_seq, old.chat.last_seq);
      s.chat.last_activity_at = Math.max(s.chat.last_activity_at, old.chat.last_activity_at);
      s.last_read_seq = Math.max(s.last_read_seq, old.last_read_seq);
      s.unread = old.unread;
    }
    next.set(s.chat.id, s);
  }
  const gone = [...S.chats.keys()].filter((id) => !next.has(id));
  S.chats = next;
  for (const id of gone) dropChat(id);
  sendWatch();
  maybeMarkRead();
  render();
}

export function dropChat(id) {
  S.chats.delete(id);
  S.msgs.delete(id);
  S.more.delete(id);
  S.members.delete(id);
  if (S.open === id) closeChat();
}

export async function refetchChats() {
  setChats(await api("GET", "/api/chats"));
}
let refetchTimer = null;
export function refetchChatsSoon() {
  clearTimeout(refetchTimer);
  refetchTimer = setTimeout(() => refetchChats().catch(report), 150);
}

export function addMessage(m) {
  const s = S.chats.get(m.chat);
  if (!s) refetchChatsSoon(); // a chat we just got added to
  else if (m.seq > s.chat.last_seq) {
    s.chat.last_seq = m.seq;
    s.chat.last_activity_at = Math.max(s.chat.last_activity_at, m.created_at);
    if (m.sender !== me() && m.seq > s.last_read_seq && !m.deleted_at) s.unread += 1;
  }
  if (m.sender === me() && m.client_key) settle(m.client_key, m);
  const held = S.msgs.get(m.chat);
  if (held && !held.has(m.seq)) held.set(m.seq, m); // dedupe by (chat, seq)
  setTyping(m.chat, m.sender, false);
  if (m.chat === S.open) maybeMarkRead();
  render();
}

// A pending message is stored: forget it, resolve whoever waits.
export function settle(clientKey, message) {
  if (!S.pending.delete(clientKey)) return;
  savePending();
  const w = S.waiters.get(clientKey);
  if (w) { S.waiters.delete(clientKey); w.resolve(message); }
}

// The server refused a pending message: it stays in the log with Retry / Discard.
export function refused(clientKey, code, message) {
  const p = S.pending.get(clientKey);
  p.error = message || code;
  savePending();
  const w = S.waiters.get(clientKey);
  if (w) { S.waiters.delete(clientKey); w.reject(new ApiError(0, code, p.error)); }
}

export function sendPending(p) {
  return wsSend({ type: "send", chat: p.chat, text: p.text, attachments: p.attachments || [], client_key: p.client_key });
}

export function uuid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  // Outside secure contexts (plain http on a LAN address) randomUUID is missing.
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const x = [...b].map((v) => v.toString(16).padStart(2, "0")).join("");
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

// Queue a message; it goes out now or after the next reconnect, with the same client_key.
export function sendText(text, chat = S.open, attachments = []) {
  text = String(text || "").trim();
  if (!text && !attachments.length) return Promise.reject(new Error("nothing to send"));
  if (chat == null) return Promise.reject(new Error("open a chat first"));
  const p = { client_key: uuid(), chat, text, attachments, created_at: Date.now() };
  S.pending.set(p.client_key, p);
  savePending();
  sendPending(p);
  S.stick = true;
  render();
  return new Promise((resolve, reject) => S.waiters.set(p.client_key, { resolve, reject }));
}

export function retryPending(key) {
  const p = S.pending.get(key);
  if (!p) return;
  delete p.error;
  savePending();
  sendPending(p);
  render();
}
export function discardPending(key) {
  S.pending.delete(key);
  savePending();
  const w = S.waiters.get(key);
  if (w) { S.waiters.delete(key); w.reject(new Error("discarded")); }
  render();
}

function mergePage(id, page) {
  const held = S.msgs.get(id);
  if (!held) return;
  for (const m of page) if (!held.has(m.seq)) held.set(m.seq, m);
  S.more.set(id, page.length >= PAGE && minSeq(held) > 1);
}

export async function loadNewest(id) {
  // The map exists before the request, so live messages arriving meanwhile are kept.
  S.msgs.set(id, new Map());
  try {
    mergePage(id, await api("GET", `/api/chats/${id}/messages?limit=${PAGE}`));
  } catch (e) {
    S.msgs.delete(id);
    throw e;
  }
  if (id === S.open) { S.stick = true; maybeMarkRead(); }
  render();
}

export function loadOlder() {
  const id = S.open;
  const held = S.msgs.get(id);
  if (S.loadingOlder) return S.loadingOlder;
  if (!held || !S.more.get(id)) return Promise.resolve();
  S.loadingOlder = (async () => {
    const page = await api("GET", `/api/chats/${id}/messages?before=${minSeq(held)}&limit=${PAGE}`);
    if (S.msgs.get(id) !== held) return;
    mergePage(id, page);
    S.keepOffset = true;
    renderNow();
  })().finally(() => { S.loadingOlder = null; render(); });
  return S.loadingOlder;
}

export async function loadMembers(id) {
  const d = await api("GET", `/api/chats/${id}`);
  const s = S.chats.get(id);
  if (s) Object.assign(s.chat, d.chat, { last_seq: Math.max(s.chat.last_seq, d.chat.last_seq) });
  S.members.set(id, new Map(d.members.map((m) => [m.user, m.last_read_seq])));
  render();
}

export async function openChat(id, seq) {
  id = Number(id);
  if (!S.chats.has(id)) await refetchChats();
  if (!S.chats.has(id)) throw new Error("no such chat");
  if (S.open !== id) {
    S.open = id;
    S.editing = null;
    S.lastTypingSent = 0;
    S.stick = true;
    $("call-link").hidden = true;
    $("composer-text").value = "";
    history.replaceState(null, "", "#chat=" + id);
    render();
  }
  await Promise.all([S.msgs.has(id) ? null : loadNewest(id), loadMembers(id)]);
  maybeMarkRead();
  if (seq != null) await jumpTo(id, Number(seq));
  $("composer-text").focus();
}

export function closeChat() {
  S.open = null;
  S.editing = null;
  history.replaceState(null, "", location.pathname + location.search);
  render();
}

// Show message `seq` (a search hit): load older pages until it is held.
async function jumpTo(id, seq) {
  for (let i = 0; i < 40 && S.open === id; i++) {
    const held = S.msgs.get(id);
    if (!held || held.has(seq) || minSeq(held) <= seq || !S.more.get(id)) break;
    await loadOlder();
  }
  renderNow();
  const el = $("chat-log").querySelector(`[data-key="${id}:${seq}"]`);
  if (el) {
    el.scrollIntoView({ block: "center" });
    el.classList.add("flash");
    setTimeout(() => el.classList.remove("flash"), 2000);
  }
}

// Send `read` for the newest held message while the open chat is on screen.
export function maybeMarkRead() {
  const id = S.open;
  const s = S.chats.get(id);
  const held = S.msgs.get(id);
  if (!s || !held || !held.size || document.visibilityState !== "visible") return;
  const newest = maxSeq(held);
  if (newest > s.last_read_seq && wsSend({ type: "read", chat: id, seq: newest })) s.last_read_seq = newest;
  if (s.last_read_seq >= s.chat.last_seq) s.unread = 0;
  render();
}

// A read mark from the server: ours moves our unread count, others' the "read" ticks.
export function onRead(chat, user, seq) {
  if (user === me()) {
    const s = S.chats.get(chat);
    if (s) {
      s.last_read_seq = Math.max(s.last_read_seq, seq);
      if (s.last_read_seq >= s.chat.last_seq) s.unread = 0;
    }
  } else {
    if (!S.members.has(chat)) S.members.set(chat, new Map());
    const mem = S.members.get(chat);
    mem.set(user, Math.max(mem.get(user) || 0, seq));
  }
}

export function setTyping(chat, user, on) {
  const t = S.typing.get(chat);
  if (t && t.has(user)) { clearTimeout(t.get(user)); t.delete(user); }
  if (!on) return;
  if (!S.typing.has(chat)) S.typing.set(chat, new Map());
  S.typing.get(chat).set(user, setTimeout(() => { S.typing.get(chat).delete(user); render(); }, 4000));
}
export function typingText(chat) {
  const names = [...(S.typing.get(chat) || new Map()).keys()].map(nameOf);
  if (!names.length) return "";
  if (names.length === 1) return `${names[0]} is typing…`;
  if (names.length === 2) return `${names[0]} and ${names[1]} are typing…`;
  return `${names.length} people are typing…`;
}

// The highest read mark of the other members: own messages up to it are "read".
export function othersRead(chat) {
  let m = 0;
  for (const [u, seq] of S.members.get(chat) || []) if (u !== me() && seq > m) m = seq;
  return m;
}

export async function editMessage(seq, text, chat = S.open) {
  const m = await api("PATCH", `/api/chats/${chat}/messages/${seq}`, { text });
  const held = S.msgs.get(chat);
  if (held) held.set(m.seq, m);
  S.editing = null;
  render();
  return m;
}

export async function deleteMessage(seq, chat = S.open) {
  const m = await api("DELETE", `/api/chats/${chat}/messages/${seq}`);
  const held = S.msgs.get(chat);
  if (held) held.set(m.seq, m);
  render();
  return m;
}

async function createChat(body) {
  const chat = await api("POST", "/api/chats", body);
  if (!S.chats.has(chat.id)) {
    S.chats.set(chat.id, {
      chat, role: body.kind === "group" ? "admin" : "member", last_read_seq: 0, unread: 0,
      peer: body.kind === "direct" ? body.user : null,
    });
  }
  refetchChatsSoon();
  await openChat(chat.id);
  return chat;
}

export const userByName = (name) => api("GET", `/api/users/by-name/${encodeURIComponent(name.trim().replace(/^@/, ""))}`);

export async function createGroup(title, usernames) {
  const names = (Array.isArray(usernames) ? usernames : String(usernames || "").split(/[,\s]+/)).filter(Boolean);
  const members = await Promise.all(names.map(async (n) => {
    try { return (await userByName(n)).id; } catch (e) { throw new Error(`${n}: ${e.message}`); }
  }));
  return createChat({ kind: "group", title: String(title).trim(), members: members.filter((id) => id !== me()) });
}

export async function openDirect(userOrName) {
  const id = typeof userOrName === "number" ? userOrName : (await userByName(userOrName)).id;
  return createChat({ kind: "direct", user: id });
}

export async function startCall(openTab = true) {
  const id = S.open;
  if (id == null) throw new Error("open a chat first");
  // Open the tab during the click (popup blockers), point it at the call once we have it.
  const tab = openTab ? window.open("about:blank", "_blank") : null;
  let call;
  try {
    call = await api("POST", `/api/chats/${id}/call`);
  } catch (e) {
    if (tab) tab.close();
    throw e;
  }
  const url = new URL(call.url, location.href).href;
  if (tab) { tab.opener = null; tab.location.href = url; }
  const link = $("call-link");
  link.replaceChildren("Call started: ", h("a", { href: url, target: "_blank", rel: "noopener" }, "open the call"));
  link.hidden = false;
  return call;
}
