// Attachments: upload with progress (XHR: fetch has no upload progress), then send a message
// that references the file ids. Shown inline through signed links (a <video> cannot send an
// Authorization header).

import { $, h } from "../dom.js";
import { ApiError } from "../rest.js";
import { api, current, freshToken, refreshTokens } from "../tokens.js";
import { S } from "./state.js";
import { sendText, uuid } from "./chats.js";

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
    .then((t) => attempt(t).catch((e) => (e.status === 401 && current() ? refreshTokens(t).then(attempt) : Promise.reject(e))))
    .then((f) => {
      u.done = true; u.loaded = u.total;
      S.files.set(f.id, { info: f });
      renderUploads();
      setTimeout(() => { S.uploads = S.uploads.filter((x) => x !== u); renderUploads(); }, 1500);
      return f;
    }, (e) => { u.error = e.message; renderUploads(); throw e; });
}

// Uploads every file, then sends one message with all of them and the composer text.
export async function sendFiles(files, text = "", chat = S.open) {
  if (chat == null) throw new Error("open a chat first");
  const uploaded = await Promise.all([...files].map((f) => uploadFile(f, chat)));
  return sendText(text, chat, uploaded.map((f) => f.id));
}

export function renderUploads() {
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
export function attachmentNode(id) {
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
