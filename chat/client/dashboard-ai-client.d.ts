// Types of dashboard-ai-client.js: the /ws/chat frames of docs/protocol.md (version 1) and the
// client's own events. docs/schemas/ has the JSON Schemas the frames are checked against.

/** A file's content on the wire: UTF-8 text, or bytes in base64. */
export type FileContent = string | { content: string; encoding?: "base64" | "utf-8" };
export type Files = Record<string, FileContent>;

export interface Conflict {
  path: string;
  /** The version on the server, which was kept. */
  server: FileContent;
  /** The version the client sent, which was not written. */
  client: FileContent;
}

interface Frame {
  sessionId: string | null;
  seq: number;
  clientMessageId?: string;
}

export interface ReadyFrame extends Frame {
  type: "ready";
  files: string[];
  resumed: boolean;
  messageCount: number;
  protocolVersion: number;
  replayTruncated: boolean;
  contents?: Files;
  hashes: Record<string, string>;
  conflicts?: Conflict[];
}
export interface StreamFrame extends Frame {
  type: "stream";
  text: string;
}
export interface ToolStartFrame extends Frame {
  type: "tool_start";
  toolUseId: string;
  tool: string;
  input: Record<string, unknown>;
}
export interface ToolResultFrame extends Frame {
  type: "tool_result";
  toolUseId: string;
  tool: string;
  isError: boolean;
  summary: string;
}
export interface FileChangedFrame extends Frame {
  type: "file_changed";
  path: string;
  content: FileContent;
  hash: string;
}
export interface StatusFrame extends Frame {
  type: "status";
  status: string;
  attempt?: number;
  maxAttempts?: number;
  message: string;
}
export interface Usage {
  inputTokens: number;
  outputTokens: number;
  cacheReadInputTokens: number;
  cacheCreationInputTokens: number;
}
export interface CompleteFrame extends Frame {
  type: "complete";
  files: Files;
  deleted: string[];
  result: string;
  stopped: boolean;
  usage: Usage;
  costUsd: number;
  durationMs: number;
  hashes: Record<string, string>;
  conflicts?: Conflict[];
}
export interface UndoneFrame extends Frame {
  type: "undone";
  files: Files;
  deleted: string[];
  turns: number;
  messageCount: number;
}
export interface ErrorFrame extends Frame {
  type: "error";
  /** Stable, UPPER_SNAKE (docs/protocol.md, "Error codes"): branch on this. */
  code: string;
  message: string;
  recoverable: boolean;
  conflicts?: Conflict[];
}

export type ConnectionStateName = "connecting" | "open" | "reconnecting" | "closed";
export declare const ConnectionState: {
  readonly CONNECTING: "connecting";
  readonly OPEN: "open";
  readonly RECONNECTING: "reconnecting";
  readonly CLOSED: "closed";
};

/** The socket's state changed; `delayMs` is the wait before the next attempt. */
export interface ConnectionEvent {
  type: "connection";
  state: ConnectionStateName;
  /** The close code that ended the last socket (4401: wrong token, no reconnect). */
  code?: number;
  attempt?: number;
  delayMs?: number;
}
/** The server no longer held the missed events: replace the app's files with `contents`. */
export interface ResyncEvent {
  type: "resync";
  sessionId: string;
  seq: number;
  files: string[];
  /** Absent after an INVALID_LAST_SEQ (the session was started over): reload the files. */
  contents?: Files;
  hashes: Record<string, string>;
}
/** Files of an init or a message the server did not write, after the frame carrying them. */
export interface ConflictsEvent {
  type: "conflicts";
  sessionId: string;
  seq: number;
  clientMessageId?: string;
  conflicts: Conflict[];
  frame: ReadyFrame | CompleteFrame | ErrorFrame;
}
/** The client was closed for good (`close()`, or a close code that forbids reconnecting). */
export interface EndEvent {
  type: "end";
}

export interface EventMap {
  ready: ReadyFrame;
  stream: StreamFrame;
  tool_start: ToolStartFrame;
  tool_result: ToolResultFrame;
  file_changed: FileChangedFrame;
  status: StatusFrame;
  complete: CompleteFrame;
  undone: UndoneFrame;
  error: ErrorFrame;
  connection: ConnectionEvent;
  resync: ResyncEvent;
  conflicts: ConflictsEvent;
  end: EndEvent;
}
export type ClientEvent = EventMap[keyof EventMap];

export interface WebSocketLike {
  send(data: string): void;
  close(code?: number): void;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: string }) => void) | null;
  onclose: ((event: { code: number }) => void) | null;
}

export interface DashboardAIClientOptions {
  /** `ws://HOST:3000/ws/chat` (or `wss://`). */
  url: string;
  /** 1-64 characters of `A-Z a-z 0-9 _ -`; choose one nobody can guess. */
  sessionId: string;
  /** The server's CHAT_AUTH_TOKEN, sent as the `auth.<token>` subprotocol (or `?token=`). */
  token?: string;
  /** Files for the first `init` (not sent again on reconnects). */
  files?: Files;
  /** The WebSocket class; defaults to the browser's. */
  WebSocket?: new (url: string, protocols: string[]) => WebSocketLike;
  /** Reconnect delays: `min(maxDelayMs, initialDelayMs * factor ** attempt)`, jittered to 50-100 %. */
  backoff?: { initialDelayMs?: number; maxDelayMs?: number; factor?: number };
  /** A source of numbers in [0, 1) for the jitter and ids; defaults to Math.random. */
  random?: () => number;
}

export declare class DashboardAIClient {
  constructor(options: DashboardAIClientOptions);
  readonly url: string;
  readonly sessionId: string;
  readonly state: ConnectionStateName;
  /** The highest `seq` delivered to the app; `null` before the first `ready`. */
  readonly lastSeq: number | null;
  /** The server's SHA-256 of each file, the base of the app's next edit. */
  readonly hashes: Record<string, string>;
  connect(): this;
  close(): void;
  /** Returns the message's `clientMessageId`; the message is resent until its terminal frame. */
  send(message: string, options?: { files?: Files; clientMessageId?: string }): string;
  /** Records the app's edit; sent with the next message, with the base hash it started from. */
  setFile(path: string, content: FileContent): void;
  /** Throws when not connected. */
  stop(): void;
  /** Throws when not connected. */
  undo(turns?: number): void;
  on<K extends keyof EventMap>(type: K, fn: (event: EventMap[K]) => void): () => void;
  on(type: "*", fn: (event: ClientEvent) => void): () => void;
  events(): AsyncIterableIterator<Exclude<ClientEvent, EndEvent>>;
}

/** The bytes of a file content. */
export declare function contentBytes(content: FileContent): Uint8Array;
/** SHA-256 as 64 lower-case hex digits, as the server's `hashes`. */
export declare function sha256Hex(bytes: Uint8Array): string;
