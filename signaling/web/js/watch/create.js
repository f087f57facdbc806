// `/watch/new`: create a room from a URL or an uploaded file (its length read from the video's
// metadata), then open it.

import { $ } from "../dom.js";
import { api, params, token } from "./access.js";
import { setStatus, showError } from "./status.js";

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

export async function createRoom(ev) {
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
