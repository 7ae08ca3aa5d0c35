// bridge.js: browser client for wsbridge, a WebSocket edge for NATS.
// No dependencies. See docs/CLIENT.md for the guide and bridge.d.ts for types.

/** VERSION is this client's release; client/package.json carries the same. */
export const VERSION = '0.1.0';

const PROTOCOL = 'wsbridge.v1';
const BEARER = 'wsbridge.bearer.';
const MAX_TIMEOUT = 2 ** 31 - 1; // setTimeout overflows above this
const REFRESH_RETRY_MS = 5000;
const REQUEST_GRACE_MS = 1000; // client backstop beyond the server's timeout_ms
const REBALANCE = 1012; // with reason "rebalance": the node sheds this client to even out load

/** BridgeError is every error this module rejects with or emits. */
export class BridgeError extends Error {
  /**
   * @param {string} code protocol err code, or a client code: unavailable, closed, timeout
   * @param {string} [message]
   * @param {string} [ref] id of the operation the error belongs to
   */
  constructor(code, message, ref) {
    super(message || code);
    this.name = 'BridgeError';
    this.code = code;
    this.ref = ref;
    /** @type {number|undefined} WebSocket close code, for errors caused by a close. */
    this.closeCode = undefined;
    /** @type {object|undefined} The subscription handle the server removed or refused. */
    this.subscription = undefined;
  }
}

/**
 * connect starts a client and begins connecting at once.
 * @param {string|string[]} [urls] tried in turn on each (re)connect;
 *   defaults to ws(s)://location.host/ws in a browser.
 * @param {object} [opts] see ConnectOptions in bridge.d.ts.
 * @returns {Client}
 */
export function connect(urls, opts) {
  return new Client(urls, opts);
}

/** Client is one logical connection that survives socket drops. */
export class Client {
  constructor(urls, opts = {}) {
    if (urls == null) urls = defaultURL();
    this._urls = Array.isArray(urls) ? urls.slice() : [urls];
    if (this._urls.length === 0) throw new TypeError('wsbridge: no urls');
    /** @type {Record<string, any>} */
    this._opts = {
      reconnect: true, minBackoffMs: 250, maxBackoffMs: 10000,
      pingIntervalMs: 20000, refreshBeforeMs: 30000, maxQueue: 1000, rebalanceJitterMs: 1000, ...opts,
    };
    this._WS = opts.WebSocket || globalThis.WebSocket;
    if (!this._WS) throw new TypeError('wsbridge: no WebSocket implementation');
    /** @type {'connecting'|'connected'|'reconnecting'|'closed'} */
    this.state = 'connecting';
    /** The last hello frame ({op, node, max_payload, nats}), or null before the first. */
    this.hello = null;
    /**
     * The bridge's NATS connection as the bridge last reported it on the
     * current socket: 'up', 'down', or 'unknown' while there is no socket
     * (or the bridge does not report it).
     * @type {'up'|'down'|'unknown'}
     */
    this.nats = 'unknown';
    this._listeners = { state: new Set(), error: new Set(), hello: new Set(), nats: new Set() };
    if (opts.onState) this._listeners.state.add(opts.onState);
    this._ids = { s: 0, p: 0, r: 0, a: 0, k: 0 };
    this._subs = new Map();     // sub id → sub record; survives reconnects
    this._acks = new Map();     // pub id → acked publish awaiting ok; resent on reconnect, timeout and unavailable
    this._waiters = new Map();  // ref → FIFO of {ok, err, lost} for this socket
    this._outbox = [];          // {frame, waiter, entry?} not yet sent (bounded by maxQueue)
    this._ws = null;
    this._live = false;         // socket open and hello received
    this._closed = false;
    this._attempt = 0;          // consecutive failed attempts, for backoff
    this._urlIndex = 0;
    this._token = undefined;
    this._lastFrame = 0;
    this._timers = { reconnect: 0, ping: 0, refresh: 0, subs: new Set() };
    this._emit('state', this.state);
    this._open();
  }

