// TypeScript declarations for parley-client (src/index.js): the socket,
// channels, pushes, presence, the JSON serializers and the constants.
// The MessagePack serializer is declared in msgpack.d.ts.

/** A message of the Phoenix protocol, as serializers see it. */
export interface Message<P = any> {
  join_ref: string | null;
  ref: string | null;
  topic: string;
  event: string;
  payload: P;
}

/** Turns messages into WebSocket frames and back; see src/serializer.js. */
export interface Serializer {
  /** A label for logs. */
  readonly name: string;
  /** Connect parameters selecting this serializer on the server; they
   * override the socket's params and the default vsn. */
  readonly params: Readonly<Record<string, string>>;
  /** The WebSocket binaryType it needs (default "arraybuffer"). */
  readonly binaryType?: BinaryType;
  encode(msg: Message, callback: (frame: string | ArrayBuffer | ArrayBufferView) => void): void;
  decode(raw: unknown, callback: (msg: Message) => void): void;
}

/** Phoenix serializer V2 (JSON arrays in text frames): the default. */
export const JsonSerializer: Serializer;
/** Phoenix serializer V1 (JSON objects, vsn=1.0.0). */
export const JsonSerializerV1: Serializer;

export type ParamsOption = Record<string, string | number | boolean | null | undefined>;
export type ConnectionState = "connecting" | "open" | "closing" | "closed";
export type ChannelState = "closed" | "errored" | "joined" | "joining" | "leaving";
export type PushStatus = "ok" | "error" | "timeout";
export type Logger = (kind: string, msg: string, data?: any) => void;

/** What a Socket needs of a WebSocket constructor: the browser's, or `ws`'s. */
export interface WebSocketLike {
  readonly readyState: number;
  binaryType: string;
  onopen: ((event: any) => void) | null;
  onclose: ((event: any) => void) | null;
  onerror: ((event: any) => void) | null;
  onmessage: ((event: { data: any }) => void) | null;
  send(data: any): void;
  close(code?: number, reason?: string): void;
}
export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** The close event given to onClose callbacks: the transport's CloseEvent,
 * or this shape when the socket dropped a connection on a heartbeat timeout. */
export interface CloseInfo {
  code: number;
  reason: string;
  wasClean: boolean;
}

export interface SocketOptions {
  /** Connect params (or a function returning them, called at every connect). */
  params?: ParamsOption | (() => ParamsOption);
  /** WebSocket constructor; default globalThis.WebSocket. */
  transport?: WebSocketConstructor | typeof WebSocket;
  /** Default JsonSerializer. */
  serializer?: Serializer;
  /** Default push and join timeout in ms (10000). */
  timeout?: number;
  /** Heartbeat period in ms (30000); a reply missing for as long drops the connection. */
  heartbeatIntervalMs?: number;
  /** Delay before reconnect attempt `tries` (from 1); default full-jitter
   * backoff in [0, min(10 s, 250 ms * 2^(tries-1))]. */
  reconnectAfterMs?: (tries: number) => number;
  /** Delay before rejoin attempt `tries`; default full-jitter backoff in
   * [0, min(10 s, 1 s * 2^(tries-1))]. */
  rejoinAfterMs?: (tries: number) => number;
  /** Messages kept while they cannot be sent (1000); beyond, pushes end in
   * "error" {reason: "send buffer full"}. */
  sendBufferMax?: number;
  /** Source of random numbers in [0, 1) for the default backoffs. */
  random?: () => number;
  logger?: Logger;
}

export class Socket {
  constructor(endPoint: string, opts?: SocketOptions);
  readonly channels: Channel[];
  readonly timeout: number;
  readonly serializer: Serializer;
  /** The WebSocket of the current connection, if any. */
  readonly conn: WebSocketLike | null;
  connect(): void;
  disconnect(callback?: () => void, code?: number, reason?: string): void;
  onOpen(callback: () => void): string;
  onClose(callback: (event: CloseInfo) => void): string;
  onError(callback: (error: any) => void): string;
  onMessage(callback: (msg: Message) => void): string;
  off(refs: string | string[]): void;
  channel(topic: string, params?: object | (() => object)): Channel;
  connectionState(): ConnectionState;
  isConnected(): boolean;
  endPointURL(): string;
  log(kind: string, msg: string, data?: any): void;
  hasLogger(): boolean;
}

