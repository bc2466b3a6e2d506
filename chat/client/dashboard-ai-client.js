// dashboard-ai browser client: one ES module, no dependencies, no build step.
//
// It speaks only the documented /ws/chat protocol (docs/protocol.md) and does the parts every
// frontend otherwise gets wrong: reconnecting with `lastSeq` so the application sees each event
// exactly once, resending unanswered messages with their `clientMessageId` (the server answers a
// resend with the stored terminal frame instead of running the turn twice), and keeping the
// `baseHashes` of every file so that conflicting edits come back as `conflicts`.

/** Events of a turn or an undo: they advance the session's `seq`. */
const EVENT_TYPES = new Set([
  "stream",
  "tool_start",
  "tool_result",
  "file_changed",
  "status",
  "complete",
  "error",
  "undone",
]);

/**
 * Close codes after which reconnecting cannot help (docs/protocol.md, "Close codes"): a wrong
 * token. Any other close not asked for by `close()` is a drop, 1000 too (the server never sends
 * it; a socket closed from this side reports it).
 */
const FINAL_CLOSE_CODES = new Set([4401]);

/** Characters a subprotocol may hold (an RFC 7230 token); other tokens go in `?token=`. */
const SUBPROTOCOL_TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** How many finished `clientMessageId`s are remembered to drop a resend's duplicate terminal. */
const FINISHED_MEMORY = 200;

/** Connection states reported by `connection` events. */
export const ConnectionState = Object.freeze({
  CONNECTING: "connecting",
  OPEN: "open",
  RECONNECTING: "reconnecting",
  CLOSED: "closed",
});

/**
 * A chat session over one WebSocket that survives drops.
 *
 * The application listens with `on(type, fn)` or `for await (const e of client.events())`; every
 * event is the server's frame as sent, plus `connection`, `resync` and `conflicts` made here.
 */
export class DashboardAIClient {
  constructor({
    url,
    sessionId,
    token,
    files,
    WebSocket: WebSocketClass = globalThis.WebSocket,
    backoff = {},
    random = Math.random,
  }) {
    if (!url || !sessionId) throw new TypeError("url and sessionId are required");
    if (!WebSocketClass) throw new TypeError("no WebSocket class: pass options.WebSocket");
    this.url = url;
    this.sessionId = sessionId;
    this.token = token;
    this.backoff = { initialDelayMs: 500, maxDelayMs: 30000, factor: 2, ...backoff };
    this._WebSocket = WebSocketClass;
    this._random = random;
    this._initFiles = files; // sent with every init until the first `ready`
    this._listeners = new Map();
    this._hashes = new Map(); // path -> SHA-256 of the server's version (the base of an edit)
    this._pending = new Map(); // path -> content edited by the app, not yet sent
    this._outbox = new Map(); // clientMessageId -> message frame whose terminal is not in yet
    this._finished = []; // clientMessageIds whose terminal frame was delivered
    this._lastSeq = null; // highest event seq delivered; null before the first ready
    this._ready = false;
    this._closed = false;
    this._attempt = 0;
    this._timer = null;
    this._socket = null;
    this._counter = 0;
    this._resyncNext = false; // an INVALID_LAST_SEQ restarted the session's numbering
    this.state = ConnectionState.CLOSED;
  }

  /** The highest `seq` the application has seen (sent as `lastSeq` on a reconnect). */
  get lastSeq() {
    return this._lastSeq;
  }

  /** The server's SHA-256 of each file as last reported (a copy). */
  get hashes() {
    return Object.fromEntries(this._hashes);
  }

  /** Opens the socket; reconnects by itself until `close()` or a final close code. */
  connect() {
    this._closed = false;
    this._open();
    return this;
  }

  /** Closes for good (code 1000) and ends every `events()` iterator. */
  close() {
    this._closed = true;
    clearTimeout(this._timer);
    if (this._socket) this._socket.close(1000);
    this._socket = null;
    this._setState(ConnectionState.CLOSED, { code: 1000 });
    this._emit({ type: "end" });
  }

  /**
   * Sends a chat message; queued while disconnected and resent after a reconnect until its
   * terminal `complete` or `error` arrives. Files edited with `setFile` go with it, with their
   * base hashes. Returns the `clientMessageId`.
   */
  send(message, { files, clientMessageId } = {}) {
    const id = clientMessageId ?? this._newId();
    const all = { ...Object.fromEntries(this._pending), ...(files ?? {}) };
    this._pending.clear();
    const frame = { type: "message", sessionId: this.sessionId, message, clientMessageId: id };
    const paths = Object.keys(all);
    if (paths.length) {
      frame.files = all;
      const base = {};
      for (const path of paths) if (this._hashes.has(path)) base[path] = this._hashes.get(path);
      if (Object.keys(base).length) frame.baseHashes = base;
    }
    this._outbox.set(id, frame);
    if (this._ready) this._write(frame);
    return id;
  }

  /**
   * Records the application's edit of a file: it is sent with the next message, based on the
   * server's version it started from, so a clash with the agent's edit comes back as a conflict.
   */
  setFile(path, content) {
    this._pending.set(path, content);
  }

