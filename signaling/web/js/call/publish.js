// What this page sends: camera and microphone, video as three simulcast layers (VP8), or one
// stream with `?simulcast=0` or a forced codec (`?codec=h264`: layer switching needs VP8).

import { params } from "./state.js";
import { showError } from "./status.js";

// Video is published as three simulcast layers (q = 1/4, h = 1/2, f = full 1280x720) so each
// subscriber gets the one that fits its tile and its bandwidth. `?simulcast=0` sends one
// 640x360 stream; H.264 (`?codec=h264`) is sent as one stream too (layer switching needs VP8).
const SIMULCAST = [
  { rid: "q", scaleResolutionDownBy: 4, maxBitrate: 150_000 },
  { rid: "h", scaleResolutionDownBy: 2, maxBitrate: 500_000 },
  { rid: "f", scaleResolutionDownBy: 1, maxBitrate: 1_500_000 },
];
const simulcast = params.get("simulcast") !== "0" && !params.get("codec");

export function capture() {
  return navigator.mediaDevices.getUserMedia({
    audio: true,
    video: simulcast
      ? { width: { ideal: 1280 }, height: { ideal: 720 } }
      : { width: { ideal: 640 }, height: { ideal: 360 } },
  });
}

// Adds our tracks to the peer connection, each as a send-only transceiver.
export function publish(pc, local) {
  for (const track of local.getTracks()) {
    const init = { direction: "sendonly", streams: [local] };
    if (track.kind === "video" && simulcast) init.sendEncodings = SIMULCAST;
    const tr = pc.addTransceiver(track, init);
    if (track.kind === "video" && params.get("codec")) preferCodec(tr, params.get("codec"));
    if (track.kind === "video" && simulcast) keepResolution(tr.sender);
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