  /**
   * on adds a listener for 'state', 'error', 'hello' or 'nats'.
   * @returns {() => void} a function that removes it
   */
  on(event, fn) {
    const set = this._listeners[event];
    if (!set) throw new TypeError(`wsbridge: unknown event ${event}`);
    set.add(fn);
    return () => this.off(event, fn);
  }

  /** off removes a listener added with on. */
  off(event, fn) {
    const set = this._listeners[event];
    if (set) set.delete(fn);
  }

  /**
   * subscribe delivers messages on subject to handler until unsubscribed.
   * The subscription is re-created after every reconnect with the same id.
   * @param {string} subject
   * @param {(msg: object) => void} handler
   * @param {{queue?: string, from?: any}} [opts] from makes it a JetStream subscription
   */
  subscribe(subject, handler, opts = {}) {
    if (typeof handler !== 'function') throw new TypeError('wsbridge: handler must be a function');
    const id = 's' + ++this._ids.s;
    let resolve, reject;
    const ready = new Promise((res, rej) => { resolve = res; reject = rej; });
    ready.catch(() => {}); // failures surface through ready; don't flag as unhandled
    const sub = {
      id, subject, handler, queue: opts.queue, from: normalizeFrom(opts.from),
      lastSeq: undefined, settled: false,
      resolve() { if (!sub.settled) { sub.settled = true; resolve(); } },
      reject(e) { if (!sub.settled) { sub.settled = true; reject(e); } },
    };
    sub.handle = {
      id, subject, ready,
      unsubscribe: () => this._unsubscribe(sub),
    };
    if (this._closed) {
      sub.reject(new BridgeError('closed', 'client closed', id));
      return sub.handle;
    }
    this._subs.set(id, sub);
    if (this._live) this._sendSub(sub);
    return sub.handle;
  }

  /**
   * publish sends data to subject. data is any JSON value, or a
   * Uint8Array/ArrayBuffer (sent as bytes). Resolves on the bridge's ok;
   * with ack, resolves to {stream, seq, duplicate} and is re-sent, with
   * the same msg_id, after reconnects and after a timeout or unavailable
   * answer (outcome unknown) until the stream acknowledges it.
   * @param {string} subject
   * @param {any} data
   * @param {{headers?: object, ack?: boolean, msgId?: string, bytes?: boolean}} [opts]
   */
  publish(subject, data, opts = {}) {
    const id = 'p' + ++this._ids.p;
    /** @type {Record<string, any>} */
    const frame = { op: 'pub', id, subject, ...payload(data, opts.bytes) };
    if (opts.headers) frame.headers = normalizeHeaders(opts.headers);
    if (opts.msgId) frame.msg_id = opts.msgId;
    if (!opts.ack) {
      return new Promise((resolve, reject) => {
        this._submit(frame, { ok: () => resolve(), err: reject, lost: reject });
      });
    }
    frame.ack = true;
    if (!frame.msg_id) frame.msg_id = randomId(); // so resends dedupe in the stream
    return new Promise((resolve, reject) => {
      if (this._closed) return reject(new BridgeError('closed', 'client closed', id));
      const entry = { frame, sent: false, reject, retries: 0, timer: 0 };
      entry.waiter = {
        ok: (f) => {
          this._acks.delete(id);
          resolve({ stream: f.stream, seq: f.seq, duplicate: f.duplicate === true });
        },
        err: (e) => {
          if (this._acks.get(id) !== entry) return;
          // timeout: the stream may have stored it; unavailable: NATS is
          // down. Either way the same msg_id makes a re-send safe.
          if (e.code === 'timeout' || e.code === 'unavailable') return this._retryAck(entry);
          this._acks.delete(id);
          reject(e);
        },
        lost: () => {}, // stays in _acks; re-sent on the next hello
      };
      if (!this._live && this._outbox.length >= this._opts.maxQueue) {
        return reject(new BridgeError('unavailable', 'wsbridge: send queue full', id));
      }
      this._acks.set(id, entry);
      this._submit(frame, entry.waiter, entry);
    });
  }