  /** Stops the running turn (its `complete` arrives with `stopped: true`). */
  stop() {
    this._control({ type: "stop", sessionId: this.sessionId });
  }

  /** Undoes the last `turns` turns (an `undone` event, or an `error` `NOTHING_TO_UNDO`). */
  undo(turns = 1) {
    this._control({ type: "undo", sessionId: this.sessionId, turns });
  }

  /** Calls `fn(event)` for every event of `type` (`"*"`: all). Returns a function to stop. */
  on(type, fn) {
    if (!this._listeners.has(type)) this._listeners.set(type, new Set());
    this._listeners.get(type).add(fn);
    return () => this._listeners.get(type).delete(fn);
  }

  /** Every event from now on, in order, until `close()`. */
  events() {
    const queue = [];
    let wake = null;
    let ended = false;
    const off = this.on("*", (event) => {
      if (event.type === "end") ended = true;
      else queue.push(event);
      if (wake) wake();
    });
    return {
      [Symbol.asyncIterator]() {
        return this;
      },
      async next() {
        while (!queue.length && !ended) await new Promise((resolve) => (wake = resolve));
        wake = null;
        if (queue.length) return { value: queue.shift(), done: false };
        off();
        return { value: undefined, done: true };
      },
      async return() {
        off();
        return { value: undefined, done: true };
      },
    };
  }

  // --- the socket ---------------------------------------------------------------------------

  _open() {
    let url = this.url;
    const protocols = ["dashboard-ai"];
    if (this.token && SUBPROTOCOL_TOKEN.test(this.token)) protocols.push(`auth.${this.token}`);
    else if (this.token) {
      url += `${url.includes("?") ? "&" : "?"}token=${encodeURIComponent(this.token)}`;
    }
    this._ready = false;
    this._setState(ConnectionState.CONNECTING, { attempt: this._attempt });
    const socket = new this._WebSocket(url, protocols);
    this._socket = socket;
    socket.onopen = () => {
      if (socket === this._socket) this._sendInit(this._lastSeq);
    };
    socket.onmessage = (message) => {
      if (socket === this._socket) this._receive(JSON.parse(message.data));
    };
    socket.onclose = (event) => {
      if (socket === this._socket) this._dropped(event.code);
    };
  }

  _sendInit(lastSeq) {
    const frame = { type: "init", sessionId: this.sessionId };
    if (lastSeq !== null && lastSeq !== undefined) frame.lastSeq = lastSeq;
    if (this._initFiles) frame.files = this._initFiles;
    this._write(frame);
  }

  _dropped(code) {
    this._socket = null;
    this._ready = false;
    if (this._closed) return;
    if (FINAL_CLOSE_CODES.has(code)) {
      this._closed = true;
      this._setState(ConnectionState.CLOSED, { code });
      this._emit({ type: "end" });
      return;
    }
    const { initialDelayMs, maxDelayMs, factor } = this.backoff;
    const ceiling = Math.min(maxDelayMs, initialDelayMs * factor ** this._attempt);
    const delayMs = Math.round(ceiling / 2 + (ceiling / 2) * this._random()); // jitter
    this._attempt += 1;
    this._setState(ConnectionState.RECONNECTING, { code, attempt: this._attempt, delayMs });
    this._timer = setTimeout(() => this._open(), delayMs);
  }

  _write(frame) {
    this._socket.send(JSON.stringify(frame));
  }

  _control(frame) {
    if (!this._ready) throw new Error("not connected: wait for the `connection` state `open`");
    this._write(frame);
  }

  // --- frames from the server -----------------------------------------------------------------

  _receive(frame) {
    if (frame.sessionId !== null && frame.sessionId !== this.sessionId) return;
    if (frame.type === "ready") return this._onReady(frame);
    if (frame.type === "error" && frame.code === "INVALID_LAST_SEQ") {
      // Our seq is from another life of the session: start over from the server's counter.
      this._lastSeq = null;
      this._resyncNext = true;
      return this._sendInit(null);
    }
    if (!EVENT_TYPES.has(frame.type)) return this._emit(frame); // a later version's frame
    const id = frame.clientMessageId;
    const terminal = frame.type === "complete" || frame.type === "error";
    if (terminal && id !== undefined && this._finished.includes(id)) return; // resend duplicate
    const isNew = frame.seq > (this._lastSeq ?? -1);
    const ownOutcome = terminal && id !== undefined && this._outbox.has(id);
    // Replies (ready aside: errors about a frame that started no turn) and a resend's stored
    // terminal carry an old seq but have not been delivered; other old seqs are replayed twice.
    if (!isNew && frame.type !== "error" && !ownOutcome) return;
    if (isNew) this._lastSeq = frame.seq;
    this._track(frame, isNew);
    this._emit(frame);
    this._reportConflicts(frame);
  }

