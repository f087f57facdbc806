// Search (GET /api/search): people, chats, messages and files, newest query wins, results with
// their highlights; tolerates a server without /api/search.

import { $, h, sync } from "../dom.js";
import { api } from "../tokens.js";
import { ui } from "./notice.js";
import { chatTitle, nameOf } from "./profiles.js";
import { S, me } from "./state.js";
import { openChat, openDirect } from "./chats.js";
import { isFriend, requestFriend } from "./friends.js";

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

export async function search(q) {
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

// Signed out: no results, an empty box.
export function clearSearch() {
  lastHits = [];
  $("search-q").value = "";
  $("search-results").hidden = true;
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
          isFriend(x.user) ? null : h("button", { type: "button", class: "secondary", onclick: ui(() => requestFriend(x.user)) }, "Add friend")));
      }
      return h("li", { class: "item" }, body);
    });
}
