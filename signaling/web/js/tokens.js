// The signed-in account's tokens: kept in localStorage (and IndexedDB, see `shared`), refreshed
// shortly before they expire, one refresh at a time across every tab, and `api()`: an
// authenticated REST call that refreshes once on a 401. Pages that only need the current access
// token (the watch page) call `storedAccessToken()`.

import { ApiError, request } from "./rest.js";
import { store } from "./store.js";

export const AUTH_KEY = "gax.auth";
const SKEW_MS = 60_000; // refresh the access token this long before it expires

let auth = store.get(AUTH_KEY); // {access_token, refresh_token, expires_at, user}
let refreshing = null;
let refreshTimer = null;
// What the page does when the session ends (a refresh token was refused) and with a failed
// background refresh; set by `onSessionEvents`.
let ended = () => {};
let failed = (e) => console.warn(e);

export const current = () => auth;
export const onSessionEvents = ({ onEnded, onError }) => { ended = onEnded; failed = onError; };

export const storedAccessToken = () => {
  const a = store.get(AUTH_KEY);
  return a && a.access_token ? a.access_token : null;
};

// Who wants to know of a new access token (the messenger socket re-authenticates with it).
const tokenListeners = [];
export const onNewToken = (fn) => tokenListeners.push(fn);
const tellNewToken = () => { if (auth) for (const fn of tokenListeners) fn(auth.access_token); };

// Stores new tokens (null: signed out) here and for the other tabs.
export function saveAuth(a) {
  auth = a;
  store.set(AUTH_KEY, a);
  scheduleRefresh();
  tellNewToken();
  return shared.set(a).catch(() => {});
}

// The server knows the user better than the token response did (the welcome's profile).
export function updateUser(user) {
  if (auth) { auth.user = user; store.set(AUTH_KEY, auth); }
}

// The tokens as of the last refresh in any tab. localStorage reaches other tabs with a delay
// (Chromium), IndexedDB is transactional: what a tab wrote before releasing the refresh lock
// is what the next holder reads, so no tab ever presents a used refresh token.
const shared = (() => {
  let db = null;
  const open = () => db || (db = new Promise((resolve, reject) => {
    const r = indexedDB.open("gax", 1);
    r.onupgradeneeded = () => r.result.createObjectStore("kv");
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  }));
  const tx = (mode, fn) => open().then((d) => new Promise((resolve, reject) => {
    const t = d.transaction("kv", mode);
    const req = fn(t.objectStore("kv"));
    t.oncomplete = () => resolve(req.result);
    t.onerror = t.onabort = () => reject(t.error);
  }));
  return {
    get: () => tx("readonly", (kv) => kv.get(AUTH_KEY)),
    set: (v) => tx("readwrite", (kv) => (v ? kv.put(v, AUTH_KEY) : kv.delete(AUTH_KEY))),
  };
})();

// Take tokens another tab got for the same account, if they are newer.
function adopt(a) {
  if (a && auth && a.user && auth.user && a.user.id === auth.user.id && a.expires_at > auth.expires_at) {
    auth = a;
    store.set(AUTH_KEY, a);
    scheduleRefresh();
    tellNewToken();
  }
}

// The stored form of a token response (POST /api/auth/login, /register, /refresh).
export const fromTokens = (r) => ({
  access_token: r.access_token, refresh_token: r.refresh_token,
  expires_at: Date.now() + r.expires_in * 1000, user: r.user,
});

export function scheduleRefresh() {
  clearTimeout(refreshTimer);
  if (!auth) return;
  const wait = Math.max(5_000, auth.expires_at - SKEW_MS - Date.now());
  refreshTimer = setTimeout(() => refreshTokens(auth && auth.access_token).catch(failed), wait);
}

// One refresh at a time, across tabs too (a refresh token works once; a reused one ends the
// whole session): under a lock, adopt what another tab got if it is newer than `stale`.
export function refreshTokens(stale) {
  if (!refreshing) {
    const run = async () => {
      adopt(store.get(AUTH_KEY));
      adopt(await shared.get().catch(() => null));
      if (!auth) throw new ApiError(401, "signed_out", "signed out");
      if (auth.access_token !== stale && auth.expires_at - SKEW_MS > Date.now()) return;
      try {
        const next = fromTokens(await request("POST", "/api/auth/refresh", { refresh_token: auth.refresh_token }));
        await saveAuth(next); // stored before the lock is released
      } catch (e) {
        if (e.status === 401 || e.status === 400) {
          ended("Your session ended: sign in again.");
          throw new ApiError(401, "signed_out", "signed out");
        }
        throw e;
      }
    };
    const locked = navigator.locks ? navigator.locks.request("gax-auth", run) : run();
    refreshing = locked.finally(() => { refreshing = null; });
  }
  return refreshing.then(() => auth.access_token);
}

export async function freshToken() {
  if (!auth) throw new ApiError(401, "signed_out", "sign in first");
  if (auth.expires_at - SKEW_MS > Date.now()) return auth.access_token;
  return refreshTokens(auth.access_token);
}

// An authenticated call; a 401 refreshes the access token once and retries.
export async function api(method, path, body) {
  const token = await freshToken();
  try {
    return await request(method, path, body, token);
  } catch (e) {
    if (e.status !== 401 || !auth) throw e;
    return request(method, path, body, await refreshTokens(token));
  }
}

// Another tab signed in, refreshed or signed out: follow it (`onSignedOut("")` when it signed
// out, a reload when it signed in as someone else).
export function followOtherTabs(onSignedOut) {
  window.addEventListener("storage", (e) => {
    if (e.key !== AUTH_KEY) return;
    const next = store.get(AUTH_KEY);
    if (!next) { if (auth) onSignedOut(""); return; }
    if (auth && next.user && auth.user && next.user.id === auth.user.id) { adopt(next); return; }
    location.reload(); // a different account
  });
}
