// GAX web client: join a room, publish camera + microphone, show everyone else.
// Speaks the /ws protocol v1 (docs/protocol.md). No external dependencies.
"use strict";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);

// Video is published as three simulcast layers (q = 1/4, h = 1/2, f = full 1280x720) so each
// subscriber gets the one that fits its tile and its bandwidth. `?simulcast=0` sends one
// 640x360 stream; H.264 (`?codec=h264`) is sent as one stream too (layer switching needs VP8).
const SIMULCAST = [
  { rid: "q", scaleResolutionDownBy: 4, maxBitrate: 150_000 },
  { rid: "h", scaleResolutionDownBy: 2, maxBitrate: 500_000 },
  { rid: "f", scaleResolutionDownBy: 1, maxBitrate: 1_500_000 },
];
const simulcast = params.get("simulcast") !== "0" && !params.get("codec");

const state = {
  ws: null,
  pc: null,
  local: null,
  me: null,
  room: null,
  // participant id -> { info, tile, stream }
  peers: new Map(),
  // mid in our session -> { participant, kind }
  mids: new Map(),
  // our own tracks the server routes (from track_published)
  published: [],
  // active speaker: current and every change seen (for tests and the curious)
  speaker: null,
  speakers: [],
  queue: Promise.resolve(),
  connected: false,
};

function setStatus(text, kind) {
  $("status").textContent = text;
  $("status").dataset.state = kind || "idle";
}

function showError(text) {
  $("error").textContent = text;
  $("error").hidden = !text;
}

function tileFor(id, name, local) {
  let peer = state.peers.get(id);
  if (!peer) {
    const tile = document.createElement("div");
    tile.className = "tile" + (local ? " local" : "");
    tile.dataset.participant = id;
    const video = document.createElement("video");
    video.autoplay = true;
    video.playsInline = true;
    video.muted = true; // sound plays through the <audio> element
    const audio = document.createElement("audio");
    audio.autoplay = true;
    const label = document.createElement("span");
    label.className = "label";
    const overlay = document.createElement("span");
    overlay.className = "overlay";
    tile.append(video, audio, label, overlay);
    $("grid").append(tile);
    peer = {
      tile, video, audio, label, overlay,
      stream: new MediaStream(),
      info: { id, name, audio_muted: false, video_muted: false },
      videoMid: null, // mid of this participant's video in our session
      layer: null, // last `layer` message for it
      reportedWidth: 0,
    };
    if (!local) watchSize(peer);
    if (!local) {
      video.srcObject = peer.stream;
      audio.srcObject = peer.stream;
    }
    state.peers.set(id, peer);
  }
  if (name) peer.info.name = name;
  renderLabel(peer);
  return peer;
}

function renderLabel(peer) {
  const i = peer.info;
  peer.label.textContent = i.name || i.id;
  const marks = [];
  if (i.audio_muted) marks.push("mic off");
  if (i.video_muted) marks.push("cam off");
  if (marks.length) {
    const m = document.createElement("span");
    m.className = "muted";
    m.textContent = "(" + marks.join(", ") + ")";
    peer.label.append(m);
  }
}

// Tell the server how wide each remote video is rendered, so it sends the layer that fits.
function watchSize(peer) {
  let timer = null;
  const report = () => {
    timer = null;
    if (!peer.videoMid) return;
    const width = Math.round(peer.video.clientWidth * (window.devicePixelRatio || 1));
    const height = Math.round(peer.video.clientHeight * (window.devicePixelRatio || 1));
    if (!width || Math.abs(width - peer.reportedWidth) < 16) return;
    peer.reportedWidth = width;
    send({ type: "video_size", mid: peer.videoMid, width, height });
  };
  peer.reportSize = () => { if (!timer) timer = setTimeout(report, 150); };
  new ResizeObserver(peer.reportSize).observe(peer.video);
}

function removePeer(id) {
  const peer = state.peers.get(id);
  if (!peer) return;
  peer.tile.remove();
  state.peers.delete(id);
  for (const [mid, t] of state.mids) if (t.participant === id) state.mids.delete(mid);
}

function send(msg) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify(msg));
}