  /**
   * request sends data to subject and resolves with the first reply.
   * Requests are never re-sent: one in flight when the socket drops
   * rejects with code 'unavailable'.
   * @param {string} subject
   * @param {any} data
   * @param {{timeout?: number, headers?: object, bytes?: boolean}} [opts] timeout in ms (default 5000)
   */
  request(subject, data, opts = {}) {
    const id = 'r' + ++this._ids.r;
    const timeout = opts.timeout > 0 ? opts.timeout : 5000;
    /** @type {Record<string, any>} */
    const frame = { op: 'req', id, subject, ...payload(data, opts.bytes), timeout_ms: timeout };
    if (opts.headers) frame.headers = normalizeHeaders(opts.headers);
    return new Promise((resolve, reject) => {
      const item = { frame };
      const timer = setTimeout(() => {
        this._dropQueued(item);
        this._dropWaiter(id, item.waiter);
        reject(new BridgeError('timeout', 'wsbridge: request timed out', id));
      }, Math.min(timeout + REQUEST_GRACE_MS, MAX_TIMEOUT));
      const done = (fn) => (v) => { clearTimeout(timer); fn(v); };
      item.waiter = {
        ok: done((f) => resolve(toMsg(f, subject))),
        err: done(reject),
        lost: done(reject),
      };
      this._submit(frame, item.waiter, undefined, item);
    });
  }

  /** close ends the client for good: the socket closes with 1000 and everything pending rejects with code 'closed'. */
  close() {
    if (this._closed) return;
    this._shutdown(new BridgeError('closed', 'client closed'));
  }

  // --- connection lifecycle ---

  async _open() {
    this._timers.reconnect = 0;
    const url = this._urls[this._urlIndex++ % this._urls.length];
    let token;
    try {
      token = typeof this._opts.token === 'function' ? await this._opts.token() : this._opts.token;
    } catch (e) {
      this._emitError(asError(e, 'unavailable'));
      return this._retry();
    }
    if (this._closed) return;
    this._token = token;
    const protocols = token ? [PROTOCOL, BEARER + token] : [PROTOCOL];
    let ws;
    try {
      ws = new this._WS(url, protocols);
    } catch (e) {
      this._emitError(asError(e, 'bad_request'));
      return this._retry();
    }
    this._ws = ws;
    this._lastFrame = Date.now();
    ws.onmessage = (e) => { if (ws === this._ws) this._onFrame(e.data); };
    ws.onclose = (e) => this._gone(ws, e.code, e.reason);
    ws.onerror = () => {}; // a close event always follows
    const iv = this._opts.pingIntervalMs;
    if (iv > 0) this._timers.ping = setInterval(() => this._tick(ws, iv), iv);
  }

  /** _tick pings a live socket and drops one that has been silent for two intervals. */
  _tick(ws, iv) {
    if (ws !== this._ws) return;
    if (Date.now() - this._lastFrame > 2 * iv) {
      try { ws.close(); } catch { /* already closing */ }
      this._gone(ws, 1006, 'timeout');
      return;
    }
    if (this._live) this._send({ op: 'ping', id: 'k' + ++this._ids.k });
  }

