// Other people as the messenger shows them: profiles fetched once on first sight, display
// names, and chat titles (a direct chat is titled by its peer).

import { api, current } from "../tokens.js";
import { S, render } from "./state.js";

export function profile(id) {
  const p = S.profiles.get(id);
  if (!p && id != null && !S.asked.has(id) && current()) {
    S.asked.add(id);
    api("GET", `/api/users/${id}`).then((pr) => { S.profiles.set(id, pr); render(); })
      .catch(() => {}).finally(() => S.asked.delete(id));
  }
  return p;
}
export const nameOf = (id) => { const p = profile(id); return p ? p.display_name || p.username : `user ${id}`; };
export const remember = (list) => { for (const p of list) S.profiles.set(p.id, p); };
export const chatTitle = (s) => (s.chat.kind === "group" ? s.chat.title || "Group" : s.peer != null ? nameOf(s.peer) : "Direct chat");
