// GAX web client, call page: join a room, publish camera + microphone, show everyone else.
// Speaks the /ws protocol v1 (docs/protocol.md). No external dependencies.
//
// This file is the call's flow (join, the signaling messages in order, leave); its parts live
// under /js/call/ (state.js: what the page holds; publish.js: what we send; tiles.js: one tile
// per participant; stats.js: what we receive; status.js: the status lines), and /js/ holds
// what every page shares (the socket, REST, DOM helpers).

import { $ } from "./js/dom.js";
import { tokenGrants } from "./js/rest.js";
import { Socket } from "./js/socket.js";
import { params, send, state } from "./js/call/state.js";
import { capture, publish } from "./js/call/publish.js";
import { removePeer, renderLabel, tileFor } from "./js/call/tiles.js";
import { refreshOverlays, remoteStats } from "./js/call/stats.js";
import { setStatus, showError } from "./js/call/status.js";

async function getToken(room, name) {
  const given = $("token").value.trim() || params.get("token");
  if (given) return given;
  const r = await fetch(`/api/dev/token?room=${encodeURIComponent(room)}&name=${encodeURIComponent(name || "guest")}`);
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.message || "a token is required: run `gax token --room ROOM --identity NAME`");
  return body.token;
}

async function join(room, name) {
  showError("");
  setStatus("joining…", "busy");
  $("join").disabled = true;
  try {
    const token = await getToken(room, name);
    state.local = null;
    // A token without the publish grant joins to watch only: no camera or microphone prompt.
    state.canPublish = tokenGrants(token).can_publish !== false;
    if (params.get("media") !== "none" && state.canPublish) {
      try {
        state.local = await capture();
      } catch (e) {
        showError("camera/microphone unavailable (" + e.name + "): joining to watch only");
      }
    }
    const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle", rtcpMuxPolicy: "require" });
    state.pc = pc;
    if (state.local) {
      publish(pc, state.local);
    } else {
      // Watching only: one receive-only m-line so the offer sets up the transport; the
      // server's offers add everyone's tracks.
      pc.addTransceiver("audio", { direction: "recvonly" });
    }
    pc.ontrack = onTrack;
    pc.onconnectionstatechange = () => {
      if (pc.connectionState === "connected") setStatus("in room " + state.room, "connected");
      if (pc.connectionState === "failed") setStatus("media connection failed", "error");
    };
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);

    // No reconnect yet: a dropped signaling connection ends the call (issue 16 resumes it).
    const socket = new Socket({
      hello: () => ({ type: "join", version: 1, token, room, name: name || undefined, sdp: pc.localDescription.sdp }),
      // Handle messages strictly in order: SDP steps must not interleave.
      onMessage: (msg) => {
        state.queue = state.queue.then(() => onMessage(msg)).catch((e) => {
          console.error(e);
          showError(String(e));
        });
      },
      onClose: ({ code }) => {
        setStatus(`disconnected (${code})`, code === 1000 ? "idle" : "error");
        teardown();
      },
    });
    state.socket = socket;
    socket.start();
  } catch (e) {
    showError(e.message || String(e));
    setStatus("not connected", "error");
    teardown();
  }
}

