// GAX watch party page: `/watch/{room}?token=T&autojoin=1` plays the room's source in sync with
// everyone else; `/watch/new` creates a room. Protocol: docs/protocol.md ("GAX watch party").
//
// Sync model: the server holds {version, paused, position, rate, updated_at} on its clock. The
// page estimates its offset to that clock (NTP-style `time` pings, lowest round trip wins), so
// the target position at any instant is position + (serverNow - updated_at) * rate. Starts are
// scheduled by the server slightly in the future; the page waits for that instant. Drift is
// corrected only when it is sustained: small by nudging playbackRate, large by seeking.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(location.search);
  const roomId = decodeURIComponent(location.pathname.replace(/^\/watch\/?/, "").split("/")[0] || "new");

  const SYNC_SAMPLES = 8;          // clock sync pings at start
  const RESYNC_MS = 15_000;        // then one ping this often (the window keeps the best)
  const SYNC_WINDOW = 16;          // samples kept; the lowest round trip gives the offset
  const DRIFT_EVERY_MS = 200;      // drift check period
  const DRIFT_SUSTAIN = 4;         // consecutive samples beyond a threshold before acting
  const DRIFT_SMALL = 0.02;        // s: beyond this, nudge the rate
  const DRIFT_OK = 0.008;          // s: within this, play at the room's rate again
  const DRIFT_LARGE = 0.6;         // s: beyond this, seek
  const NUDGE_MAX = 0.1;           // at most ±10% rate nudge
  const SEEK_BACKOFF_MS = 2_000;   // at least this long between corrective seeks
  const WAIT_FOR_OTHERS_MS = 5_000; // the host waits at most this long for buffering viewers
  const REACTIONS = ["👍", "😂", "😮", "❤️", "👏"];

  const video = $("w-video");
  const show = (el, on) => { el.hidden = !on; };
  function setStatus(text, state) { const s = $("w-status"); s.textContent = text; s.dataset.state = state || "idle"; }
  function showError(text) { const e = $("w-error"); e.textContent = text || ""; show(e, !!text); }
  const storedAuth = () => { try { return JSON.parse(localStorage.getItem("gax.auth")); } catch (e) { return null; } };
  // The URL's token (share link or test), else the signed-in messenger user's access token.
  function token() {
    if (params.get("token")) return params.get("token");
    const a = storedAuth();
    return a && a.access_token ? a.access_token : null;
  }
  async function api(method, path, body, headers) {
    const t = token();
    const h = Object.assign({}, headers || {});
    if (t) h.Authorization = "Bearer " + t;
    let payload = body;
    if (body && !(body instanceof Blob) && typeof body === "object") { h["Content-Type"] = "application/json"; payload = JSON.stringify(body); }
    const r = await fetch(path, { method, headers: h, body: payload });
    const text = await r.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (e) { /* not JSON */ }
    if (!r.ok) throw new Error((data && data.message) || `${r.status} ${r.statusText}`);
    return data;
  }
  const fmt = (s) => { s = Math.max(0, Math.floor(s || 0)); return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`; };

  // ------------------------------------------------------------------------------------------
  // Creating a room

  // The length of a video, read from its metadata (null when it cannot be read in time).
  function probeDuration(src) {
    return new Promise((resolve) => {
      const v = document.createElement("video");
      const done = (d) => { clearTimeout(timer); v.removeAttribute("src"); v.load(); resolve(d); };
      const timer = setTimeout(() => done(null), 8_000);
      v.preload = "metadata";
      v.muted = true;
      v.onloadedmetadata = () => done(Number.isFinite(v.duration) && v.duration > 0 ? v.duration : null);
      v.onerror = () => done(null);
      v.src = src;
    });
  }

  async function createRoom(ev) {
    ev.preventDefault();
    showError("");
    try {
      if (!token()) throw new Error("sign in to the messenger first (or open a link with a token)");
      const title = $("w-create-title").value.trim();
      const file = $("w-create-file").files[0];
      const url = $("w-create-url").value.trim();
      let source, duration;
      if (file) {
        setStatus("uploading…");
        const local = URL.createObjectURL(file);
        duration = await probeDuration(local);
        URL.revokeObjectURL(local);
        const up = await api("POST", "/api/files", file, { "X-File-Name": encodeURIComponent(file.name), "Content-Type": file.type || "application/octet-stream" });
        source = { file: up.id };
      } else if (url) {
        duration = await probeDuration(url);
        source = { url };
      } else {
        throw new Error("give a URL or pick a file");
      }
      const view = await api("POST", "/api/watch", { title, source, duration: duration || undefined });
      const keep = params.get("token") ? `token=${encodeURIComponent(params.get("token"))}&` : "";
      location.href = `${view.page}?${keep}autojoin=1`;
    } catch (e) {
      setStatus("not connected", "error");
      showError(String(e.message || e));
    }
  }

  // ------------------------------------------------------------------------------------------
  // Clock: server time = local monotonic time + offset

  const localNow = () => performance.timeOrigin + performance.now();
  const clock = { offset: 0, rtt: Infinity, samples: [], synced: false };
  const serverNow = () => localNow() + clock.offset;
  function onTimeReply(t0, server) {
    const t1 = localNow();
    const rtt = t1 - t0;
    if (!(rtt >= 0)) return;
    clock.samples.push({ rtt, offset: server + rtt / 2 - t1 });
    if (clock.samples.length > SYNC_WINDOW) clock.samples.shift();
    const best = clock.samples.reduce((a, b) => (b.rtt < a.rtt ? b : a));
    clock.offset = best.offset;
    clock.rtt = best.rtt;
    $("w-sync").textContent = `clock ±${(best.rtt / 2).toFixed(1)} ms`;
  }

  // ------------------------------------------------------------------------------------------
  // The room session

  let ws = null;
  let welcome = null;
  let welcomes = 0;          // how many times this page joined (reconnects included)
  let state = null;          // the room's playback state
  let role = "viewer";
  let me = null;
  let members = [];
  const buffering = new Map(); // from -> name, for others that buffer
  let startTimer = null;
  let driftTimer = null;
  let drift = [];             // recent drift samples (s), newest last
  let lastSeekAt = 0;
  let lastReloadAt = 0;
  let seekingFor = false;     // a corrective or state seek is in flight
  let localBuffering = false;
  let waitingForOthers = null;
  let reconnectDelay = 500;
  let syncPending = null;
  let closedForGood = false;
  let callInfo = null;

  function send(msg) { if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(msg)); }
  const canControl = () => role === "host" || role === "controller";

  // The position the room is at, at server time t (seconds).
  function targetAt(t) {
    if (!state) return 0;
    let p = state.position;
    if (!state.paused && t > state.updated_at) p += ((t - state.updated_at) / 1000) * state.rate;
    if (state.duration != null) p = Math.min(p, state.duration);
    return Math.max(0, p);
  }

  function syncClock(n) {
    let left = n;
    const ping = () => {
      if (left-- <= 0) { clock.synced = true; syncPending = null; return; }
      syncPending = ping;
      send({ type: "time", t0: localNow() });
    };
    ping();
  }

  function connect() {
    const t = token();
    if (!t) { showError("this page needs a token: open a share link, or sign in to the messenger"); return; }
    setStatus("connecting…");
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    ws = new WebSocket(`${proto}//${location.host}/ws`);
    ws.onopen = () => {
      const name = $("w-name").value.trim() || params.get("name") || undefined;
      send({ type: "watch", version: 1, room: roomId, token: t, name });
    };
    ws.onmessage = (e) => onMessage(JSON.parse(e.data));
    ws.onclose = (e) => {
      setStatus(`disconnected (${e.code})`, "error");
      if (closedForGood || [4401, 4403, 4404, 4426].includes(e.code)) return;
      setTimeout(connect, reconnectDelay);
      reconnectDelay = Math.min(reconnectDelay * 2, 10_000);
    };
  }

  function onMessage(m) {
    switch (m.type) {
      case "welcome": {
        welcome = m;
        welcomes += 1;
        reconnectDelay = 500;
        role = m.you.role;
        me = m.you;
        callInfo = m.call;
        members = m.members;
        $("w-title").textContent = m.room.title;
        document.title = `${m.room.title} · GAX watch party`;
        setStatus("connected", "connected");
        show($("w-join"), false);
        show($("w-main"), true);
        // Until the first sync sample arrives, use the server time in the welcome.
        if (!clock.samples.length) clock.offset = m.server_time - localNow();
        syncClock(SYNC_SAMPLES);
        // A file's signed link is new on every join: keep playing the one we have unless the
        // media changed (or the player fails, see the `error` handler).
        const path = (u) => (u || "").split("?")[0];
        if (path(video.getAttribute("src")) !== path(m.source_url)) {
          video.src = m.source_url;
          reportBuffering(true); // not ready until the player can play
        }
        renderRole();
        renderMembers();
        applyState(m.state);
        break;
      }
      case "time":
        onTimeReply(m.t0, m.server);
        if (syncPending) syncPending();
        break;
      case "state": applyState(m.state); break;
      case "members": {
        members = m.members;
        const mine = me && members.find((x) => `user:${x.user}` === me.id);
        if (mine) { role = mine.role; renderRole(); }
        renderMembers();
        break;
      }
      case "chat": addChat(m.name, m.text); break;
      case "reaction": floatReaction(m.emoji); addChat(m.name, m.emoji); break;
      case "buffering":
        if (m.buffering) buffering.set(m.from, m.name); else buffering.delete(m.from);
        renderBuffering();
        break;
      case "error":
        showError(`${m.code}: ${m.message}`);
        if (m.state) applyState(m.state);
        break;
      case "pong": break;
      default: break;
    }
  }

  // ------------------------------------------------------------------------------------------
  // Following the state

  function applyState(s) {
    if (state && s.version < state.version) return;
    state = s;
    drift = [];
    clearTimeout(startTimer);
    video.playbackRate = s.rate;
    $("w-seek").max = String(s.duration || video.duration || 0);
    $("w-rate").value = String(s.rate);
    $("w-play").textContent = s.paused ? "Play" : "Pause";
    if (s.paused) {
      video.pause();
      seekTo(s.position);
      return;
    }
    const wait = s.updated_at - serverNow();
    if (wait > 0) {
      // A scheduled start: be at the position, then start at the instant.
      video.pause();
      seekTo(s.position);
      startTimer = setTimeout(startPlaying, wait);
    } else if (!video.paused && Math.abs(video.currentTime - targetAt(serverNow())) < DRIFT_LARGE) {
      // Already playing close to the room (a rate change, a reconnect): the drift loop
      // closes the gap without a seek's stall.
      startPlaying();
    } else {
      // A late join, or a jump: be where the room is (a little ahead: seeking takes time).
      seekTo(targetAt(serverNow() + 100));
      startPlaying();
    }
  }

  function seekTo(pos) {
    if (Math.abs(video.currentTime - pos) < 0.02) return;
    seekingFor = true;
    lastSeekAt = performance.now();
    video.currentTime = pos;
  }

  function startPlaying() {
    if (!state || state.paused) return;
    video.playbackRate = state.rate;
    const p = video.play();
    if (p && p.catch) {
      p.catch(() => {
        // Autoplay with sound was refused: play muted, offer to unmute.
        video.muted = true;
        video.play().catch(() => {});
        overlay("muted: click the video to unmute");
      });
    }
  }

  function overlay(text) { const o = $("w-overlay"); o.textContent = text || ""; show(o, !!text); }
  video.addEventListener("click", () => { if (video.muted) { video.muted = false; overlay(""); } });
  video.addEventListener("seeked", () => { seekingFor = false; drift = []; });
  // An expired link (or a network failure): ask for a fresh source URL (else take the last
  // welcome's), load it and follow the room again.
  video.addEventListener("error", async () => {
    if (!welcome || performance.now() - lastReloadAt < 5_000) return;
    lastReloadAt = performance.now();
    let url = welcome.source_url;
    try { url = (await api("GET", `/api/watch/${roomId}`)).source_url; } catch (e) { /* keep it */ }
    video.src = url;
    if (state) applyState(state);
  });
  video.addEventListener("waiting", () => reportBuffering(true));
  video.addEventListener("playing", () => reportBuffering(false));
  video.addEventListener("canplay", () => { if (!state || state.paused || video.paused) reportBuffering(false); });
  video.addEventListener("loadedmetadata", () => {
    if (state && !state.duration) $("w-seek").max = String(video.duration || 0);
    if (state) applyState(state);
  });

  function reportBuffering(on) {
    if (on === localBuffering) return;
    localBuffering = on;
    send({ type: "buffering", buffering: on });
  }

  // What to do about the last DRIFT_SUSTAIN drift samples (s, > 0: ahead of the room). Acts
  // only on sustained drift: every sample beyond the threshold, on the same side, so one
  // jittery sample (a late timer, a slow frame) never moves the player.
  // Returns {act: "wait"|"seek"|"nudge"|"reset"|"hold", factor?}.
  function decideDrift(samples) {
    if (samples.length < DRIFT_SUSTAIN) return { act: "wait" };
    const sorted = [...samples].sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)];
    const side = Math.sign(median);
    if (samples.every((x) => Math.abs(x) > DRIFT_LARGE && Math.sign(x) === side)) return { act: "seek" };
    if (samples.every((x) => Math.abs(x) > DRIFT_SMALL && Math.sign(x) === side)) {
      const nudge = Math.max(-NUDGE_MAX, Math.min(NUDGE_MAX, median * 0.5));
      return { act: "nudge", factor: 1 - nudge };
    }
    if (samples.every((x) => Math.abs(x) < DRIFT_OK)) return { act: "reset" };
    return { act: "hold" };
  }

  // Drift correction: compare the player with the room every DRIFT_EVERY_MS.
  function checkDrift() {
    if (!state || state.paused || !clock.synced) return;
    const now = serverNow();
    if (now < state.updated_at || video.paused || video.seeking || seekingFor || video.readyState < 3) {
      drift = [];
      return;
    }
    drift.push(video.currentTime - targetAt(now));
    if (drift.length > DRIFT_SUSTAIN) drift.shift();
    const d = decideDrift(drift);
    if (d.act === "seek") {
      if (performance.now() - lastSeekAt > SEEK_BACKOFF_MS) {
        // Aim a little ahead: the seek itself takes time.
        video.playbackRate = state.rate;
        seekTo(targetAt(serverNow() + 80));
      }
    } else if (d.act === "nudge") {
      video.playbackRate = state.rate * d.factor;
    } else if (d.act === "reset" && video.playbackRate !== state.rate) {
      video.playbackRate = state.rate;
    }
  }

  // ------------------------------------------------------------------------------------------
  // Controls

  function control(action, extra) {
    if (!state) return;
    send(Object.assign({ type: "control", action, version: state.version }, extra || {}));
  }

  // Play waits (at most WAIT_FOR_OTHERS_MS) for viewers whose players are still buffering.
  function playWhenOthersReady() {
    if (waitingForOthers) return;
    if (buffering.size === 0) { control("play"); return; }
    overlay(`waiting for others (${[...buffering.values()].join(", ")})…`);
    const started = performance.now();
    waitingForOthers = setInterval(() => {
      if (buffering.size === 0 || performance.now() - started > WAIT_FOR_OTHERS_MS) {
        clearInterval(waitingForOthers);
        waitingForOthers = null;
        overlay("");
        control("play");
      }
    }, 100);
  }

  $("w-play").addEventListener("click", () => {
    if (!state || !canControl()) return;
    if (state.paused) playWhenOthersReady(); else control("pause");
  });
  $("w-seek").addEventListener("change", () => control("seek", { position: Number($("w-seek").value) }));
  $("w-rate").addEventListener("change", () => control("rate", { rate: Number($("w-rate").value) }));

  function renderRole() {
    $("w-role").textContent = role === "host" ? "you host" : role === "controller" ? "you control" : "watching";
    $("w-controls").dataset.control = canControl() ? "yes" : "no";
    show($("w-share"), role === "host");
    show($("w-invite"), role === "host");
  }

  function renderMembers() {
    const ul = $("w-members");
    ul.replaceChildren();
    for (const m of members) {
      const li = document.createElement("li");
      const name = document.createElement("span");
      name.textContent = `${m.display_name} (${m.role})`;
      li.append(name);
      if (role === "host" && m.role !== "host") {
        const b = document.createElement("button");
        b.type = "button";
        b.className = "secondary";
        b.textContent = m.role === "controller" ? "Take control" : "Give control";
        b.addEventListener("click", () => send({ type: "grant", user: m.user, role: m.role === "controller" ? "viewer" : "controller" }));
        li.append(b);
      }
      ul.append(li);
    }
  }

  function renderBuffering() {
    const names = [...buffering.values()];
    $("w-buffering").textContent = names.length ? `buffering: ${names.join(", ")}` : "";
  }

  function addChat(name, text) {
    const li = document.createElement("li");
    const b = document.createElement("b");
    b.textContent = name;
    li.append(b, document.createTextNode(text));
    const log = $("w-chat");
    log.append(li);
    while (log.children.length > 200) log.firstChild.remove();
    log.scrollTop = log.scrollHeight;
  }

  function floatReaction(emoji) {
    const s = document.createElement("span");
    s.textContent = emoji;
    s.style.left = `${10 + Math.random() * 80}%`;
    $("w-reactions").append(s);
    setTimeout(() => s.remove(), 2_600);
  }

  for (const e of REACTIONS) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = e;
    b.setAttribute("aria-label", `React ${e}`);
    b.addEventListener("click", () => send({ type: "reaction", emoji: e }));
    $("w-reaction-buttons").append(b);
  }

  $("w-chat-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const input = $("w-chat-text");
    const text = input.value.trim();
    if (!text) return;
    send({ type: "chat", text });
    input.value = "";
  });

  // The host invites a user by username (they then see the room in their own browser).
  $("w-invite").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const input = $("w-invite-name");
    try {
      const user = await api("GET", `/api/users/by-name/${encodeURIComponent(input.value.trim())}`);
      await api("POST", `/api/watch/${roomId}/members`, { user: user.id });
      input.value = "";
      showError("");
    } catch (e) {
      showError(String(e.message || e));
    }
  });

  $("w-share").addEventListener("click", async () => {
    try {
      const link = await api("POST", `/api/watch/${roomId}/link`);
      const url = new URL(link.url, location.origin).href;
      const p = $("w-link");
      p.textContent = `Share: ${url}`;
      show(p, true);
      if (navigator.clipboard) navigator.clipboard.writeText(url).catch(() => {});
    } catch (e) {
      showError(String(e.message || e));
    }
  });

  // The optional call: the call page of this room's call room, inside the watch page.
  $("w-call").addEventListener("click", () => {
    const box = $("w-call-box");
    if (!box.hidden) { box.replaceChildren(); show(box, false); $("w-call").textContent = "Join call"; return; }
    if (!callInfo) return;
    const f = document.createElement("iframe");
    f.allow = "camera; microphone; autoplay";
    f.src = `/?room=${encodeURIComponent(callInfo.room)}&token=${encodeURIComponent(callInfo.token)}&name=${encodeURIComponent(me ? me.name : "")}&autojoin=1`;
    box.replaceChildren(f);
    show(box, true);
    $("w-call").textContent = "Leave call";
  });

  setInterval(() => {
    if (!state) return;
    if (document.activeElement !== $("w-seek")) $("w-seek").value = String(video.currentTime);
    $("w-time").textContent = `${fmt(video.currentTime)} / ${fmt(state.duration || video.duration)}`;
  }, 500);

  // Test hooks (tests/e2e/watch.mjs).
  window.gaxWatch = {
    video,
    serverNow,
    get state() { return state; },
    get role() { return role; },
    get clock() { return { offset: clock.offset, rtt: clock.rtt, synced: clock.synced, samples: clock.samples.length }; },
    get joined() { return !!welcome; },
    get welcomes() { return welcomes; },
    // Drops the connection as a network failure would (the page reconnects by itself).
    dropConnection() { if (ws) ws.close(); },
    // One instant: where the player is and the server time it is there.
    sample() { return { currentTime: video.currentTime, serverNow: serverNow(), paused: video.paused, rate: video.playbackRate, readyState: video.readyState }; },
    targetAt,
    control,
    decideDrift,
    reportBuffering,
    get waitingForOthers() { return !!waitingForOthers; },
  };

  // ------------------------------------------------------------------------------------------
  // Start

  if (roomId === "new") {
    show($("w-create"), true);
    $("w-create").addEventListener("submit", createRoom);
    return;
  }
  show($("w-room"), true);
  $("w-name").value = params.get("name") || "";
  $("w-join").addEventListener("submit", (ev) => { ev.preventDefault(); connect(); });
  driftTimer = setInterval(checkDrift, DRIFT_EVERY_MS);
  setInterval(() => { if (ws && ws.readyState === WebSocket.OPEN && !syncPending) send({ type: "time", t0: localNow() }); }, RESYNC_MS);
  if (params.get("autojoin") === "1") connect();
  window.addEventListener("pagehide", () => { closedForGood = true; if (ws) ws.close(); });
})();
