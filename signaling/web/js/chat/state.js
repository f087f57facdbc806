// What the messenger page holds (chats, messages, pending sends, uploads, friends, presence,
// typing) and the render scheduler: modules change `S`, then call `render()`; many changes in
// one task give one render. The view registers itself with `setView`.

import { store } from "../store.js";

export const PAGE = 50; // messages per history page

export const S = {
  user: null,
  chats: new Map(), // chat id -> summary {chat, role, last_read_seq, unread, peer}
  open: null, // open chat id
  msgs: new Map(), // chat id -> Map(seq -> message), only for chats whose history is loaded
  more: new Map(), // chat id -> older history exists
  loadingOlder: null, // promise of the page being loaded
  members: new Map(), // chat id -> Map(user id -> last_read_seq)
  pending: new Map(), // client_key -> {client_key, chat, text, attachments, created_at, error?}
  uploads: [], // uploads in progress: {key, name, loaded, total, chat, done, error, events}
  files: new Map(), // file id -> {info, url, expires_at}
  waiters: new Map(), // client_key -> {resolve, reject} (gaxChat.send)
  profiles: new Map(), // user id -> profile
  asked: new Set(), // user ids whose profile is being fetched
  friends: { friends: [], incoming: [], outgoing: [] },
  online: new Set(),
  typing: new Map(), // chat id -> Map(user id -> timer)
  editing: null, // {chat, seq, draft}
  connected: false, synced: false,
  watched: "",
  lastTypingSent: 0,
  stick: false, keepOffset: false,
};

// What a signed-out page holds (everything about the previous account forgotten).
export function resetState() {
  Object.assign(S, {
    user: null, chats: new Map(), open: null, msgs: new Map(), more: new Map(), members: new Map(),
    pending: new Map(), waiters: new Map(), profiles: new Map(), online: new Set(), typing: new Map(),
    friends: { friends: [], incoming: [], outgoing: [] }, connected: false, synced: false, editing: null,
  });
}

export const me = () => (S.user ? S.user.id : null);
const pendingKey = () => "gax.pending." + me();
export const savePending = () => store.set(pendingKey(), [...S.pending.values()]);
export const loadPending = () => new Map((store.get(pendingKey()) || []).map((p) => [p.client_key, p]));
export const maxSeq = (held) => { let m = 0; for (const s of held.keys()) if (s > m) m = s; return m; };
export const minSeq = (held) => { let m = Infinity; for (const s of held.keys()) if (s < m) m = s; return m; };

let view = () => {};
let renderQueued = false;
export const setView = (fn) => { view = fn; };
// Draws now (when the caller measures the result, e.g. scroll positions).
export const renderNow = () => view();
// Draws once the current task is done (coalesced: many events, one render).
export function render() {
  if (renderQueued) return;
  renderQueued = true;
  queueMicrotask(() => { renderQueued = false; view(); });
}
