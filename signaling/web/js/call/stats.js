// What we receive, per remote participant (from the peer connection's stats): decoded frames,
// resolution, codec, audio samples; and the overlay on each remote tile drawn from it.

import { state } from "./state.js";

// For tests and the curious: per remote participant, what we decode.
export async function remoteStats() {
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
export async function refreshOverlays() {
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
