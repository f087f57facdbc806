// What the call page holds: the URL's options, the signaling socket, the peer connection, our
// camera and microphone, and everyone else in the room (their tiles and their tracks' mids).
// Exposed as `window.gax.state` for tests and the curious.

export const params = new URLSearchParams(location.search);

export const state = {
  socket: null, // the /ws signaling connection (../socket.js)
  pc: null,
  local: null,
  me: null,
  room: null,
  // participant id -> { info, tile, stream }
  peers: new Map(),
  // mid in our session -> { participant, kind }
  mids: new Map(),
  // our own tracks the server routes (from track_published)
  published: [],
  // active speaker: current and every change seen (for tests and the curious)
  speaker: null,
  speakers: [],
  queue: Promise.resolve(),
  connected: false,
};

export function send(msg) {
  if (state.socket) state.socket.send(msg);
}