  /** _gone handles the end of socket ws, whatever the cause. Idempotent per socket. */
  _gone(ws, code, reason) {
    if (ws !== this._ws) return;
    ws.onmessage = ws.onclose = ws.onerror = null;
    this._ws = null;
    this._live = false;
    clearInterval(this._timers.ping);
    clearTimeout(this._timers.refresh);
    const lost = new BridgeError('unavailable', 'wsbridge: connection lost');
    const waiters = [...this._waiters.values()].flat();
    this._waiters.clear();
    for (const w of waiters) w.lost(lost);
    this._setNATS('unknown');
    // A rebalance is the node asking this client to move: not an error,
    // and not a reason to back off.
    const rebalance = code === REBALANCE && reason === 'rebalance';
    if (code !== 1000 && code !== 1001 && !rebalance) this._emitError(closeError(code, reason));
    if (this._closed) return;
    if (!this._opts.reconnect) return this._shutdown(lost);
    if (rebalance) this._attempt = 0;
    this._retry(rebalance ? this._opts.rebalanceJitterMs : undefined);
  }

  /**
   * _retry schedules the next attempt: after a uniformly random delay in
   * [0, jitterMs) when given (a rebalance), otherwise with exponential
   * backoff and full jitter.
   */
  _retry(jitterMs) {
    if (this._closed) return;
    this._setState('reconnecting');
    const { minBackoffMs, maxBackoffMs } = this._opts;
    const cap = jitterMs !== undefined ? jitterMs
      : Math.min(maxBackoffMs, minBackoffMs * 2 ** Math.min(this._attempt, 30));
    this._attempt++;
    this._timers.reconnect = setTimeout(() => this._open(), Math.random() * cap);
  }

  _shutdown(err) {
    this._closed = true;
    clearTimeout(this._timers.reconnect);
    clearInterval(this._timers.ping);
    clearTimeout(this._timers.refresh);
    for (const timer of this._timers.subs) clearTimeout(timer);
    this._timers.subs.clear();
    const ws = this._ws;
    this._ws = null;
    this._live = false;
    if (ws) {
      ws.onmessage = ws.onclose = ws.onerror = null;
      try { ws.close(1000); } catch { /* already closed */ }
    }
    const waiters = [...this._waiters.values()].flat();
    this._waiters.clear();
    for (const w of waiters) w.lost(err);
    for (const item of this._outbox.splice(0)) item.waiter.lost(err);
    for (const entry of this._acks.values()) { clearTimeout(entry.timer); entry.reject(err); }
    this._acks.clear();
    for (const sub of this._subs.values()) sub.reject(err);
    this._subs.clear();
    this._setNATS('unknown');
    this._setState('closed');
  }

  _onHello(f) {
    this.hello = f;
    this._live = true;
    this._attempt = 0;
    // Re-create state before telling anyone, so user frames sent from a
    // listener go out after the resubscribes.
    for (const sub of this._subs.values()) this._sendSub(sub);
    for (const entry of this._acks.values()) {
      clearTimeout(entry.timer);
      entry.timer = 0;
      if (entry.sent) this._sendWith(entry.frame, entry.waiter);
    }
    for (const item of this._outbox.splice(0)) {
      this._sendWith(item.frame, item.waiter);
      if (item.entry) item.entry.sent = true;
    }
    this._scheduleRefresh(this._ws);
    this._setNATS(f.nats);
    this._setState('connected');
    this._emit('hello', f);
  }

  /** _onStatus follows the bridge's NATS state; back up, parked acked publishes go out at once. */
  _onStatus(f) {
    if (!this._live) return;
    this._setNATS(f.nats);
    if (this.nats !== 'up') return;
    for (const entry of this._acks.values()) {
      if (!entry.timer) continue;
      clearTimeout(entry.timer);
      entry.timer = 0;
      this._sendWith(entry.frame, entry.waiter);
    }
  }

  // --- frames ---

  _onFrame(raw) {
    this._lastFrame = Date.now();
    if (typeof raw !== 'string') return; // the protocol is text frames only
    let f;
    try { f = JSON.parse(raw); } catch {
      return this._emitError(new BridgeError('bad_request', 'wsbridge: bad frame from server'));
    }
    if (!f || typeof f !== 'object') return;
    switch (f.op) {
      case 'hello': if (!this._live) this._onHello(f); return;
      case 'msg': return this._onMsg(f);
      case 'ok': case 'reply': return this._settle(f.ref, (w) => w.ok(f));
      case 'err': return this._onErr(f);
      case 'status': return this._onStatus(f);
      default: return; // pong and future ops: liveness only
    }
  }

