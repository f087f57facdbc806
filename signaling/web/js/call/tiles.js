// One tile per participant: video, audio, name with mute marks, and the overlay of what we
// receive; each remote tile reports its rendered size so the server sends the layer that fits.

import { $ } from "../dom.js";
import { send, state } from "./state.js";

export function tileFor(id, name, local) {
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

export function renderLabel(peer) {
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

export function removePeer(id) {
  const peer = state.peers.get(id);
  if (!peer) return;
  peer.tile.remove();
  state.peers.delete(id);
  for (const [mid, t] of state.mids) if (t.participant === id) state.mids.delete(mid);
}

