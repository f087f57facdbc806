// Use cases on contacts: the friend lists (incoming, outgoing, accepted), requests by username,
// accept, decline, remove. Presence follows the friend list (see `sendWatch`).

import { api } from "../tokens.js";
import { sendWatch } from "./link.js";
import { remember } from "./profiles.js";
import { S, me, render } from "./state.js";
import { userByName } from "./chats.js";

export async function loadFriends() {
  const f = await api("GET", "/api/friends");
  S.friends = f;
  remember([...f.friends, ...f.incoming, ...f.outgoing]);
  sendWatch();
  render();
  return f;
}

export async function addFriend(username) {
  const p = await userByName(username);
  if (p.id === me()) throw new Error("that is you");
  S.profiles.set(p.id, p);
  const r = await api("POST", `/api/friends/${p.id}/request`);
  await loadFriends();
  return r.outcome;
}

// A request to someone found by id (a search hit).
export async function requestFriend(id) {
  await api("POST", `/api/friends/${id}/request`);
  await loadFriends();
}

const friendAction = (path, method = "POST") => async (id) => { await api(method, path(id)); await loadFriends(); };
export const acceptFriend = friendAction((id) => `/api/friends/${id}/accept`);
export const declineFriend = friendAction((id) => `/api/friends/${id}/decline`);
export const removeFriend = friendAction((id) => `/api/friends/${id}`, "DELETE"); // also cancels a request
export const isFriend = (id) => S.friends.friends.some((f) => f.id === id);