  _onMsg(f) {
    const sub = this._subs.get(f.sid);
    if (!sub) return; // unsubscribed while in flight
    if (typeof f.seq === 'number') {
      if (sub.lastSeq !== undefined && f.seq <= sub.lastSeq) return; // replay after resume
      sub.lastSeq = f.seq;
    }
    try {
      sub.handler(toMsg(f, f.subject));
    } catch (e) {
      this._emitError(e);
    }
  }

  _onErr(f) {
    const err = new BridgeError(f.code || 'internal', f.message, f.ref);
    if (f.ref && this._settle(f.ref, (w) => w.err(err))) return;
    const sub = f.ref && this._subs.get(f.ref);
    if (sub && err.code === 'permission_denied') {
      this._subs.delete(sub.id); // the server removed it
      err.subscription = sub.handle;
    }
    this._emitError(err);
  }

  /** _settle hands a frame to the oldest waiter for ref; false if there was none. */
  _settle(ref, fn) {
    const q = this._waiters.get(ref);
    if (!q) return false;
    const w = q.shift();
    if (q.length === 0) this._waiters.delete(ref);
    fn(w);
    return true;
  }

  // --- sending ---

  _send(frame) {
    try {
      this._ws.send(JSON.stringify(frame));
    } catch (e) {
      this._emitError(asError(e, 'internal'));
    }
  }

  /** _sendWith sends frame now and queues waiter for the reply to frame.id. */
  _sendWith(frame, waiter) {
    let text;
    try {
      text = JSON.stringify(frame);
    } catch (e) {
      return waiter.err(asError(e, 'bad_request')); // e.g. a cycle or BigInt in data
    }
    const q = this._waiters.get(frame.id);
    if (q) q.push(waiter); else this._waiters.set(frame.id, [waiter]);
    try {
      this._ws.send(text);
    } catch (e) {
      this._emitError(asError(e, 'internal'));
    }
  }

  /** _submit sends frame if live, else parks it in the bounded outbox. */
  _submit(frame, waiter, entry, item = {}) {
    if (this._closed) return waiter.lost(new BridgeError('closed', 'client closed', frame.id));
    if (this._live) {
      if (entry) entry.sent = true;
      return this._sendWith(frame, waiter);
    }
    if (this._outbox.length >= this._opts.maxQueue) {
      return waiter.lost(new BridgeError('unavailable', 'wsbridge: send queue full', frame.id));
    }
    Object.assign(item, { frame, waiter, entry });
    this._outbox.push(item);
  }

  _dropQueued(item) {
    const i = this._outbox.indexOf(item);
    if (i >= 0) this._outbox.splice(i, 1);
  }

  _dropWaiter(ref, waiter) {
    const q = this._waiters.get(ref);
    if (!q) return;
    const i = q.indexOf(waiter);
    if (i >= 0) q.splice(i, 1);
    if (q.length === 0) this._waiters.delete(ref);
  }

  _sendSub(sub) {
    const frame = { op: 'sub', id: sub.id, subject: sub.subject };
    if (sub.queue) frame.queue = sub.queue;
    if (sub.lastSeq !== undefined) frame.from = { after: sub.lastSeq };
    else if (sub.from !== undefined) frame.from = sub.from;
    const ws = this._ws;
    this._sendWith(frame, {
      ok: () => { sub.retries = 0; sub.resolve(); },
      err: (e) => {
        if (this._subs.get(sub.id) !== sub) return; // unsubscribed meanwhile
        if (sub.settled && e.code === 'unavailable') {
          // A resubscribe after a failover can reach a node whose NATS is
          // down: keep the subscription and retry, as the code says.
          this._emitError(e);
          return this._retrySub(sub, ws);
        }
        this._subs.delete(sub.id);
        if (sub.settled) { e.subscription = sub.handle; this._emitError(e); } else sub.reject(e);
      },
      lost: () => {}, // re-sent on the next hello
    });
  }

