// GAX web client, messenger part: sign up / log in, contacts, chats, messages, search.
// REST under /api (GET /api/openapi.json) for everything that is not realtime; the messenger
// session on /ws (docs/protocol.md, "GAX messenger session") for live events and sending.
// The call page (app.js) takes over when the URL has room/token/autojoin. No dependencies.
//
// This file wires the page: the modules under /js/chat/ hold its parts (state.js: what the page
// holds; link.js: the session socket; events.js: live events; chats.js, friends.js, uploads.js,
// search.js: use cases; views.js: drawing; account.js: sign in and out), /js/ what every page
// shares (REST, tokens, the reconnecting socket, DOM helpers).

import { $ } from "./js/dom.js";
import { current, followOtherTabs, onSessionEvents, refreshTokens, api } from "./js/tokens.js";
import { initLink, socket, wsSend } from "./js/chat/link.js";
import { onEvent } from "./js/chat/events.js";
import { report, showError, ui } from "./js/chat/notice.js";
import { chatTitle } from "./js/chat/profiles.js";
import { S, me, setView } from "./js/chat/state.js";
import {
  closeChat, createGroup, deleteMessage, editMessage, loadOlder, maybeMarkRead, openChat, openDirect, othersRead,
  sendText, startCall, typingText,
} from "./js/chat/chats.js";
import { acceptFriend, addFriend, declineFriend, loadFriends, removeFriend } from "./js/chat/friends.js";
import { sendFiles } from "./js/chat/uploads.js";
import { search } from "./js/chat/search.js";
import { renderPage } from "./js/chat/views.js";
import { logout, signIn, signedOut, start } from "./js/chat/account.js";

const params = new URLSearchParams(location.search);
const callPage = params.has("room") || params.has("token") || params.has("autojoin");
if (!callPage) main();