export class Channel {
  readonly topic: string;
  readonly state: ChannelState;
  readonly socket: Socket;
  join(timeout?: number): Push;
  push(event: string, payload?: object, timeout?: number): Push;
  leave(timeout?: number): Push;
  on(event: string, callback: (payload: any, ref: string | null, joinRef: string | null) => void): number;
  off(event: string, ref?: number): void;
  onClose(callback: (reason: any) => void): number;
  onError(callback: (reason: any) => void): number;
  joinRef(): string | null;
  isClosed(): boolean;
  isErrored(): boolean;
  isJoined(): boolean;
  isJoining(): boolean;
  isLeaving(): boolean;
}

export class Push {
  readonly event: string;
  readonly ref: string | null;
  receive(status: "ok", callback: (response: any) => void): this;
  receive(status: "error", callback: (response: any) => void): this;
  receive(status: "timeout", callback: (response: {}) => void): this;
  receive(status: PushStatus, callback: (response: any) => void): this;
}

export interface PresenceMeta {
  phx_ref: string;
  phx_ref_prev?: string;
  [field: string]: any;
}
export interface PresenceEntry {
  metas: PresenceMeta[];
  [field: string]: any;
}
export type PresenceState = Record<string, PresenceEntry>;
export interface PresenceDiff {
  joins?: PresenceState;
  leaves?: PresenceState;
}
export type PresenceOnJoin = (key: string, current: PresenceEntry | undefined, joined: PresenceEntry) => void;
export type PresenceOnLeave = (key: string, current: PresenceEntry, left: PresenceEntry) => void;

export interface PresenceOptions {
  events?: { state?: string; diff?: string };
}

export class Presence {
  constructor(channel: Channel, opts?: PresenceOptions);
  readonly state: PresenceState;
  onJoin(callback: PresenceOnJoin): void;
  onLeave(callback: PresenceOnLeave): void;
  onSync(callback: () => void): void;
  list(): PresenceEntry[];
  list<T>(chooser: (key: string, presence: PresenceEntry) => T): T[];

  static syncState(
    state: PresenceState,
    newState: PresenceState,
    onJoin?: PresenceOnJoin,
    onLeave?: PresenceOnLeave,
  ): PresenceState;
  static syncDiff(
    state: PresenceState,
    diff: PresenceDiff,
    onJoin?: PresenceOnJoin,
    onLeave?: PresenceOnLeave,
  ): PresenceState;
  static list(state: PresenceState): PresenceEntry[];
  static list<T>(state: PresenceState, chooser: (key: string, presence: PresenceEntry) => T): T[];
}

export class Timer {
  constructor(callback: () => void, timerCalc: (tries: number) => number);
  tries: number;
  reset(): void;
  cancel(): void;
  isScheduled(): boolean;
  scheduleTimeout(): void;
}

/** A backoff `(tries) => ms` drawing from [0, min(capMs, baseMs * 2^(tries-1))]. */
export function jitteredBackoff(baseMs: number, capMs: number, random?: () => number): (tries: number) => number;

export const DEFAULT_VSN: "2.0.0";
export const SEND_BUFFER_FULL: "send buffer full";
export const SOCKET_STATES: Readonly<{ connecting: 0; open: 1; closing: 2; closed: 3 }>;
export const CHANNEL_STATES: Readonly<{
  closed: "closed";
  errored: "errored";
  joined: "joined";
  joining: "joining";
  leaving: "leaving";
}>;
export const CHANNEL_EVENTS: Readonly<{
  close: "phx_close";
  error: "phx_error";
  join: "phx_join";
  reply: "phx_reply";
  leave: "phx_leave";
}>;
export const PRESENCE_EVENTS: Readonly<{ state: "presence_state"; diff: "presence_diff" }>;