  /**
   * _retryAck re-sends an acked publish, unchanged, after a backoff; a new
   * socket re-sends it on hello and a status "up" at once.
   */
  _retryAck(entry) {
    const { minBackoffMs, maxBackoffMs } = this._opts;
    entry.retries++;
    const cap = Math.min(maxBackoffMs, minBackoffMs * 2 ** Math.min(entry.retries, 30));
    const ws = this._ws;
    clearTimeout(entry.timer);
    entry.timer = setTimeout(() => {
      entry.timer = 0;
      if (ws === this._ws && this._live && this._acks.get(entry.frame.id) === entry) {
        this._sendWith(entry.frame, entry.waiter);
      }
    }, Math.random() * cap);
  }

  /** _retrySub re-sends sub on socket ws after a backoff; a new socket re-sends it on hello anyway. */
  _retrySub(sub, ws) {
    const { minBackoffMs, maxBackoffMs } = this._opts;
    sub.retries = (sub.retries || 0) + 1;
    const cap = Math.min(maxBackoffMs, minBackoffMs * 2 ** Math.min(sub.retries, 30));
    const timer = setTimeout(() => {
      this._timers.subs.delete(timer);
      if (ws === this._ws && this._live && this._subs.get(sub.id) === sub) this._sendSub(sub);
    }, Math.random() * cap);
    this._timers.subs.add(timer);
  }

  _unsubscribe(sub) {
    if (this._subs.get(sub.id) !== sub) return Promise.resolve();
    this._subs.delete(sub.id); // stop delivery at once
    sub.reject(new BridgeError('closed', 'unsubscribed', sub.id));
    if (!this._live) return Promise.resolve(); // not re-sent on reconnect
    return new Promise((resolve) => {
      const done = () => resolve();
      this._sendWith({ op: 'unsub', id: sub.id }, { ok: done, err: done, lost: done });
    });
  }

  // --- token refresh ---

  _scheduleRefresh(ws) {
    clearTimeout(this._timers.refresh);
    if (typeof this._opts.token !== 'function') return;
    const exp = jwtExp(this._token);
    if (exp === undefined) return;
    const delay = exp * 1000 - this._opts.refreshBeforeMs - Date.now();
    this._timers.refresh = setTimeout(() => this._refresh(ws), clamp(delay, 1000, MAX_TIMEOUT));
  }

  async _refresh(ws) {
    const retry = (e) => {
      this._emitError(e);
      if (ws === this._ws) this._timers.refresh = setTimeout(() => this._refresh(ws), REFRESH_RETRY_MS);
    };
    let token;
    try { token = await this._opts.token(); } catch (e) { return retry(asError(e, 'token_expired')); }
    if (ws !== this._ws || !this._live) return;
    const id = 'a' + ++this._ids.a;
    this._sendWith({ op: 'auth', id, token }, {
      ok: () => { this._token = token; this._scheduleRefresh(ws); },
      err: retry,
      lost: () => {},
    });
  }

  // --- events ---

  _setState(s) {
    if (this.state === s) return;
    this.state = s;
    this._emit('state', s);
  }

  _setNATS(s) {
    if (s !== 'up' && s !== 'down') s = 'unknown';
    if (this.nats === s) return;
    this.nats = s;
    this._emit('nats', s);
  }

  _emitError(err) {
    if (this._listeners.error.size === 0) {
      if (globalThis.console) console.error('wsbridge:', err);
      return;
    }
    this._emit('error', err);
  }

