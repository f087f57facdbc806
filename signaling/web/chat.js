// GAX web client, messenger part: sign up / log in, contacts, chats, messages, search.
// REST under /api (GET /api/openapi.json) for everything that is not realtime; the messenger
// session on /ws (docs/protocol.md, "GAX messenger session") for live events and sending.
// The call page (app.js) takes over when the URL has room/token/autojoin. No dependencies.
"use strict";

(() => {
  const params = new URLSearchParams(location.search);
  if (params.has("room") || params.has("token") || params.has("autojoin")) return; // call page

  const $ = (id) => document.getElementById(id);
  document.documentElement.dataset.mode = "chat";
  document.title = "GAX";
  $("call").hidden = true;
  $("status").hidden = true;
  $("messenger").hidden = false;

  const AUTH_KEY = "gax.auth";
  const SKEW_MS = 60_000; // refresh the access token this long before it expires
  const PAGE = 50;

  // ------------------------------------------------------------------------------------------
  // Small helpers

  const store = {
    get(key) { try { return JSON.parse(localStorage.getItem(key)); } catch (e) { return null; } },
    set(key, v) { try { v == null ? localStorage.removeItem(key) : localStorage.setItem(key, JSON.stringify(v)); } catch (e) { /* private mode */ } },
  };

  // h("button", {class: "x", onclick: f}, "text", child…): an element; text is never HTML.
  function h(tag, props, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v == null || v === false) continue;
      if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else if (k === "class") el.className = v;
      else el.setAttribute(k, v === true ? "" : v);
    }
    for (const c of kids.flat()) if (c != null && c !== false) el.append(c.nodeType ? c : String(c));
    return el;
  }

  // Keyed update of a list: elements are rebuilt only when their version string changes, so
  // focus and in-progress edits survive live events.
  function sync(list, items, keyOf, versionOf, build) {
    const old = new Map([...list.children].map((el) => [el.dataset.key, el]));
    items.forEach((it, i) => {
      const key = String(keyOf(it));
      const ver = versionOf(it);
      let el = old.get(key);
      if (!el || el.dataset.ver !== ver) {
        const fresh = build(it);
        fresh.dataset.key = key;
        fresh.dataset.ver = ver;
        if (el) el.replaceWith(fresh);
        el = fresh;
      }
      old.delete(key);
      if (list.children[i] !== el) list.insertBefore(el, list.children[i] || null);
    });
    for (const el of old.values()) el.remove();
  }

  function uuid() {
    if (crypto.randomUUID) return crypto.randomUUID();
    // Outside secure contexts (plain http on a LAN address) randomUUID is missing.
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const x = [...b].map((v) => v.toString(16).padStart(2, "0")).join("");
    return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
  }

  function when(ms) {
    if (!ms) return "";
    const d = new Date(ms);
    const today = new Date().toDateString() === d.toDateString();
    return today ? d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
      : d.toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
  }

  let errorTimer = null;
  function showError(text) {
    $("m-error").firstElementChild.textContent = text || "";
    $("m-error").hidden = !text;
    clearTimeout(errorTimer);
    if (text) errorTimer = setTimeout(() => showError(""), 10_000);
  }
  $("m-error").querySelector("button").addEventListener("click", () => showError(""));
  const report = (e) => {
    if (e && e.code === "signed_out") return;
    console.warn(e);
    showError((e && e.message) || String(e));
  };
  // UI handlers never throw: failures are shown.
  // (Synchronous up to the first await, so preventDefault() still counts.)
  const ui = (fn) => (...a) => {
    try { const r = fn(...a); if (r && r.catch) r.catch(report); } catch (e) { report(e); }
  };

  // ------------------------------------------------------------------------------------------
  // REST and tokens

  class ApiError extends Error {
    constructor(status, code, message) { super(message); this.status = status; this.code = code; }
  }

  async function request(method, path, body, token) {
    const headers = {};
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (token) headers.Authorization = "Bearer " + token;
    let r;
    try {
      r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (e) {
      throw new ApiError(0, "network", "cannot reach the server");
    }
    const text = r.status === 204 ? "" : await r.text().catch(() => "");
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (e) { /* not JSON */ }
    if (!r.ok) {
      const code = (data && data.error) || "http_" + r.status;
      throw new ApiError(r.status, code, (data && data.message) || `${r.status} ${r.statusText || code}`);
    }
    return data;
  }

  let auth = store.get(AUTH_KEY); // {access_token, refresh_token, expires_at, user}
  let refreshing = null;
  let refreshTimer = null;

  function saveAuth(a) {
    auth = a;
    store.set(AUTH_KEY, a);
    scheduleRefresh();
    return shared.set(a).catch(() => {});
  }

  // The tokens as of the last refresh in any tab. localStorage reaches other tabs with a delay
  // (Chromium), IndexedDB is transactional: what a tab wrote before releasing the refresh lock
  // is what the next holder reads, so no tab ever presents a used refresh token.
  const shared = (() => {
    let db = null;
    const open = () => db || (db = new Promise((resolve, reject) => {
      const r = indexedDB.open("gax", 1);
      r.onupgradeneeded = () => r.result.createObjectStore("kv");
      r.onsuccess = () => resolve(r.result);
      r.onerror = () => reject(r.error);
    }));
    const tx = (mode, fn) => open().then((d) => new Promise((resolve, reject) => {
      const t = d.transaction("kv", mode);
      const req = fn(t.objectStore("kv"));
      t.oncomplete = () => resolve(req.result);
      t.onerror = t.onabort = () => reject(t.error);
    }));
    return {
      get: () => tx("readonly", (kv) => kv.get(AUTH_KEY)),
      set: (v) => tx("readwrite", (kv) => (v ? kv.put(v, AUTH_KEY) : kv.delete(AUTH_KEY))),
    };
  })();

  // Take tokens another tab got for the same account, if they are newer.
  function adopt(a) {
    if (a && auth && a.user && auth.user && a.user.id === auth.user.id && a.expires_at > auth.expires_at) {
      auth = a;
      store.set(AUTH_KEY, a);
      scheduleRefresh();
    }
  }
  const fromTokens = (r) => ({
    access_token: r.access_token, refresh_token: r.refresh_token,
    expires_at: Date.now() + r.expires_in * 1000, user: r.user,
  });

  function scheduleRefresh() {
    clearTimeout(refreshTimer);
    if (!auth) return;
    const wait = Math.max(5_000, auth.expires_at - SKEW_MS - Date.now());
    refreshTimer = setTimeout(() => refreshTokens(auth && auth.access_token).catch(report), wait);
  }

  // One refresh at a time, across tabs too (a refresh token works once; a reused one ends the
  // whole session): under a lock, adopt what another tab got if it is newer than `stale`.
  function refreshTokens(stale) {
    if (!refreshing) {
      const run = async () => {
        adopt(store.get(AUTH_KEY));
        adopt(await shared.get().catch(() => null));
        if (!auth) throw new ApiError(401, "signed_out", "signed out");
        if (auth.access_token !== stale && auth.expires_at - SKEW_MS > Date.now()) return;
        try {
          const next = fromTokens(await request("POST", "/api/auth/refresh", { refresh_token: auth.refresh_token }));
          await saveAuth(next); // stored before the lock is released
        } catch (e) {
          if (e.status === 401 || e.status === 400) {
            signedOut("Your session ended: sign in again.");
            throw new ApiError(401, "signed_out", "signed out");
          }
          throw e;
        }
      };
      const locked = navigator.locks ? navigator.locks.request("gax-auth", run) : run();
      refreshing = locked.finally(() => { refreshing = null; });
    }
    return refreshing.then(() => auth.access_token);
  }

  async function freshToken() {
    if (!auth) throw new ApiError(401, "signed_out", "sign in first");
    if (auth.expires_at - SKEW_MS > Date.now()) return auth.access_token;
    return refreshTokens(auth.access_token);
  }

  // An authenticated call; a 401 refreshes the access token once and retries.
  async function api(method, path, body) {
    const token = await freshToken();
    try {
      return await request(method, path, body, token);
    } catch (e) {
      if (e.status !== 401 || !auth) throw e;
      return request(method, path, body, await refreshTokens(token));
    }
  }

  // Another tab signed in, refreshed or signed out.
  window.addEventListener("storage", (e) => {
    if (e.key !== AUTH_KEY) return;
    const next = store.get(AUTH_KEY);
    if (!next) { if (auth) signedOut(""); return; }
    if (auth && next.user && auth.user && next.user.id === auth.user.id) { adopt(next); return; }
    location.reload(); // a different account
  });

  // ------------------------------------------------------------------------------------------
  // State

  const S = {
    user: null,
    chats: new Map(), // chat id -> summary {chat, role, last_read_seq, unread, peer}
    open: null, // open chat id
    msgs: new Map(), // chat id -> Map(seq -> message), only for chats whose history is loaded
    more: new Map(), // chat id -> older history exists
    loadingOlder: null, // promise of the page being loaded
    members: new Map(), // chat id -> Map(user id -> last_read_seq)
    pending: new Map(), // client_key -> {client_key, chat, text, attachments, created_at, error?}
    uploads: [], // uploads in progress: {key, name, loaded, total, chat, done, error, events}
    files: new Map(), // file id -> {info, url, expires_at}
    waiters: new Map(), // client_key -> {resolve, reject} (gaxChat.send)
    profiles: new Map(), // user id -> profile
    asked: new Set(), // user ids whose profile is being fetched
    friends: { friends: [], incoming: [], outgoing: [] },
    online: new Set(),
    typing: new Map(), // chat id -> Map(user id -> timer)
    editing: null, // {chat, seq, draft}
    ws: null, connected: false, synced: false, backoff: 0, retryTimer: null, lastSeen: 0,
    watched: "",
    lastTypingSent: 0,
    stick: false, keepOffset: false,
  };
  const me = () => (S.user ? S.user.id : null);
  const pendingKey = () => "gax.pending." + me();
  const savePending = () => store.set(pendingKey(), [...S.pending.values()]);
  const maxSeq = (held) => { let m = 0; for (const s of held.keys()) if (s > m) m = s; return m; };
  const minSeq = (held) => { let m = Infinity; for (const s of held.keys()) if (s < m) m = s; return m; };

  function profile(id) {
    const p = S.profiles.get(id);
    if (!p && id != null && !S.asked.has(id) && auth) {
      S.asked.add(id);
      api("GET", `/api/users/${id}`).then((pr) => { S.profiles.set(id, pr); render(); })
        .catch(() => {}).finally(() => S.asked.delete(id));
    }
    return p;
  }
  const nameOf = (id) => { const p = profile(id); return p ? p.display_name || p.username : `user ${id}`; };
  const remember = (list) => { for (const p of list) S.profiles.set(p.id, p); };
  const chatTitle = (s) => (s.chat.kind === "group" ? s.chat.title || "Group" : s.peer != null ? nameOf(s.peer) : "Direct chat");

  // ------------------------------------------------------------------------------------------
  // Messenger WebSocket

  function setConn(text, state) {
    $("m-conn").textContent = text;
    $("m-conn").dataset.state = state;
  }

  function wsSend(msg) {
    if (!S.ws || !S.connected || S.ws.readyState !== WebSocket.OPEN) return false;
    S.ws.send(JSON.stringify(msg));
    return true;
  }

  function connect() {
    clearTimeout(S.retryTimer);
    if (!auth || S.ws) return;
    const ws = new WebSocket(`${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/ws`);
    S.ws = ws;
    setConn("connecting…", "busy");
    ws.onopen = async () => {
      let token;
      try { token = await freshToken(); } catch (e) { ws.close(); return; }
      if (S.ws !== ws || ws.readyState !== WebSocket.OPEN) return;
      const resume = {};
      for (const [id, held] of S.msgs) resume[String(id)] = maxSeq(held);
      ws.token = token;
      ws.send(JSON.stringify({ type: "hello", version: 1, token, resume }));
    };
    ws.onmessage = (ev) => {
      if (S.ws !== ws) return;
      S.lastSeen = Date.now();
      let msg;
      try { msg = JSON.parse(ev.data); } catch (e) { return; }
      try { onEvent(msg); } catch (e) { report(e); }
    };
    ws.onclose = (ev) => closed(ws, ev.code, ev.reason);
  }

  function closed(ws, code, reason) {
    if (S.ws !== ws) return;
    ws.onclose = ws.onmessage = ws.onopen = null;
    S.ws = null;
    S.connected = S.synced = false;
    if (!auth) return;
    if (code === 4401) refreshTokens(ws.token).catch(() => {}); // only if nobody refreshed since
    const delay = Math.min(15_000, 1000 * 2 ** S.backoff);
    S.backoff = Math.min(S.backoff + 1, 4);
    setConn(`offline, retrying in ${delay / 1000} s`, "error");
    $("m-conn").title = reason ? `${code}: ${reason}` : `closed (${code})`;
    S.retryTimer = setTimeout(connect, delay);
    render();
  }

  // Drop the socket now (tests; a connection that went silent); reconnects with backoff.
  function dropSocket() {
    const ws = S.ws;
    if (!ws) return;
    closed(ws, 4000, "dropped by the client");
    try { ws.close(); } catch (e) { /* already closed */ }
  }

  setInterval(() => {
    if (!S.ws || !S.connected) return;
    if (Date.now() - S.lastSeen > 60_000) dropSocket();
    else wsSend({ type: "ping" });
  }, 25_000);
  window.addEventListener("online", () => { if (auth && !S.ws) { S.backoff = 0; connect(); } });

  function onEvent(msg) {
    switch (msg.type) {
      case "welcome":
        S.connected = true;
        S.backoff = 0;
        S.user = msg.user;
        S.profiles.set(msg.user.id, msg.user);
        if (auth) { auth.user = msg.user; store.set(AUTH_KEY, auth); }
        setConn("online", "connected");
        $("m-conn").title = "";
        setChats(msg.chats || []);
        S.watched = "";
        sendWatch();
        for (const p of S.pending.values()) if (!p.error) sendPending(p);
        maybeMarkRead();
        break;
      case "message":
      case "ack":
        if (msg.type === "ack") settle(msg.client_key, msg.message);
        if (msg.message) addMessage(msg.message);
        break;
      case "message_edited": {
        const m = msg.message;
        const held = S.msgs.get(m.chat);
        if (held && held.has(m.seq)) held.set(m.seq, m);
        break;
      }
      case "message_deleted": {
        const held = S.msgs.get(msg.chat);
        const m = held && held.get(msg.seq);
        if (m) held.set(msg.seq, { ...m, text: null, attachments: [], deleted_at: m.deleted_at || Date.now() });
        break;
      }
      case "chat_changed": {
        const id = typeof msg.chat === "object" && msg.chat ? msg.chat.id : msg.chat;
        const s = S.chats.get(id);
        if (s && typeof msg.title === "string") s.chat.title = msg.title;
        const ids = Array.isArray(msg.members) ? msg.members.map((m) => (typeof m === "object" ? m.user : m)) : null;
        if (ids && me() != null && !ids.includes(me())) dropChat(id); // we were removed
        else if (id === S.open) loadMembers(id).catch(() => {});
        refetchChatsSoon();
        break;
      }
      case "refetch":
        S.msgs.delete(msg.chat);
        S.more.delete(msg.chat);
        if (msg.chat === S.open) loadNewest(msg.chat).catch(report);
        refetchChatsSoon();
        break;
      case "synced":
        S.synced = true;
        maybeMarkRead();
        break;
      case "typing":
        if (msg.user !== me()) setTyping(msg.chat, msg.user, true);
        break;
      case "read":
        if (msg.user === me()) {
          const s = S.chats.get(msg.chat);
          if (s) {
            s.last_read_seq = Math.max(s.last_read_seq, msg.seq);
            if (s.last_read_seq >= s.chat.last_seq) s.unread = 0;
          }
        } else {
          if (!S.members.has(msg.chat)) S.members.set(msg.chat, new Map());
          const mem = S.members.get(msg.chat);
          mem.set(msg.user, Math.max(mem.get(msg.user) || 0, msg.seq));
        }
        break;
      case "friends_changed":
        loadFriends().catch(report);
        break;
      case "presence":
        if (msg.online) S.online.add(msg.user); else S.online.delete(msg.user);
        break;
      case "error":
        if (msg.client_key && S.pending.has(msg.client_key)) {
          const p = S.pending.get(msg.client_key);
          p.error = msg.message || msg.code;
          savePending();
          const w = S.waiters.get(msg.client_key);
          if (w) { S.waiters.delete(msg.client_key); w.reject(new ApiError(0, msg.code, p.error)); }
        } else {
          showError(`${msg.code}: ${msg.message}`);
        }
        if (msg.code === "not_member") refetchChatsSoon();
        break;
      default:
        break; // pong and anything newer
    }
    render();
  }

  function sendWatch() {
    const ids = new Set(S.friends.friends.map((f) => f.id));
    for (const s of S.chats.values()) if (s.peer != null) ids.add(s.peer);
    const users = [...ids].sort((a, b) => a - b).slice(0, 500);
    const key = users.join(",");
    if (key === S.watched) return;
    if (wsSend({ type: "watch", users })) S.watched = key;
  }

  // ------------------------------------------------------------------------------------------
  // Chats and messages

  function setChats(list) {
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

  function dropChat(id) {
    S.chats.delete(id);
    S.msgs.delete(id);
    S.more.delete(id);
    S.members.delete(id);
    if (S.open === id) closeChat();
  }

  async function refetchChats() {
    setChats(await api("GET", "/api/chats"));
  }
  let refetchTimer = null;
  function refetchChatsSoon() {
    clearTimeout(refetchTimer);
    refetchTimer = setTimeout(() => refetchChats().catch(report), 150);
  }

  function addMessage(m) {
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
  function settle(clientKey, message) {
    if (!S.pending.delete(clientKey)) return;
    savePending();
    const w = S.waiters.get(clientKey);
    if (w) { S.waiters.delete(clientKey); w.resolve(message); }
  }

  function sendPending(p) {
    return wsSend({ type: "send", chat: p.chat, text: p.text, attachments: p.attachments || [], client_key: p.client_key });
  }

  // Queue a message; it goes out now or after the next reconnect, with the same client_key.
  function sendText(text, chat = S.open, attachments = []) {
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

  // ------------------------------------------------------------------------------------------
  // Attachments: upload with progress (XHR: fetch has no upload progress), then send a message
  // that references the file ids. Shown inline through signed links (a <video> cannot send an
  // Authorization header).

  // One upload: POST /api/files with the file as the raw body. Progress goes to S.uploads.
  function uploadFile(file, chat) {
    const u = { key: uuid(), name: file.name || "file", loaded: 0, total: file.size, chat, done: false, error: null, events: 0 };
    S.uploads.push(u);
    renderUploads();
    const attempt = (token) => new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", "/api/files");
      xhr.setRequestHeader("Authorization", "Bearer " + token);
      xhr.setRequestHeader("X-File-Name", encodeURIComponent(u.name));
      if (file.type) xhr.setRequestHeader("Content-Type", file.type);
      xhr.upload.onprogress = (e) => {
        if (e.lengthComputable) { u.loaded = e.loaded; u.total = e.total; }
        u.events += 1;
        renderUploads();
      };
      xhr.onload = () => {
        let data = null;
        try { data = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
        if (xhr.status === 201 && data) resolve(data);
        else reject(new ApiError(xhr.status, (data && data.error) || "http_" + xhr.status, (data && data.message) || `upload failed (${xhr.status})`));
      };
      xhr.onerror = () => reject(new ApiError(0, "network", "the upload was interrupted"));
      xhr.send(file);
    });
    return freshToken()
      .then((t) => attempt(t).catch((e) => (e.status === 401 && auth ? refreshTokens(t).then(attempt) : Promise.reject(e))))
      .then((f) => {
        u.done = true; u.loaded = u.total;
        S.files.set(f.id, { info: f });
        renderUploads();
        setTimeout(() => { S.uploads = S.uploads.filter((x) => x !== u); renderUploads(); }, 1500);
        return f;
      }, (e) => { u.error = e.message; renderUploads(); throw e; });
  }

  // Uploads every file, then sends one message with all of them and the composer text.
  async function sendFiles(files, text = "", chat = S.open) {
    if (chat == null) throw new Error("open a chat first");
    const uploaded = await Promise.all([...files].map((f) => uploadFile(f, chat)));
    return sendText(text, chat, uploaded.map((f) => f.id));
  }

  function renderUploads() {
    const list = $("uploads");
    list.replaceChildren(...S.uploads.filter((u) => u.chat === S.open).map((u) => {
      const pct = u.total ? Math.round((100 * u.loaded) / u.total) : 0;
      const bar = h("progress", { max: "100", value: String(pct), "aria-label": `Uploading ${u.name}` });
      return h("li", { class: u.error ? "failed" : u.done ? "done" : "" }, h("span", {}, u.name), bar,
        h("span", {}, u.error ? `failed: ${u.error}` : u.done ? "uploaded" : `${pct}%`));
    }));
  }

  // The file's record and a signed link, fetched once per file (the link renewed when stale).
  async function fileView(id) {
    let f = S.files.get(id) || {};
    if (!f.info) f.info = await api("GET", `/api/files/${encodeURIComponent(id)}/info`);
    if (!f.url || f.expires_at * 1000 - Date.now() < 60_000) {
      const link = await api("POST", `/api/files/${encodeURIComponent(id)}/link`, {});
      f.url = link.url; f.expires_at = link.expires_at;
    }
    S.files.set(id, f);
    return f;
  }

  // An attachment's element: image, audio or video inline, anything else a download link.
  function attachmentNode(id) {
    const box = h("div", { class: "file", "data-file": id }, h("span", { class: "hint" }, "loading attachment…"));
    fileView(id).then((f) => {
      const t = f.info.content_type || "";
      let node;
      if (t.startsWith("image/") && t !== "image/svg+xml") node = h("img", { src: f.url, alt: f.info.name, loading: "lazy" });
      else if (t.startsWith("video/")) node = h("video", { src: f.url, controls: "", preload: "metadata", playsinline: "" });
      else if (t.startsWith("audio/")) node = h("audio", { src: f.url, controls: "", preload: "metadata" });
      const size = f.info.size >= 1 << 20 ? `${(f.info.size / (1 << 20)).toFixed(1)} MiB` : `${Math.ceil(f.info.size / 1024)} KiB`;
      const link = h("a", { href: f.url, download: f.info.name }, `${f.info.name} (${size})`);
      box.replaceChildren(...(node ? [node, link] : [link]));
    }, (e) => {
      box.replaceChildren(h("span", { class: "hint" }, e.status === 404 ? "attachment removed" : `attachment unavailable: ${e.message}`));
    });
    return box;
  }

  function retryPending(key) {
    const p = S.pending.get(key);
    if (!p) return;
    delete p.error;
    savePending();
    sendPending(p);
    render();
  }
  function discardPending(key) {
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

  async function loadNewest(id) {
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

  function loadOlder() {
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

  async function loadMembers(id) {
    const d = await api("GET", `/api/chats/${id}`);
    const s = S.chats.get(id);
    if (s) Object.assign(s.chat, d.chat, { last_seq: Math.max(s.chat.last_seq, d.chat.last_seq) });
    S.members.set(id, new Map(d.members.map((m) => [m.user, m.last_read_seq])));
    render();
  }

  async function openChat(id, seq) {
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

  function closeChat() {
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
  function maybeMarkRead() {
    const id = S.open;
    const s = S.chats.get(id);
    const held = S.msgs.get(id);
    if (!s || !held || !held.size || document.visibilityState !== "visible") return;
    const newest = maxSeq(held);
    if (newest > s.last_read_seq && wsSend({ type: "read", chat: id, seq: newest })) s.last_read_seq = newest;
    if (s.last_read_seq >= s.chat.last_seq) s.unread = 0;
    render();
  }
  document.addEventListener("visibilitychange", maybeMarkRead);

  function setTyping(chat, user, on) {
    const t = S.typing.get(chat);
    if (t && t.has(user)) { clearTimeout(t.get(user)); t.delete(user); }
    if (!on) return;
    if (!S.typing.has(chat)) S.typing.set(chat, new Map());
    S.typing.get(chat).set(user, setTimeout(() => { S.typing.get(chat).delete(user); render(); }, 4000));
  }
  function typingText(chat) {
    const names = [...(S.typing.get(chat) || new Map()).keys()].map(nameOf);
    if (!names.length) return "";
    if (names.length === 1) return `${names[0]} is typing…`;
    if (names.length === 2) return `${names[0]} and ${names[1]} are typing…`;
    return `${names.length} people are typing…`;
  }

  // The highest read mark of the other members: own messages up to it are "read".
  function othersRead(chat) {
    let m = 0;
    for (const [u, seq] of S.members.get(chat) || []) if (u !== me() && seq > m) m = seq;
    return m;
  }

  async function editMessage(seq, text, chat = S.open) {
    const m = await api("PATCH", `/api/chats/${chat}/messages/${seq}`, { text });
    const held = S.msgs.get(chat);
    if (held) held.set(m.seq, m);
    S.editing = null;
    render();
    return m;
  }

  async function deleteMessage(seq, chat = S.open) {
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

  const userByName = (name) => api("GET", `/api/users/by-name/${encodeURIComponent(name.trim().replace(/^@/, ""))}`);

  async function createGroup(title, usernames) {
    const names = (Array.isArray(usernames) ? usernames : String(usernames || "").split(/[,\s]+/)).filter(Boolean);
    const members = await Promise.all(names.map(async (n) => {
      try { return (await userByName(n)).id; } catch (e) { throw new Error(`${n}: ${e.message}`); }
    }));
    return createChat({ kind: "group", title: String(title).trim(), members: members.filter((id) => id !== me()) });
  }

  async function openDirect(userOrName) {
    const id = typeof userOrName === "number" ? userOrName : (await userByName(userOrName)).id;
    return createChat({ kind: "direct", user: id });
  }

  async function startCall(openTab = true) {
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

  // ------------------------------------------------------------------------------------------
  // Friends

  async function loadFriends() {
    const f = await api("GET", "/api/friends");
    S.friends = f;
    remember([...f.friends, ...f.incoming, ...f.outgoing]);
    sendWatch();
    render();
    return f;
  }

  async function addFriend(username) {
    const p = await userByName(username);
    if (p.id === me()) throw new Error("that is you");
    S.profiles.set(p.id, p);
    const r = await api("POST", `/api/friends/${p.id}/request`);
    await loadFriends();
    return r.outcome;
  }
  const friendAction = (path, method = "POST") => async (id) => { await api(method, path(id)); await loadFriends(); };
  const acceptFriend = friendAction((id) => `/api/friends/${id}/accept`);
  const declineFriend = friendAction((id) => `/api/friends/${id}/decline`);
  const removeFriend = friendAction((id) => `/api/friends/${id}`, "DELETE"); // also cancels a request

  // ------------------------------------------------------------------------------------------
  // Search (tolerates a server without /api/search)

  let searchSeq = 0;
  let lastHits = [];
  function normalizeHit(hit) {
    const item = hit.item && typeof hit.item === "object" ? { ...hit, ...hit.item } : { ...hit };
    const sn = hit.snippet;
    item.snippetText = typeof sn === "string" ? sn : (sn && sn.text) || "";
    item.highlights = (sn && Array.isArray(sn.highlights) ? sn.highlights : [])
      .map((r) => (Array.isArray(r) ? r : [r.start, r.end]));
    return item;
  }

  async function search(q) {
    q = String(q || "").trim();
    const mine = ++searchSeq;
    if (!q) { lastHits = []; $("search-results").hidden = true; return []; }
    $("search-results").hidden = false;
    $("search-note").textContent = "Searching…";
    try {
      const r = await api("GET", `/api/search?q=${encodeURIComponent(q)}`);
      if (mine !== searchSeq) return lastHits;
      lastHits = ((r && r.hits) || []).map(normalizeHit);
      $("search-note").textContent = lastHits.length ? `${lastHits.length} found` : "Nothing found.";
    } catch (e) {
      if (mine !== searchSeq) return lastHits;
      lastHits = [];
      $("search-note").textContent = e.status === 404 ? "Search is not available on this server yet." : e.message;
    }
    renderSearch();
    return lastHits;
  }

  // Snippet text with its highlights (UTF-8 byte ranges) in <mark>.
  function snippetNodes(text, ranges) {
    if (!ranges.length) return [text];
    const bytes = new TextEncoder().encode(text);
    const dec = new TextDecoder();
    const out = [];
    let at = 0;
    for (const [a, b] of [...ranges].sort((x, y) => x[0] - y[0])) {
      if (a < at || b > bytes.length || a >= b) continue;
      out.push(dec.decode(bytes.slice(at, a)), h("mark", {}, dec.decode(bytes.slice(a, b))));
      at = b;
    }
    out.push(dec.decode(bytes.slice(at)));
    return out;
  }

  function renderSearch() {
    const kinds = { user: "Person", chat: "Chat", message: "Message", file: "File" };
    sync($("search-list"), lastHits, (x) => `${x.kind}:${x.user ?? ""}:${x.chat ?? ""}:${x.seq ?? ""}:${x.file_id ?? ""}`,
      (x) => x.snippetText, (x) => {
        const s = x.chat != null ? S.chats.get(x.chat) : null;
        const sender = x.sender ?? x.user; // message hits: who wrote it
        const where = x.kind !== "message" ? "" : (sender != null ? ` from ${nameOf(sender)}` : "") + (s ? ` in ${chatTitle(s)}` : "");
        const body = [h("span", { class: "kind" }, (kinds[x.kind] || x.kind) + where), " ",
          h("span", { class: "snippet" }, snippetNodes(x.snippetText, x.highlights))];
        if (x.kind === "chat" || x.kind === "message") {
          return h("li", {}, h("button", { type: "button", class: "item", onclick: ui(() => openChat(x.chat, x.seq)) }, body));
        }
        if (x.kind === "user" && x.user !== me()) {
          return h("li", { class: "item" }, h("span", {}, body), h("span", { class: "acts" },
            h("button", { type: "button", onclick: ui(() => openDirect(x.user)) }, "Message"),
            isFriend(x.user) ? null : h("button", { type: "button", class: "secondary", onclick: ui(async () => { await api("POST", `/api/friends/${x.user}/request`); await loadFriends(); }) }, "Add friend")));
        }
        return h("li", { class: "item" }, body);
      });
  }
  const isFriend = (id) => S.friends.friends.some((f) => f.id === id);

  // ------------------------------------------------------------------------------------------
  // Rendering (coalesced: many events, one render)

  let renderQueued = false;
  function render() {
    if (renderQueued) return;
    renderQueued = true;
    queueMicrotask(() => { renderQueued = false; renderNow(); });
  }

  function dot(userId) {
    const on = S.online.has(userId);
    return h("span", { class: "dot" + (on ? " online" : ""), title: on ? "online" : "offline", "aria-label": on ? "online" : "offline", role: "img" });
  }
  function badge(n, label) {
    return n > 0 ? h("span", { class: "badge", "aria-label": `${n} ${label}` }, n > 99 ? "99+" : n) : null;
  }

  function renderNow() {
    if (!auth) return;
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

  // ------------------------------------------------------------------------------------------
  // Sign in / out and start

  async function signIn(kind, username, password, displayName) {
    const body = { username: String(username).trim(), password };
    if (kind === "register" && displayName) body.display_name = displayName;
    const r = await request("POST", `/api/auth/${kind}`, body);
    saveAuth(fromTokens(r));
    start();
    return r.user;
  }

  function signedOut(message) {
    saveAuth(null);
    if (S.ws) { const ws = S.ws; S.ws = null; ws.onclose = null; try { ws.close(1000); } catch (e) { /* closed */ } }
    clearTimeout(S.retryTimer);
    for (const w of S.waiters.values()) w.reject(new Error("signed out"));
    Object.assign(S, {
      user: null, chats: new Map(), open: null, msgs: new Map(), more: new Map(), members: new Map(),
      pending: new Map(), waiters: new Map(), profiles: new Map(), online: new Set(), typing: new Map(),
      friends: { friends: [], incoming: [], outgoing: [] }, connected: false, synced: false, backoff: 0, editing: null,
    });
    ["chat-list", "chat-log", "friend-list", "incoming-list", "outgoing-list", "search-list"].forEach((id) => $(id).replaceChildren());
    lastHits = [];
    $("search-q").value = "";
    $("search-results").hidden = true;
    $("m-app").hidden = true;
    $("m-bar").hidden = true;
    $("auth-form").hidden = false;
    document.title = "GAX";
    if (message) showError(message);
  }

  async function logout() {
    const token = auth && auth.refresh_token;
    signedOut("");
    if (token) await request("POST", "/api/auth/logout", { refresh_token: token }).catch(() => {});
  }

  function start() {
    S.user = auth.user;
    if (S.user) S.profiles.set(S.user.id, S.user);
    S.pending = new Map((store.get(pendingKey()) || []).map((p) => [p.client_key, p]));
    $("auth-form").hidden = true;
    $("m-app").hidden = false;
    $("m-bar").hidden = false;
    showError("");
    scheduleRefresh();
    Promise.all([refetchChats(), loadFriends()]).then(() => {
      const m = /^#chat=(\d+)$/.exec(location.hash);
      if (m && S.open == null) return openChat(Number(m[1]));
    }).catch(report);
    connect();
    render();
  }

  setInterval(() => { if (auth && document.visibilityState === "visible") loadFriends().catch(() => {}); }, 30_000);

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
    refresh: () => refreshTokens(auth && auth.access_token),
    dropSocket,
    api,
  };

  if (auth && auth.refresh_token && auth.user) start();
  else { auth = null; signedOut(""); }
})();
