/**
 * Folding events into a job snapshot, the same way the server's `Job.apply` does
 * (`src/jobstream/models.py`), so that a snapshot plus the events after it gives exactly the
 * snapshot the server would send next. An event at or below the snapshot's `seq` is already in it
 * and changes nothing: that is what makes a resumed stream safe to replay.
 */

import type { Job, JobEvent, JobSnapshotMessage, JobStatus, JobsSnapshotMessage, LogEntry } from './types.js';

const TERMINAL_EVENT_STATUS: Record<string, JobStatus> = {
  completed: 'completed',
  failed: 'failed',
  cancelled: 'cancelled',
};

/** The snapshot after `event`; the same object when the event is already folded in. */
export function applyEvent(job: Job, event: JobEvent): Job {
  if (event.seq <= job.seq) return job;
  const next: Job = { ...job, seq: event.seq, updated_at: event.ts };
  // The server sends `state` as "the handler's label, or else the status": a state equal to the
  // old status is the default one, so it follows the status.
  const stateFollowsStatus = job.state === null || job.state === job.status;
  switch (event.type) {
    case 'status_change': {
      const status = event.data.new_status;
      next.status = status;
      if (stateFollowsStatus) next.state = status;
      if (status === 'running') next.started_at = event.ts;
      if (status === 'queued') next.eta_seconds = null;
      break;
    }
    case 'progress': {
      const data = event.data;
      if ('progress' in data && typeof data.progress === 'number') next.progress = data.progress;
      if ('current_step' in data) next.current_step = data.current_step ?? null;
      if ('total_steps' in data) next.total_steps = data.total_steps ?? null;
      if ('step_name' in data) next.step_name = data.step_name ?? null;
      if ('state' in data) next.state = data.state ?? job.status;
      if ('message' in data) next.message = data.message ?? null;
      next.eta_seconds = data.eta_seconds ?? null;
      break;
    }
    case 'log': {
      if (typeof event.data.message === 'string') next.message = event.data.message;
      break;
    }
    case 'completed':
    case 'failed':
    case 'cancelled': {
      const status = TERMINAL_EVENT_STATUS[event.type] as JobStatus;
      next.status = status;
      if (stateFollowsStatus) next.state = status;
      next.finished_at = event.ts;
      next.eta_seconds = null;
      if (event.type === 'completed') {
        next.progress = 100;
        next.result = event.data.result ?? null;
        if (job.total_steps !== null) next.current_step = job.total_steps;
      } else {
        next.error = typeof event.data.message === 'string' ? event.data.message : null;
      }
      if (typeof event.data.message === 'string') next.message = event.data.message;
      break;
    }
    default:
      // An event type this client does not know: only seq and updated_at move.
      break;
  }
  return next;
}

/**
 * A job built from its first event (a `status_change` from `null` to `queued`, whose data holds
 * `kind` and `created_at`), for the all-jobs stream where a new job appears without a snapshot.
 */
export function jobFromFirstEvent(event: JobEvent): Job | null {
  if (event.type !== 'status_change' || event.data.old_status !== null) return null;
  const data = event.data;
  const createdAt = typeof data.created_at === 'string' ? data.created_at : event.ts;
  const skeleton: Job = {
    id: event.job_id,
    kind: typeof data.kind === 'string' ? data.kind : 'unknown',
    owner: typeof data['owner'] === 'string' ? (data['owner'] as string) : '',
    params: isRecord(data['params']) ? (data['params'] as Record<string, unknown>) : {},
    status: 'queued',
    state: null,
    progress: 0,
    current_step: null,
    total_steps: null,
    step_name: null,
    message: null,
    eta_seconds: null,
    result: null,
    artifact: null,
    error: null,
    cancel_requested: false,
    created_at: createdAt,
    started_at: null,
    updated_at: createdAt,
    finished_at: null,
    seq: event.seq - 1,
  };
  return applyEvent(skeleton, event);
}

/** The newer of two snapshots of the same job; on equal `seq` the incoming one (it may carry
 * fields that change without an event, like `cancel_requested`). Links are kept. */
export function mergeSnapshot(current: Job | null | undefined, incoming: Job): Job {
  if (!current) return incoming;
  if (incoming.seq < current.seq) return current;
  if (!incoming.links && current.links) return { ...incoming, links: current.links };
  return incoming;
}

export function logEntryFromEvent(event: JobEvent): LogEntry | null {
  if (event.type !== 'log') return null;
  return {
    seq: event.seq,
    ts: event.ts,
    level: typeof event.data.level === 'string' ? event.data.level : 'info',
    message: typeof event.data.message === 'string' ? event.data.message : String(event.data.message ?? ''),
    step: typeof event.data.step === 'number' ? event.data.step : null,
  };
}

/** The job of a `snapshot` message: the canonical envelope `{"type": "snapshot", "job_id",
 * "seq", "ts", "data": <job>}`. (A bare job object, what servers before the envelope sent on
 * SSE, is taken too.) Null when it is neither. */
export function snapshotJob(value: unknown): Job | null {
  if (isRecord(value) && value['type'] === 'snapshot' && isJob(value['data'])) return value['data'];
  return isJob(value) ? value : null;
}

/** The jobs of the all-jobs stream's `snapshot` message, `{"type": "snapshot", "job_id": null,
 * "seq": null, "cursor", "ts", "data": {"items": [...]}}` (or a bare `{"items": [...]}`, as
 * older servers sent on SSE). Null when it is neither. */
export function snapshotItems(value: unknown): Job[] | null {
  const body = isRecord(value) && value['type'] === 'snapshot' ? value['data'] : value;
  if (!isRecord(body) || !Array.isArray(body['items'])) return null;
  return body['items'].filter(isJob);
}

/** A job in the canonical `snapshot` envelope (what a poll hands the watch, as a stream would). */
export function jobSnapshotMessage(job: Job): JobSnapshotMessage {
  return { type: 'snapshot', job_id: job.id, seq: job.seq, ts: job.updated_at, data: job };
}

/** Jobs in the all-jobs `snapshot` envelope (a poll of the list; it has no cursor: 0). */
export function jobsSnapshotMessage(items: Job[], ts: string): JobsSnapshotMessage {
  return { type: 'snapshot', job_id: null, seq: null, cursor: 0, ts, data: { items } };
}

/** Is this parsed JSON a canonical envelope? */
export function isJobEvent(value: unknown): value is JobEvent {
  if (!isRecord(value)) return false;
  return (
    typeof value['type'] === 'string' &&
    typeof value['job_id'] === 'string' &&
    typeof value['seq'] === 'number' &&
    isRecord(value['data'])
  );
}

/** Is this parsed JSON a job object? */
export function isJob(value: unknown): value is Job {
  return isRecord(value) && typeof value['id'] === 'string' && typeof value['status'] === 'string' && typeof value['seq'] === 'number';
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