function main() {
  document.documentElement.dataset.mode = "chat";
  document.title = "GAX";
  $("call").hidden = true;
  $("status").hidden = true;
  $("messenger").hidden = false;

  $("m-error").querySelector("button").addEventListener("click", () => showError(""));
  setView(renderPage);
  onSessionEvents({ onEnded: signedOut, onError: report });
  followOtherTabs(signedOut);
  initLink(onEvent);
  document.addEventListener("visibilitychange", maybeMarkRead);
  setInterval(() => { if (current() && document.visibilityState === "visible") loadFriends().catch(() => {}); }, 30_000);

  // ------------------------------------------------------------------------------------------
  // Wiring

  $("auth-form").addEventListener("submit", ui(async (e) => {
    e.preventDefault();
    const kind = e.submitter && e.submitter.value === "register" ? "register" : "login";
    const buttons = $("auth-form").querySelectorAll("button");
    buttons.forEach((b) => { b.disabled = true; });
    try {
      await signIn(kind, $("auth-user").value, $("auth-pass").value, $("auth-display").value.trim());
      $("auth-pass").value = "";
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
    }
  }));
  $("m-logout").addEventListener("click", ui(logout));

  const selectTab = (contacts) => {
    $("tab-chats").setAttribute("aria-selected", String(!contacts));
    $("tab-contacts").setAttribute("aria-selected", String(contacts));
    $("panel-chats").hidden = contacts;
    $("panel-contacts").hidden = !contacts;
    if (contacts) loadFriends().catch(report);
  };
  $("tab-chats").addEventListener("click", () => selectTab(false));
  $("tab-contacts").addEventListener("click", () => selectTab(true));

  $("friend-form").addEventListener("submit", ui(async (e) => {
    e.preventDefault();
    const outcome = await addFriend($("friend-name").value);
    $("friend-name").value = "";
    showError(outcome === "accepted" ? "You are now friends." : "");
  }));

  $("group-form").addEventListener("submit", ui(async (e) => {
    e.preventDefault();
    await createGroup($("group-title").value, $("group-members").value);
    $("group-title").value = $("group-members").value = "";
    $("group-box").open = false;
  }));

  let searchTimer = null;
  $("search-q").addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => search($("search-q").value), 300);
  });
  $("search-form").addEventListener("submit", (e) => { e.preventDefault(); clearTimeout(searchTimer); search($("search-q").value); });
  $("search-q").addEventListener("keydown", (e) => { if (e.key === "Escape") { $("search-q").value = ""; search(""); } });

  $("composer").addEventListener("submit", ui(async (e) => {
    e.preventDefault();
    const text = $("composer-text").value;
    if (!text.trim()) return;
    $("composer-text").value = "";
    sendText(text).catch(() => {}); // failures stay in the log with Retry / Discard
  }));
  $("composer-file").addEventListener("change", ui(async (e) => {
    const files = [...e.target.files];
    e.target.value = "";
    if (!files.length) return;
    const text = $("composer-text").value;
    $("composer-text").value = "";
    await sendFiles(files, text);
  }));
  $("composer-text").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); $("composer").requestSubmit(); }
  });
  $("composer-text").addEventListener("input", () => {
    if (S.open == null || !$("composer-text").value.trim() || Date.now() - S.lastTypingSent < 2000) return;
    if (wsSend({ type: "typing", chat: S.open })) S.lastTypingSent = Date.now();
  });

  $("chat-scroll").addEventListener("scroll", () => {
    const sc = $("chat-scroll");
    if (sc.scrollTop < 40 && sc.scrollHeight > sc.clientHeight && S.msgs.get(S.open)) loadOlder().catch(report);
  });
  $("load-older").addEventListener("click", ui(loadOlder));
  $("chat-call").addEventListener("click", ui(() => startCall(true)));
  $("chat-back").addEventListener("click", closeChat);

  // For tests and the curious (Playwright drives the page through these).
  window.gaxChat = {
    state: () => ({
      user: S.user,
      connected: S.connected,
      synced: S.synced,
      openChat: S.open,
      chats: [...S.chats.values()].sort((a, b) => b.chat.last_activity_at - a.chat.last_activity_at)
        .map((s) => ({ id: s.chat.id, kind: s.chat.kind, title: chatTitle(s), peer: s.peer ?? null, unread: s.unread,
          last_seq: s.chat.last_seq, last_read_seq: s.last_read_seq })),
      messages: [...(S.msgs.get(S.open) || new Map()).values()].sort((a, b) => a.seq - b.seq).map((m) => ({
        seq: m.seq, sender: m.sender, text: m.text ?? null, edited: !!m.edited_at, deleted: !!m.deleted_at,
        read: m.sender === me() && m.seq <= othersRead(S.open), client_key: m.client_key ?? null,
        attachments: m.attachments || [] })),
      uploads: S.uploads.map((u) => ({ ...u })),
      pending: [...S.pending.values()].map((p) => ({ ...p })),
      hasOlder: !!S.more.get(S.open),
      typing: typingText(S.open),
      friends: S.friends,
      online: [...S.online],
    }),
    login: (u, p) => signIn("login", u, p),
    register: (u, p, displayName) => signIn("register", u, p, displayName),
    logout,
    send: (text, chat) => sendText(text, chat),
    sendFiles: (files, text, chat) => sendFiles(files, text, chat),
    open: (id, seq) => openChat(id, seq),
    openDirect,
    createGroup,
    addFriend,
    accept: acceptFriend,
    decline: declineFriend,
    removeFriend,
    edit: (seq, text) => editMessage(seq, text),
    remove: (seq) => deleteMessage(seq),
    loadOlder,
    search,
    call: (openTab = false) => startCall(openTab),
    refresh: () => refreshTokens(current() && current().access_token),
    // Drops the socket as a network failure would (it reconnects with backoff).
    dropSocket: () => socket.drop(),
    api,
  };

  const a = current();
  if (a && a.refresh_token && a.user) start();
  else signedOut("");
}