// The grants inside a JWT (its payload is base64url JSON); the server checks them anyway.
function tokenGrants(token) {
  try {
    const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(payload));
  } catch (e) {
    return {};
  }
}

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
        state.local = await navigator.mediaDevices.getUserMedia({
          audio: true,
          video: simulcast
            ? { width: { ideal: 1280 }, height: { ideal: 720 } }
            : { width: { ideal: 640 }, height: { ideal: 360 } },
        });
      } catch (e) {
        showError("camera/microphone unavailable (" + e.name + "): joining to watch only");
      }
    }
    const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle", rtcpMuxPolicy: "require" });
    state.pc = pc;
    if (state.local) {
      for (const track of state.local.getTracks()) {
        const init = { direction: "sendonly", streams: [state.local] };
        if (track.kind === "video" && simulcast) init.sendEncodings = SIMULCAST;
        const tr = pc.addTransceiver(track, init);
        if (track.kind === "video" && params.get("codec")) preferCodec(tr, params.get("codec"));
        if (track.kind === "video" && simulcast) keepResolution(tr.sender);
      }
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

    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${proto}//${location.host}/ws`);
    state.ws = ws;
    ws.onopen = () => send({ type: "join", version: 1, token, room, name: name || undefined, sdp: pc.localDescription.sdp });
    ws.onmessage = (ev) => {
      // Handle messages strictly in order: SDP steps must not interleave.
      state.queue = state.queue.then(() => onMessage(JSON.parse(ev.data))).catch((e) => {
        console.error(e);
        showError(String(e));
      });
    };
    ws.onclose = (ev) => {
      if (state.ws === ws) {
        setStatus(`disconnected (${ev.code})`, ev.code === 1000 ? "idle" : "error");
        teardown();
      }
    };
  } catch (e) {
    showError(e.message || String(e));
    setStatus("not connected", "error");
    teardown();
  }
}

// `?codec=h264` (or vp8) publishes video with only that codec, e.g. to try H.264-only browsers.
function preferCodec(transceiver, name) {
  const wanted = "video/" + name.toLowerCase();
  const caps = RTCRtpReceiver.getCapabilities("video");
  if (!caps || !transceiver.setCodecPreferences) return;
  const codecs = caps.codecs.filter((c) => c.mimeType.toLowerCase() === wanted);
  if (!codecs.length) {
    showError(`this browser cannot send ${name}`);
    return;
  }
  const extras = caps.codecs.filter((c) => /rtx|red|ulpfec/i.test(c.mimeType));
  transceiver.setCodecPreferences([...codecs, ...extras]);
}

// Under CPU load, lower the frame rate rather than the layers' resolutions: the server picks a
// layer by its size, so each layer should keep the size it announces.
function keepResolution(sender) {
  const p = sender.getParameters();
  p.degradationPreference = "maintain-resolution";
  sender.setParameters(p).catch(() => {});
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
  if (state.pc) state.pc.close();
  if (state.local) for (const t of state.local.getTracks()) t.stop();
  for (const id of [...state.peers.keys()]) removePeer(id);
  Object.assign(state, { ws: null, pc: null, local: null, me: null, connected: false, published: [] });
  state.mids.clear();
  $("join-form").hidden = false;
  $("controls").hidden = true;
  $("join").disabled = false;
}

function leave() {
  send({ type: "leave" });
  const ws = state.ws;
  state.ws = null;
  if (ws) ws.close(1000);
  teardown();
  setStatus("left", "idle");
}

// For tests and the curious: per remote participant, what we decode.
async function remoteStats() {
  const out = {};
  for (const [id, p] of state.peers) {
    if (state.me && id === state.me.id) continue;
    out[id] = { name: p.info.name, video: null, audio: null, layer: p.layer };
  }
  if (!state.pc) return out;
  const report = await state.pc.getStats();
  const codecs = new Map();
  report.forEach((s) => {
    if (s.type === "codec") codecs.set(s.id, s.mimeType);
  });
  report.forEach((s) => {
    if (s.type !== "inbound-rtp") return;
    const t = state.mids.get(s.mid);
    if (!t || !out[t.participant]) return;
    if (s.kind === "video") {
      out[t.participant].video = {
        framesDecoded: s.framesDecoded || 0,
        frameWidth: s.frameWidth || 0,
        frameHeight: s.frameHeight || 0,
        bytesReceived: s.bytesReceived || 0,
        codec: codecs.get(s.codecId) || null,
      };
    } else {
      out[t.participant].audio = {
        totalSamplesReceived: s.totalSamplesReceived || 0,
        bytesReceived: s.bytesReceived || 0,
      };
    }
  });
  return out;
}

// The overlay on each remote tile: received resolution, layer and the reason of the last switch.
async function refreshOverlays() {
  const stats = await remoteStats().catch(() => ({}));
  for (const [id, s] of Object.entries(stats)) {
    const p = state.peers.get(id);
    if (!p) continue;
    const v = s.video;
    const res = v && v.frameWidth ? `${v.frameWidth}×${v.frameHeight}` : "no video";
    const layer = p.layer ? ` · ${p.layer.layer} (${p.layer.reason.replace("_", " ")})` : "";
    p.overlay.textContent = res + layer;
  }
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