  _onReady(frame) {
    const truncated = frame.replayTruncated || this._resyncNext;
    this._resyncNext = false;
    if (this._lastSeq === null || frame.replayTruncated) this._lastSeq = frame.seq;
    this._initFiles = undefined; // written: a later init must not overwrite the agent's edits
    this._hashes = new Map(Object.entries(frame.hashes ?? {}));
    this._ready = true;
    this._attempt = 0; // a good connection: the next drop starts the backoff over
    this._setState(ConnectionState.OPEN, {});
    this._emit(frame);
    this._reportConflicts(frame);
    if (truncated) {
      this._emit({ type: "resync", sessionId: this.sessionId, seq: frame.seq, files: frame.files,
        contents: frame.contents, hashes: frame.hashes });
    }
    for (const message of this._outbox.values()) this._write(message);
  }

  /** Keeps the base hashes and the outbox in step with an event about to be delivered. */
  _track(frame, isNew) {
    if (frame.type === "file_changed") this._hashes.set(frame.path, frame.hash);
    if (frame.type === "undone" || frame.type === "complete") {
      for (const path of frame.deleted ?? []) this._hashes.delete(path);
    }
    if (frame.type === "undone") {
      for (const [path, content] of Object.entries(frame.files)) {
        this._hashes.set(path, sha256Hex(contentBytes(content)));
      }
    }
    const id = frame.clientMessageId;
    if ((frame.type !== "complete" && frame.type !== "error") || id === undefined) return;
    const sent = this._outbox.get(id);
    this._outbox.delete(id);
    // A turn's terminal error advances seq; an error with an old one refused the message
    // before its files were written, so they are the app's unsent edits again.
    const synced = frame.type === "complete" || isNew;
    if (sent && sent.files) {
      for (const [path, content] of Object.entries(sent.files)) {
        if (synced) this._hashes.set(path, sha256Hex(contentBytes(content)));
        else if (!this._pending.has(path)) this._pending.set(path, content);
      }
    }
    if (frame.type === "complete") {
      for (const [path, hash] of Object.entries(frame.hashes)) this._hashes.set(path, hash);
    }
    if (synced) {
      this._finished.push(id);
      if (this._finished.length > FINISHED_MEMORY) this._finished.shift();
    }
  }

  /**
   * Reports the files the server did not write, after the frame that carries them; the server's
   * version becomes their base, so the app's merge, sent with `setFile`, is based on it.
   */
  _reportConflicts(frame) {
    if (!frame.conflicts || !frame.conflicts.length) return;
    for (const conflict of frame.conflicts) {
      this._hashes.set(conflict.path, sha256Hex(contentBytes(conflict.server)));
    }
    const event = { type: "conflicts", sessionId: this.sessionId, seq: frame.seq,
      conflicts: frame.conflicts, frame };
    if (frame.clientMessageId !== undefined) event.clientMessageId = frame.clientMessageId;
    this._emit(event);
  }

  // --- helpers ---------------------------------------------------------------------------------

  _setState(state, detail) {
    this.state = state;
    this._emit({ type: "connection", state, ...detail });
  }

  _emit(event) {
    for (const key of [event.type, "*"]) {
      for (const fn of this._listeners.get(key) ?? []) fn(event);
    }
  }

  _newId() {
    this._counter += 1;
    const random = Array.from({ length: 4 }, () => Math.floor(this._random() * 36 ** 4)
      .toString(36).padStart(4, "0")).join("");
    return `m-${Date.now().toString(36)}-${this._counter}-${random}`;
  }
}

/** The bytes of a protocol file content: a string (UTF-8) or `{content, encoding: "base64"}`. */
export function contentBytes(content) {
  if (typeof content === "string") return new TextEncoder().encode(content);
  if (content.encoding === "base64") {
    return Uint8Array.from(atob(content.content), (char) => char.charCodeAt(0));
  }
  return new TextEncoder().encode(content.content);
}

const K = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

/**
 * SHA-256 (FIPS 180-4) as lower-case hex, synchronous: the base hash of a file the app sent or
 * an undo restored must be known before the next message goes out, and `crypto.subtle` is
 * asynchronous and missing outside secure contexts (a dashboard served over plain http).
 */
export function sha256Hex(bytes) {
  const bitLength = bytes.length * 8;
  const padded = new Uint8Array(((bytes.length + 72) >> 6) << 6);
  padded.set(bytes);
  padded[bytes.length] = 0x80;
  const view = new DataView(padded.buffer);
  view.setUint32(padded.length - 8, Math.floor(bitLength / 2 ** 32));
  view.setUint32(padded.length - 4, bitLength >>> 0);
  const h = new Uint32Array([
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
  ]);
  const w = new Uint32Array(64);
  const rotr = (x, n) => (x >>> n) | (x << (32 - n));
  for (let block = 0; block < padded.length; block += 64) {
    for (let i = 0; i < 16; i++) w[i] = view.getUint32(block + i * 4);
    for (let i = 16; i < 64; i++) {
      const s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >>> 3);
      const s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >>> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    let [a, b, c, d, e, f, g, k] = h;
    for (let i = 0; i < 64; i++) {
      const t1 = k + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
      const t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
      k = g;
      g = f;
      f = e;
      e = (d + t1) >>> 0;
      d = c;
      c = b;
      b = a;
      a = (t1 + t2) >>> 0;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += k;
  }
  return Array.from(h, (word) => word.toString(16).padStart(8, "0")).join("");
}