async function onMessage(msg) {
  const pc = state.pc;
  switch (msg.type) {
    case "joined": {
      state.me = msg.participant;
      state.room = msg.room;
      await pc.setRemoteDescription({ type: "answer", sdp: msg.sdp });
      const me = tileFor(msg.participant.id, msg.participant.name + " (you)", true);
      if (state.local) me.video.srcObject = state.local;
      for (const p of msg.participants) Object.assign(tileFor(p.id, p.name).info, p);
      for (const p of state.peers.values()) renderLabel(p);
      $("join-form").hidden = true;
      $("controls").hidden = false;
      // `?max_bitrate=N` caps what this page receives (bits/s), e.g. to try a slow link.
      if (params.get("max_bitrate")) send({ type: "max_bitrate", bps: Number(params.get("max_bitrate")) });
      setStatus("in room " + msg.room + " (connecting media)", "busy");
      break;
    }
    case "offer": {
      // Removed first: a stopped m-line's mid may be recycled by a track added in this offer.
      for (const mid of msg.removed) state.mids.delete(mid);
      for (const t of msg.tracks) state.mids.set(t.mid, { participant: t.participant, kind: t.kind });
      await pc.setRemoteDescription({ type: "offer", sdp: msg.sdp });
      const answer = await pc.createAnswer();
      await pc.setLocalDescription(answer);
      send({ type: "answer", sdp: pc.localDescription.sdp });
      break;
    }
    case "participant_joined":
      Object.assign(tileFor(msg.participant.id, msg.participant.name).info, msg.participant);
      break;
    case "participant_left":
      removePeer(msg.participant);
      break;
    case "mute": {
      const p = state.peers.get(msg.participant);
      if (p) {
        p.info[msg.kind + "_muted"] = msg.muted;
        renderLabel(p);
      }
      break;
    }
    case "layer": {
      for (const p of state.peers.values()) {
        if (p.videoMid === msg.mid) p.layer = msg;
      }
      break;
    }
    case "active_speaker":
      for (const [id, p] of state.peers) p.tile.classList.toggle("speaking", id === msg.participant);
      state.speaker = msg.participant;
      state.speakers.push(msg.participant);
      break;
    case "media_connected":
      state.connected = true;
      setStatus("in room " + state.room, "connected");
      break;
    case "error":
      showError(`${msg.code}: ${msg.message}`);
      break;
    case "track_published":
      if (state.me && msg.track.participant === state.me.id) state.published.push(msg.track);
      break;
    default:
      break; // track_unpublished, pong: nothing to draw
  }
}

function onTrack(ev) {
  const mid = ev.transceiver && ev.transceiver.mid;
  const info = state.mids.get(mid);
  if (!info) return;
  const peer = tileFor(info.participant);
  if (ev.track.kind === "video") {
    peer.videoMid = mid;
    peer.reportedWidth = 0;
    peer.reportSize();
  }
  peer.stream.addTrack(ev.track);
  ev.track.onended = () => peer.stream.removeTrack(ev.track);
  // Re-attach so the elements pick up the new track.
  peer.video.srcObject = peer.stream;
  peer.audio.srcObject = peer.stream;
  peer.video.play().catch(() => {});
  peer.audio.play().catch(() => {});
}

function toggle(kind, button, onText, offText) {
  if (!state.local) return;
  const tracks = kind === "audio" ? state.local.getAudioTracks() : state.local.getVideoTracks();
  const muted = tracks.length && tracks[0].enabled;
  for (const t of tracks) t.enabled = !muted;
  button.textContent = muted ? offText : onText;
  button.classList.toggle("off", muted);
  send({ type: "mute", kind, muted: !!muted });
  const me = state.me && state.peers.get(state.me.id);
  if (me) {
    me.info[kind + "_muted"] = !!muted;
    renderLabel(me);
  }
}

function teardown() {
  if (state.socket) state.socket.stop(1000);
  if (state.pc) state.pc.close();
  if (state.local) for (const t of state.local.getTracks()) t.stop();
  for (const id of [...state.peers.keys()]) removePeer(id);
  Object.assign(state, { socket: null, pc: null, local: null, me: null, connected: false, published: [] });
  state.mids.clear();
  $("join-form").hidden = false;
  $("controls").hidden = true;
  $("join").disabled = false;
}

function leave() {
  send({ type: "leave" });
  teardown();
  setStatus("left", "idle");
}

setInterval(refreshOverlays, 1000);

window.gax = { state, remoteStats, leave, send };

$("join-form").addEventListener("submit", (e) => {
  e.preventDefault();
  join($("room").value.trim(), $("name").value.trim());
});
$("leave").addEventListener("click", leave);
$("mute-audio").addEventListener("click", (e) => toggle("audio", e.target, "Mute mic", "Unmute mic"));
$("mute-video").addEventListener("click", (e) => toggle("video", e.target, "Stop camera", "Start camera"));

if (params.get("room")) $("room").value = params.get("room");
if (params.get("name")) $("name").value = params.get("name");
if (params.get("token")) $("token").value = params.get("token");
if (params.get("autojoin") === "1" && $("room").value) join($("room").value.trim(), $("name").value.trim());
