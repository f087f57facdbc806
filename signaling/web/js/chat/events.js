// Live events of the messenger session (docs/protocol.md, "GAX messenger session") applied to
// the page's state: one function per event type is too fine here, so one switch, each case a
// few lines that call the use cases in chats.js and friends.js.

import { $ } from "../dom.js";
import { updateUser } from "../tokens.js";
import { socket, sendWatch } from "./link.js";
import { report, setConn, showError } from "./notice.js";
import { S, me, render } from "./state.js";
import {
  addMessage, dropChat, loadMembers, loadNewest, maybeMarkRead, onRead, refetchChatsSoon, refused, sendPending,
  setChats, setTyping, settle,
} from "./chats.js";
import { loadFriends } from "./friends.js";

export function onEvent(msg) {
  try { apply(msg); } catch (e) { report(e); }
}

function apply(msg) {
  switch (msg.type) {
    case "welcome":
      S.connected = true;
      socket.welcomed();
      S.user = msg.user;
      S.profiles.set(msg.user.id, msg.user);
      updateUser(msg.user);
      setConn("online", "connected");
      $("m-conn").title = "";
      setChats(msg.chats || []);
      S.watched = "";
      sendWatch();
      for (const p of S.pending.values()) if (!p.error) sendPending(p);
      maybeMarkRead();
      break;
    case "message":
    case "ack":
      if (msg.type === "ack") settle(msg.client_key, msg.message);
      if (msg.message) addMessage(msg.message);
      break;
    case "message_edited": {
      const m = msg.message;
      const held = S.msgs.get(m.chat);
      if (held && held.has(m.seq)) held.set(m.seq, m);
      break;
    }
    case "message_deleted": {
      const held = S.msgs.get(msg.chat);
      const m = held && held.get(msg.seq);
      if (m) held.set(msg.seq, { ...m, text: null, attachments: [], deleted_at: m.deleted_at || Date.now() });
      break;
    }
    case "chat_changed": {
      const id = typeof msg.chat === "object" && msg.chat ? msg.chat.id : msg.chat;
      const s = S.chats.get(id);
      if (s && typeof msg.title === "string") s.chat.title = msg.title;
      const ids = Array.isArray(msg.members) ? msg.members.map((m) => (typeof m === "object" ? m.user : m)) : null;
      if (ids && me() != null && !ids.includes(me())) dropChat(id); // we were removed
      else if (id === S.open) loadMembers(id).catch(() => {});
      refetchChatsSoon();
      break;
    }
    case "refetch":
      S.msgs.delete(msg.chat);
      S.more.delete(msg.chat);
      if (msg.chat === S.open) loadNewest(msg.chat).catch(report);
      refetchChatsSoon();
      break;
    case "synced":
      S.synced = true;
      maybeMarkRead();
      break;
    case "typing":
      if (msg.user !== me()) setTyping(msg.chat, msg.user, true);
      break;
    case "read":
      onRead(msg.chat, msg.user, msg.seq);
      break;
    case "friends_changed":
      loadFriends().catch(report);
      break;
    case "presence":
      if (msg.online) S.online.add(msg.user); else S.online.delete(msg.user);
      break;
    case "error":
      if (msg.client_key && S.pending.has(msg.client_key)) refused(msg.client_key, msg.code, msg.message);
      else showError(`${msg.code}: ${msg.message}`);
      if (msg.code === "not_member") refetchChatsSoon();
      break;
    default:
      break; // pong and anything newer
  }
  render();
}
