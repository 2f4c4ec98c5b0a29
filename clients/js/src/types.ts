/**
 * The types every module of the client shares, at the bottom of its import graph (this module
 * imports nothing): the wire types of jobstream's canonical API (`/api/v1`: the job object, the
 * event envelope shared by SSE, WebSocket and polling, the data each event type carries, the
 * `snapshot` messages), the shapes of what the client is given (`fetch`, `WebSocket`,
 * `EventSource`, a token) and of its requests, and a watch's settings.
 */

export type JobStatus = 'queued' | 'running' | 'completed' | 'failed' | 'cancelled';

export const TERMINAL_STATUSES: readonly JobStatus[] = ['completed', 'failed', 'cancelled'];

export function isTerminalStatus(status: string | null | undefined): boolean {
  return status === 'completed' || status === 'failed' || status === 'cancelled';
}

export interface JobArtifact {
  media_type: string;
  filename: string;
}

export interface JobLinks {
  self?: string;
  events?: string;
  ws?: string;
  result?: string;
  [name: string]: string | undefined;
}

/** The job object as the server sends it (`GET /api/v1/jobs/{id}`, the SSE `snapshot`). */
export interface Job {
  id: string;
  kind: string;
  owner: string;
  params: Record<string, unknown>;
  status: JobStatus;
  /** A handler's free label (`transcribing`); the server sends the status when none is set. */
  state: string | null;
  progress: number;
  current_step: number | null;
  total_steps: number | null;
  step_name: string | null;
  message: string | null;
  eta_seconds: number | null;
  result: unknown;
  artifact: JobArtifact | null;
  error: string | null;
  cancel_requested: boolean;
  created_at: string;
  started_at: string | null;
  updated_at: string;
  finished_at: string | null;
  seq: number;
  links?: JobLinks;
}

export interface StatusChangeData {
  old_status: JobStatus | null;
  new_status: JobStatus;
  /** Present on a job's first event (old_status null). */
  kind?: string;
  created_at?: string;
  /** The job's params, also on its first event (so a job first seen on the all-jobs stream
   * says what it is). */
  params?: Record<string, unknown>;
  /** Why the status moved, when the server says (e.g. a job re-queued after its worker died). */
  reason?: string | null;
  [key: string]: unknown;
}

export interface ProgressData {
  progress?: number;
  current_step?: number | null;
  total_steps?: number | null;
  step_name?: string | null;
  state?: string | null;
  message?: string | null;
  eta_seconds?: number | null;
  [key: string]: unknown;
}

export interface LogData {
  level?: string;
  message: string;
  step?: number | null;
  [key: string]: unknown;
}

export interface CompletedData {
  result?: unknown;
  output_path?: string | null;
  elapsed_seconds?: number;
  message?: string;
  [key: string]: unknown;
}

export interface FailedData {
  message?: string;
  [key: string]: unknown;
}

export interface EventDataMap {
  status_change: StatusChangeData;
  progress: ProgressData;
  log: LogData;
  completed: CompletedData;
  failed: FailedData;
  cancelled: FailedData;
}

export type JobEventType = keyof EventDataMap;

export const JOB_EVENT_TYPES: readonly JobEventType[] = [
  'status_change',
  'progress',
  'log',
  'completed',
  'failed',
  'cancelled',
];

/** The canonical envelope: `{"type", "job_id", "seq", "ts", "data"}`. */
export type JobEvent = {
  [T in JobEventType]: { type: T; job_id: string; seq: number; ts: string; data: EventDataMap[T] };
}[JobEventType];

/** The first message of a stream of one job (SSE `event: snapshot`, whose `id:` is the job's
 * `seq`, and the WebSocket's first text message): the canonical envelope around the whole job. */
export interface JobSnapshotMessage {
  type: 'snapshot';
  job_id: string;
  seq: number;
  ts: string;
  data: Job;
}

/** The first message of the all-jobs stream (SSE and WebSocket): the caller's recent jobs, and
 * the stream's `cursor` to resume from (also the SSE `id:`). */
export interface JobsSnapshotMessage {
  type: 'snapshot';
  job_id: null;
  seq: null;
  cursor: number;
  ts: string;
  data: { items: Job[] };
}

export function isTerminalEvent(event: Pick<JobEvent, 'type'>): boolean {
  return event.type === 'completed' || event.type === 'failed' || event.type === 'cancelled';
}

