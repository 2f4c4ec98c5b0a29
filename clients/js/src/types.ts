/**
 * The wire types of jobstream's canonical API (`/api/v1`): the job object, the event envelope
 * shared by SSE, WebSocket and polling, and the data each event type carries.
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
