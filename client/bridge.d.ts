// Type definitions for bridge.js, the wsbridge browser client.

/** This client's release; client/package.json carries the same version. */
export const VERSION: string;

/** Connection state, reported by Client.state and the 'state' event. */
export type State = 'connecting' | 'connected' | 'reconnecting' | 'closed';

/**
 * The bridge's NATS connection as the bridge reports it on the current
 * socket (hello's "nats", then status frames), reported by Client.nats and
 * the 'nats' event. 'unknown' while there is no socket, or when the bridge
 * does not say.
 */
export type NATSState = 'up' | 'down' | 'unknown';

/** Any value JSON can carry. */
export type JSONValue = null | boolean | number | string | JSONValue[] | { [key: string]: JSONValue };

/** Bytes are sent as base64 ("b64") instead of JSON ("data"). */
export type Bytes = Uint8Array | ArrayBuffer | ArrayBufferView;

/** Headers as sent on the wire; a bare string is shorthand for a one-element list. */
export type Headers = Record<string, string | string[]>;

/** Where a JetStream subscription starts. */
export type From =
  | 'new'
  | 'all'
  | 'last'
  | { after: number } // stream sequence strictly after N
  | { time: string | Date }; // RFC 3339; a Date is converted with toISOString

/** Protocol err codes from the bridge, plus the client's own. */
export type ErrorCode =
  | 'bad_request' | 'invalid_subject' | 'permission_denied' | 'duplicate_id' | 'not_found'
  | 'too_many_subscriptions' | 'payload_too_large' | 'timeout' | 'no_responders'
  | 'unavailable' | 'internal' | 'no_stream' | 'rate_limited' | 'token_expired'
  | 'closed' // client.close() was called, or the subscription was unsubscribed
  | (string & {});

export interface ConnectOptions {
  /** Bearer token, or a function called before each connect and each refresh. */
  token?: string | (() => string | Promise<string>);
  /** Reconnect after the socket drops. Default true. */
  reconnect?: boolean;
  /** Backoff bounds in ms; each delay is uniform in [0, min(max, min * 2^attempt)). Defaults 250 and 10000. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** Ping period in ms; a socket silent for two periods is dropped. 0 disables. Default 20000. */
  pingIntervalMs?: number;
  /** Refresh a function token this many ms before its JWT exp. Default 30000. */
  refreshBeforeMs?: number;
  /** Most frames held while disconnected; beyond it calls reject with 'unavailable'. Default 1000. */
  maxQueue?: number;
  /**
   * After a close with 1012 "rebalance" the client reconnects after a delay
   * uniform in [0, rebalanceJitterMs) instead of its backoff. Default 1000.
   */
  rebalanceJitterMs?: number;
  /** Called on every state change, including the initial 'connecting'. */
  onState?: (state: State) => void;
  /** WebSocket constructor to use instead of globalThis.WebSocket (tests, Node). */
  WebSocket?: new (url: string, protocols?: string | string[]) => WebSocket;
}

/** The bridge's first frame on every connection. */
export interface Hello {
  op: 'hello';
  node: string;
  max_payload: number;
  /** The bridge's NATS connection at the handshake; absent from bridges that do not report it. */
  nats?: 'up' | 'down';
}

/** A message delivered to a subscription, or a reply to a request. */
export interface Msg {
  subject: string;
  /** Id of the subscription that delivered it (s1, s2, ...); undefined on a reply. */
  sid?: string;
  /** The payload when the bridge sent it as JSON ("data"); undefined for bytes. */
  data: JSONValue | undefined;
  /** The payload when the bridge sent it as base64 ("b64"); undefined for JSON. */
  bytes: Uint8Array | undefined;
  headers?: Record<string, string[]>;
  /** Reply subject, when the publisher set one. */
  reply?: string;
  /** Stream sequence; JetStream subscriptions only. */
  seq?: number;
  /** The payload as text: bytes decoded as UTF-8, or the JSON text of data. */
  text(): string;
  /** data, or bytes parsed as JSON (throws if they are not JSON). */
  json<T = JSONValue>(): T;
}

export interface SubscribeOptions {
  /** Queue group: each message goes to one member. */
  queue?: string;
  /** Makes this a JetStream subscription starting here. */
  from?: From;
}

export interface Subscription {
  /** Stable across reconnects (s1, s2, ...). */
  readonly id: string;
  readonly subject: string;
  /** Resolves on the bridge's first ok; rejects with its err. */
  readonly ready: Promise<void>;
  /** Stops delivery at once; resolves when the bridge confirms (or at once when disconnected). */
  unsubscribe(): Promise<void>;
}

export interface PublishOptions {
  headers?: Headers;
  /**
   * Publish through JetStream; resolves with the stream and sequence. The
   * frame is re-sent unchanged (same msg_id) after a reconnect and after a
   * timeout or unavailable answer, until the stream acknowledges it.
   */
  ack?: boolean;
  /** Nats-Msg-Id for JetStream dedup; generated when ack is set and this is not. */
  msgId?: string;
  /** Send a string as UTF-8 bytes (b64) instead of a JSON string. */
  bytes?: boolean;
}

export interface PubAck {
  stream: string;
  seq: number;
  /** True when the stream already held this msg_id: an earlier send was stored. */
  duplicate: boolean;
}

export interface RequestOptions {
  /** ms the bridge waits for a reply. Default 5000. */
  timeout?: number;
  headers?: Headers;
  /** Send a string as UTF-8 bytes (b64) instead of a JSON string. */
  bytes?: boolean;
}

export class BridgeError extends Error {
  constructor(code: ErrorCode, message?: string, ref?: string);
  readonly name: 'BridgeError';
  readonly code: ErrorCode;
  /** Id of the operation the error belongs to, when known. */
  readonly ref?: string;
  /** WebSocket close code, for errors caused by a close. */
  readonly closeCode?: number;
  /** The subscription the server removed (permission_denied) or refused on resubscribe (unavailable is retried instead). */
  readonly subscription?: Subscription;
}

export interface EventMap {
  state: State;
  error: BridgeError | Error;
  hello: Hello;
  nats: NATSState;
}

export class Client {
  private constructor();
  readonly state: State;
  /** The last hello frame, or null before the first. */
  readonly hello: Hello | null;
  /** The bridge's NATS connection; see NATSState. */
  readonly nats: NATSState;
  subscribe(subject: string, handler: (msg: Msg) => void, opts?: SubscribeOptions): Subscription;
  publish(subject: string, data: JSONValue | Bytes, opts: PublishOptions & { ack: true }): Promise<PubAck>;
  publish(subject: string, data: JSONValue | Bytes, opts?: PublishOptions): Promise<void>;
  request(subject: string, data: JSONValue | Bytes, opts?: RequestOptions): Promise<Msg>;
  /** Adds a listener; returns a function that removes it. */
  on<K extends keyof EventMap>(event: K, fn: (arg: EventMap[K]) => void): () => void;
  off<K extends keyof EventMap>(event: K, fn: (arg: EventMap[K]) => void): void;
  /** Closes for good with 1000; everything pending rejects with code 'closed'. Idempotent. */
  close(): void;
}

/** Starts a client; urls default to ws(s)://location.host/ws in a browser. */
export function connect(urls?: string | string[], opts?: ConnectOptions): Client;
