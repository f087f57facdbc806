// The messenger session on /ws ("GAX messenger session" in docs/protocol.md): the hello with
// the resume points of every loaded chat, reconnects with backoff while signed in, a keepalive,
// and `wsSend` (only once the server welcomed us). Events go to the handler given to `initLink`.

import { Socket } from "../socket.js";
import { current, freshToken, onNewToken, refreshTokens } from "../tokens.js";
import { S, maxSeq, render } from "./state.js";
import { $ } from "../dom.js";
import { setConn } from "./notice.js";

let helloToken = null; // the token the current connection presented
export let socket = null;

export function initLink(onEvent) {
  socket = new Socket({
    hello: async () => {
      const token = await freshToken();
      const resume = {};
      for (const [id, held] of S.msgs) resume[String(id)] = maxSeq(held);
      helloToken = token;
      return { type: "hello", version: 1, token, resume };
    },
    onMessage: onEvent,
    onConnecting: () => setConn("connecting…", "busy"),
    retry: () => !!current(),
    backoff: { first: 1000, max: 15_000 },
    keepalive: { every: 25_000, silence: 60_000, ping: { type: "ping" } },
    onClose: ({ code, reason, retryIn }) => {
      S.connected = S.synced = false;
      if (retryIn == null) return;
      if (code === 4401) refreshTokens(helloToken).catch(() => {}); // only if nobody refreshed since
      setConn(`offline, retrying in ${retryIn / 1000} s`, "error");
      $("m-conn").title = reason ? `${code}: ${reason}` : `closed (${code})`;
      render();
    },
  });
  window.addEventListener("online", () => { if (current()) socket.retryNow(); });
  // The session lives as long as the token it presented: hand it each fresh one (the server
  // closes with 4401 token_expired otherwise, and the socket reconnects).
  onNewToken((token) => {
    if (S.connected && token !== helloToken && socket.send({ type: "auth", token })) helloToken = token;
  });
}

export function connect() {
  if (!current() || socket.connecting) return;
  socket.start();
}

// Sends once the session is welcomed; false otherwise (the caller keeps it for later).
export const wsSend = (msg) => S.connected && socket.send(msg);

// Presence: ask for the online state of friends and direct-chat peers (when the set changed).
export function sendWatch() {
  const ids = new Set(S.friends.friends.map((f) => f.id));
  for (const s of S.chats.values()) if (s.peer != null) ids.add(s.peer);
  const users = [...ids].sort((a, b) => a - b).slice(0, 500);
  const key = users.join(",");
  if (key === S.watched) return;
  if (wsSend({ type: "watch", users })) S.watched = key;
}
