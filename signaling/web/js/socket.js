// The WebSocket to /ws every page speaks JSON over (docs/protocol.md), with the reconnect policy
// in one place: after a close the page's `retry(code)` decides, and the next attempt waits
// `first * 2^n` ms (at most `max`), until the page calls `welcomed()` again. Optionally a
// keepalive: a ping every `every` ms once welcomed, and a drop (then a reconnect) after
// `silence` ms without any message. No DOM and no page state in here.

export class Socket {
  // hello():         the first message on every connection (may be async; null or a throw closes)
  // onMessage(msg):  each message, parsed, in order
  // onConnecting():  a connection attempt starts (the first one and every reconnect)
  // onClose({code, reason, retryIn}): after a close (retryIn: ms until the next attempt, or null)
  constructor({ hello, onMessage, onConnecting = () => {}, onClose = () => {}, retry = () => false, backoff = {}, keepalive = null }) {
    Object.assign(this, { hello, onMessage, onConnecting, onClose, retry });
    this.first = backoff.first || 1000;
    this.max = backoff.max || 15_000;
    this.attempt = 0;
    this.ws = null;
    this.timer = null;
    this.isWelcomed = false;
    this.lastSeen = 0;
    if (keepalive) {
      setInterval(() => {
        if (!this.ws || !this.isWelcomed) return;
        if (Date.now() - this.lastSeen > keepalive.silence) this.drop();
        else this.send(keepalive.ping);
      }, keepalive.every);
    }
  }

  get connecting() { return !!this.ws; }
  get open() { return !!this.ws && this.ws.readyState === WebSocket.OPEN; }

  // Connects unless a connection is open or being opened.
  start() {
    clearTimeout(this.timer);
    if (this.ws) return;
    const ws = new WebSocket(`${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/ws`);
    this.ws = ws;
    this.isWelcomed = false;
    this.onConnecting();
    ws.onopen = async () => {
      let msg = null;
      try { msg = await this.hello(); } catch (e) { msg = null; }
      if (this.ws !== ws || ws.readyState !== WebSocket.OPEN) return;
      if (!msg) { ws.close(); return; }
      ws.send(JSON.stringify(msg));
    };
    ws.onmessage = (ev) => {
      if (this.ws !== ws) return;
      this.lastSeen = Date.now();
      let msg;
      try { msg = JSON.parse(ev.data); } catch (e) { return; }
      this.onMessage(msg);
    };
    ws.onclose = (ev) => this.closed(ws, ev.code, ev.reason);
  }

  // The server accepted the hello: the next drop starts the backoff from `first` again.
  welcomed() {
    this.isWelcomed = true;
    this.attempt = 0;
  }

  // True when sent (the socket is open).
  send(msg) {
    if (!this.open) return false;
    this.ws.send(JSON.stringify(msg));
    return true;
  }

  // The network is back (the browser says so): connect now, from the shortest wait.
  retryNow() {
    if (this.ws) return;
    this.attempt = 0;
    this.start();
  }

  // Closes as a network failure would: onClose runs and, if `retry` allows, a reconnect follows.
  drop(code = 4000, reason = "dropped by the client") {
    const ws = this.ws;
    if (!ws) return;
    this.closed(ws, code, reason);
    try { ws.close(); } catch (e) { /* already closed */ }
  }

  // Closes for good: no onClose, no reconnect.
  stop(code = 1000) {
    clearTimeout(this.timer);
    this.timer = null;
    const ws = this.ws;
    this.ws = null;
    this.isWelcomed = false;
    if (!ws) return;
    ws.onclose = ws.onmessage = ws.onopen = null;
    try { ws.close(code); } catch (e) { /* already closed */ }
  }

  closed(ws, code, reason) {
    if (this.ws !== ws) return;
    ws.onclose = ws.onmessage = ws.onopen = null;
    this.ws = null;
    this.isWelcomed = false;
    let retryIn = null;
    if (this.retry(code)) {
      retryIn = Math.min(this.max, this.first * 2 ** this.attempt);
      this.attempt = Math.min(this.attempt + 1, 30);
      this.timer = setTimeout(() => { this.timer = null; this.start(); }, retryIn);
    }
    this.onClose({ code, reason, retryIn });
  }
}