export interface LogEntry {
  seq: number;
  ts: string;
  level: string;
  message: string;
  step: number | null;
}

export interface JobPage {
  items: Job[];
  next_cursor: string | null;
}

/** `GET /api/v1/jobs/{id}/events` with `Accept: application/json`: the envelopes the SSE stream
 * sends after `after_seq` (a lone `snapshot` without it, or when the log no longer keeps them),
 * the `after_seq` of the next request, and whether the page reaches the job's terminal event. */
export interface EventsPage {
  events: (JobEvent | JobSnapshotMessage)[];
  next_seq: number;
  done: boolean;
}

export interface EventsPageOptions extends RequestOptions {
  /** The events after this seq (none given: the job's snapshot). */
  afterSeq?: number;
  /** Long-poll: wait up to this many seconds for an event after `afterSeq`. */
  wait?: number;
}

/** One entry of `GET /api/v1/kinds`. */
export interface JobKind {
  name: string;
  description?: string;
  params_schema?: JsonSchema;
}

export interface JsonSchema {
  type?: string | string[];
  title?: string;
  description?: string;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  enum?: unknown[];
  const?: unknown;
  default?: unknown;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  minLength?: number;
  maxLength?: number;
  format?: string;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  allOf?: JsonSchema[];
  $ref?: string;
  $defs?: Record<string, JsonSchema>;
  definitions?: Record<string, JsonSchema>;
  [key: string]: unknown;
}

/** How a watcher is connected right now. */
export type ConnectionState = 'connecting' | 'open' | 'reconnecting' | 'closed';

/** The ways a watcher can follow a job, in the order it tries them by default. */
export type TransportName = 'sse' | 'eventsource' | 'websocket' | 'poll';

// -- What the client is given, and how it asks -----------------------------------------------

/** A token, or a function asked each time one is needed (so a sign-in takes effect at once). */
export type TokenSource = string | null | undefined | (() => string | null | undefined);

export type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

/** The part of the WebSocket API the client uses. */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string; wasClean?: boolean }) => void) | null;
  onerror: ((event: unknown) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

/** The part of the EventSource API the client uses. */
export interface EventSourceLike {
  readonly readyState: number;
  onopen: ((event: unknown) => void) | null;
  onerror: ((event: unknown) => void) | null;
  addEventListener(type: string, listener: (event: { data: string; lastEventId?: string; type: string }) => void): void;
  close(): void;
}
export type EventSourceConstructor = new (url: string, init?: { withCredentials?: boolean }) => EventSourceLike;

export interface RequestOptions {
  signal?: AbortSignal;
  headers?: Record<string, string>;
}

export interface ListJobsOptions extends RequestOptions {
  status?: JobStatus;
  kind?: string;
  limit?: number;
  cursor?: string | null;
}

export interface GetJobOptions extends RequestOptions {
  /** Long-poll: wait up to this many seconds for the job to move past `afterSeq`. */
  wait?: number;
  afterSeq?: number;
}

/** A URL query: `undefined`, `null` and `''` are left out, a list is joined with commas. */
export type Query = Record<string, string | number | boolean | null | undefined | readonly (string | number)[]>;

/** How a watch connects, reconnects and falls back (`DEFAULT_WATCH_CONFIG` in `watch.ts`). */
export interface WatchConfig {
  /** Transports in order of preference; unavailable ones are skipped. */
  transports: TransportName[];
  /** First reconnect delay (ms) until the server sends a `retry:`. */
  initialRetryDelay: number;
  /** Backoff ceiling (ms). */
  maxRetryDelay: number;
  /** Failed connects in a row (nothing delivered) before moving to the next transport. */
  maxFailures: number;
  /** When a stream must deliver at once (a snapshot, a replay) and delivers nothing for this
   * long after opening (ms), it is treated as buffered and the next transport is tried. */
  firstEventTimeout: number;
  /** A fetch-SSE stream silent this long (no event, no `: ping`) is dead and is reopened (ms). */
  idleTimeout: number;
  /** A connection not open after this long is abandoned (ms). */
  connectTimeout: number;
  /** Polling: the least time between two polls (ms). */
  pollInterval: number;
  /** Polling: the `wait` of a long-poll (s). */
  longPollSeconds: number;
  /** Random numbers in [0, 1) for jitter; injectable for tests. */
  random: () => number;
}
