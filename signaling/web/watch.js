// GAX watch party page: `/watch/{room}?token=T&autojoin=1` plays the room's source in sync with
// everyone else; `/watch/new` creates a room. Protocol: docs/protocol.md ("GAX watch party").
//
// Sync model: the server holds {version, paused, position, rate, updated_at} on its clock. The
// page estimates its offset to that clock (NTP-style `time` pings, lowest round trip wins), so
// the target position at any instant is position + (serverNow - updated_at) * rate. Starts are
// scheduled by the server slightly in the future; the page waits for that instant. Drift is
// corrected only when it is sustained: small by nudging playbackRate, large by seeking.
//
// This file is the room session and the player following it; /js/watch/ holds the clock
// estimate (clock.js), the drift decision (drift.js), room creation (create.js), the page's
// token (access.js) and its status lines (status.js).

import { $, show } from "./js/dom.js";
import { Socket } from "./js/socket.js";
import { api, params, token } from "./js/watch/access.js";
import { clock, localNow, onTimeReply, serverNow } from "./js/watch/clock.js";
import { createRoom } from "./js/watch/create.js";
import { DRIFT_EVERY_MS, DRIFT_LARGE, DRIFT_SUSTAIN, decideDrift } from "./js/watch/drift.js";
import { overlay, setStatus, showError } from "./js/watch/status.js";

const roomId = decodeURIComponent(location.pathname.replace(/^\/watch\/?/, "").split("/")[0] || "new");
const SYNC_SAMPLES = 8;          // clock sync pings at start
const RESYNC_MS = 15_000;        // then one ping this often (the window keeps the best)
const SEEK_BACKOFF_MS = 2_000;   // at least this long between corrective seeks
const WAIT_FOR_OTHERS_MS = 5_000; // the host waits at most this long for buffering viewers
const REACTIONS = ["👍", "😂", "😮", "❤️", "👏"];

const video = $("w-video");
const fmt = (s) => { s = Math.max(0, Math.floor(s || 0)); return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`; };

// ------------------------------------------------------------------------------------------
// The room session

let welcome = null;
let welcomes = 0;          // how many times this page joined (reconnects included)
let state = null;          // the room's playback state
let role = "viewer";
let me = null;
let members = [];
const buffering = new Map(); // from -> name, for others that buffer
let startTimer = null;
let drift = [];             // recent drift samples (s), newest last
let lastSeekAt = 0;
let lastReloadAt = 0;
let seekingFor = false;     // a corrective or state seek is in flight
let localBuffering = false;
let waitingForOthers = null;
let syncPending = null;
let callInfo = null;

const send = (msg) => socket.send(msg);
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

// The room session on /ws; it reconnects with backoff unless the server refused us for good.
const NO_RETRY = [4401, 4403, 4404, 4426];
const socket = new Socket({
  hello: () => {
    const t = token();
    if (!t) { showError("this page needs a token: open a share link, or sign in to the messenger"); socket.stop(); return null; }
    const name = $("w-name").value.trim() || params.get("name") || undefined;
    return { type: "watch", version: 1, room: roomId, token: t, name };
  },
  onMessage,
  onConnecting: () => setStatus("connecting…"),
  onClose: ({ code }) => setStatus(`disconnected (${code})`, "error"),
  retry: (code) => !NO_RETRY.includes(code),
  backoff: { first: 500, max: 10_000 },
});

function connect() {
  if (!token()) { showError("this page needs a token: open a share link, or sign in to the messenger"); return; }
  socket.start();
}

function onMessage(m) {
  switch (m.type) {
    case "welcome": {
      welcome = m;
      welcomes += 1;
      socket.welcomed();
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
    case "time": {
      const best = onTimeReply(m.t0, m.server);
      if (best) $("w-sync").textContent = `clock ±${(best.rtt / 2).toFixed(1)} ms`;
      if (syncPending) syncPending();
      break;
    }
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
  dropConnection() { socket.drop(); },
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
} else {
  start();
}

// The room page: join by hand or `?autojoin=1`, follow the room until the page goes away.
function start() {
  show($("w-room"), true);
  $("w-name").value = params.get("name") || "";
  $("w-join").addEventListener("submit", (ev) => { ev.preventDefault(); connect(); });
  setInterval(checkDrift, DRIFT_EVERY_MS);
  setInterval(() => { if (socket.open && !syncPending) send({ type: "time", t0: localNow() }); }, RESYNC_MS);
  if (params.get("autojoin") === "1") connect();
  window.addEventListener("pagehide", () => socket.stop());
}
