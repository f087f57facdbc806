// Signing in, signing out (here, in another tab, or because the session ended) and starting the
// signed-in page: its chats, friends, the live session and the deep link `#chat=ID`.

import { $ } from "../dom.js";
import { request } from "../rest.js";
import { current, fromTokens, saveAuth, scheduleRefresh } from "../tokens.js";
import { connect, socket } from "./link.js";
import { report, showError } from "./notice.js";
import { S, loadPending, render, resetState } from "./state.js";
import { openChat, refetchChats } from "./chats.js";
import { loadFriends } from "./friends.js";
import { clearSearch } from "./search.js";

export async function signIn(kind, username, password, displayName) {
  const body = { username: String(username).trim(), password };
  if (kind === "register" && displayName) body.display_name = displayName;
  const r = await request("POST", `/api/auth/${kind}`, body);
  saveAuth(fromTokens(r));
  start();
  return r.user;
}

export function signedOut(message) {
  saveAuth(null);
  socket.stop(1000);
  for (const w of S.waiters.values()) w.reject(new Error("signed out"));
  resetState();
  ["chat-list", "chat-log", "friend-list", "incoming-list", "outgoing-list", "search-list"].forEach((id) => $(id).replaceChildren());
  clearSearch();
  $("m-app").hidden = true;
  $("m-bar").hidden = true;
  $("auth-form").hidden = false;
  document.title = "GAX";
  if (message) showError(message);
}

export async function logout() {
  const a = current();
  const token = a && a.refresh_token;
  signedOut("");
  if (token) await request("POST", "/api/auth/logout", { refresh_token: token }).catch(() => {});
}

export function start() {
  S.user = current().user;
  if (S.user) S.profiles.set(S.user.id, S.user);
  S.pending = loadPending();
  $("auth-form").hidden = true;
  $("m-app").hidden = false;
  $("m-bar").hidden = false;
  showError("");
  scheduleRefresh();
  Promise.all([refetchChats(), loadFriends()]).then(() => {
    const m = /^#chat=(\d+)$/.exec(location.hash);
    if (m && S.open == null) return openChat(Number(m[1]));
  }).catch(report);
  connect();
  render();
}