  _emit(event, arg) {
    for (const fn of [...this._listeners[event]]) {
      try { fn(arg); } catch (e) {
        if (event !== 'error') this._emitError(e);
        else if (globalThis.console) console.error('wsbridge: error listener threw:', e);
      }
    }
  }
}

// --- helpers ---

function defaultURL() {
  const loc = globalThis.location;
  if (!loc) throw new TypeError('wsbridge: no urls and no location');
  return (loc.protocol === 'https:' ? 'wss://' : 'ws://') + loc.host + '/ws';
}

/** payload returns {data} for JSON values and {b64} for bytes. */
function payload(data, asBytes) {
  if (data instanceof ArrayBuffer) return { b64: toB64(new Uint8Array(data)) };
  if (ArrayBuffer.isView(data)) {
    return { b64: toB64(new Uint8Array(data.buffer, data.byteOffset, data.byteLength)) };
  }
  if (asBytes && typeof data === 'string') return { b64: toB64(new TextEncoder().encode(data)) };
  return { data: data === undefined ? null : data };
}

/** toMsg builds the message object handed to subscribers and request callers. */
function toMsg(f, subject) {
  const bytes = typeof f.b64 === 'string' ? fromB64(f.b64) : undefined;
  const data = bytes ? undefined : f.data;
  /** text is the payload as text: bytes decoded as UTF-8, or the JSON text of data. */
  const text = () => (bytes ? new TextDecoder().decode(bytes) : JSON.stringify(data) ?? '');
  /** json is data, or bytes parsed as JSON (throws if they are not JSON). */
  const json = () => (bytes ? JSON.parse(text()) : data);
  return { subject, sid: f.sid, data, bytes, headers: f.headers, reply: f.reply, seq: f.seq, text, json };
}

function normalizeFrom(from) {
  if (from && typeof from === 'object' && from.time instanceof Date) {
    return { time: from.time.toISOString() };
  }
  return from;
}

function normalizeHeaders(h) {
  const out = {};
  for (const [k, v] of Object.entries(h)) out[k] = Array.isArray(v) ? v.map(String) : [String(v)];
  return out;
}

function toB64(u8) {
  let s = '';
  for (let i = 0; i < u8.length; i += 0x8000) {
    s += String.fromCharCode.apply(null, u8.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

function fromB64(b64) {
  const s = atob(b64);
  const u8 = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) u8[i] = s.charCodeAt(i);
  return u8;
}

/** jwtExp returns the exp claim (seconds) of a JWT without verifying it. */
function jwtExp(token) {
  if (typeof token !== 'string') return undefined;
  const part = token.split('.')[1];
  if (!part) return undefined;
  try {
    const b64 = part.replace(/-/g, '+').replace(/_/g, '/');
    const claims = JSON.parse(new TextDecoder().decode(fromB64(b64 + '='.repeat((4 - b64.length % 4) % 4))));
    return typeof claims.exp === 'number' ? claims.exp : undefined;
  } catch {
    return undefined;
  }
}

function randomId() {
  const u8 = new Uint8Array(16);
  if (globalThis.crypto?.getRandomValues) globalThis.crypto.getRandomValues(u8);
  else for (let i = 0; i < u8.length; i++) u8[i] = Math.floor(Math.random() * 256);
  return Array.from(u8, (b) => b.toString(16).padStart(2, '0')).join('');
}

function closeError(code, reason) {
  const known = typeof reason === 'string' && /^[a-z_]+$/.test(reason) ? reason : '';
  const err = new BridgeError(known || 'unavailable',
    `wsbridge: connection closed (${code}${reason ? ': ' + reason : ''})`);
  err.closeCode = code;
  return err;
}

function asError(e, code) {
  if (e instanceof BridgeError) return e;
  const err = new BridgeError(code, e && e.message ? e.message : String(e));
  err.cause = e;
  return err;
}

function clamp(n, lo, hi) {
  return Math.min(hi, Math.max(lo, n));
}
