import { describe, expect, it } from 'vitest';

import { applyEvent, jobFromFirstEvent, mergeSnapshot } from '../src/reduce.js';
import type { Job, JobEvent } from '../src/types.js';

const base: Job = {
  id: 'j1',
  kind: 'pdf',
  owner: 'alice',
  params: { pages: 12 },
  status: 'queued',
  state: 'queued',
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
  created_at: '2026-11-23T10:00:00.000Z',
  started_at: null,
  updated_at: '2026-11-23T10:00:00.000Z',
  finished_at: null,
  seq: 1,
};

let clock = 0;
function ev<T extends JobEvent['type']>(type: T, seq: number, data: Extract<JobEvent, { type: T }>['data']): JobEvent {
  clock += 1;
  return { type, job_id: 'j1', seq, ts: `2026-11-23T10:00:0${clock % 10}.000Z`, data } as JobEvent;
}

describe('applyEvent (the server Job.apply rules)', () => {
  it('follows a job from queued to completed', () => {
    let job = base;
    job = applyEvent(job, ev('status_change', 2, { old_status: 'queued', new_status: 'running' }));
    expect(job.status).toBe('running');
    expect(job.state).toBe('running');
    expect(job.started_at).not.toBeNull();
    job = applyEvent(
      job,
      ev('progress', 3, {
        progress: 41.5,
        current_step: 5,
        total_steps: 12,
        step_name: 'AI Upscaling',
        state: 'rendering',
        message: 'upscaling',
        eta_seconds: 12.5,
      }),
    );
    expect(job).toMatchObject({
      progress: 41.5,
      current_step: 5,
      total_steps: 12,
      step_name: 'AI Upscaling',
      state: 'rendering',
      message: 'upscaling',
      eta_seconds: 12.5,
      seq: 3,
    });
    job = applyEvent(job, ev('log', 4, { level: 'info', message: 'page 5 done', step: 5 }));
    expect(job.message).toBe('page 5 done');
    job = applyEvent(job, ev('completed', 5, { result: { page_count: 12 }, output_path: '/x', elapsed_seconds: 3 }));
    expect(job).toMatchObject({
      status: 'completed',
      state: 'rendering', // a handler's label stays, as on the server
      progress: 100,
      current_step: 12,
      result: { page_count: 12 },
      eta_seconds: null,
      seq: 5,
    });
    expect(job.finished_at).not.toBeNull();
  });

  it('ignores an event already folded in', () => {
    const job = { ...base, seq: 5 };
    expect(applyEvent(job, ev('log', 5, { message: 'old' }))).toBe(job);
    expect(applyEvent(job, ev('log', 3, { message: 'older' }))).toBe(job);
  });

  it('records the error of a failed or cancelled job', () => {
    const failed = applyEvent(base, ev('failed', 2, { message: 'Pipeline error: PDF extraction failed' }));
    expect(failed).toMatchObject({ status: 'failed', state: 'failed', error: 'Pipeline error: PDF extraction failed' });
    const cancelled = applyEvent(base, ev('cancelled', 2, { message: 'Cancelled by user' }));
    expect(cancelled).toMatchObject({ status: 'cancelled', error: 'Cancelled by user', message: 'Cancelled by user' });
  });

  it('a progress without state falls back to the status; a requeue clears the ETA', () => {
    let job = applyEvent(base, ev('status_change', 2, { old_status: 'queued', new_status: 'running' }));
    job = applyEvent(job, ev('progress', 3, { progress: 10, state: null, eta_seconds: 50 }));
    expect(job.state).toBe('running');
    expect(job.eta_seconds).toBe(50);
    job = applyEvent(job, ev('status_change', 4, { old_status: 'running', new_status: 'queued' }));
    expect(job.status).toBe('queued');
    expect(job.eta_seconds).toBeNull();
  });

  it('builds a job from its first event', () => {
    const first: JobEvent = {
      type: 'status_change',
      job_id: 'new',
      seq: 1,
      ts: '2026-11-23T10:00:01.000Z',
      data: { old_status: null, new_status: 'queued', kind: 'video', created_at: '2026-11-23T10:00:01.000Z' },
    };
    const job = jobFromFirstEvent(first);
    expect(job).toMatchObject({ id: 'new', kind: 'video', status: 'queued', state: 'queued', seq: 1, progress: 0 });
    expect(jobFromFirstEvent({ ...first, data: { old_status: 'queued', new_status: 'running' } })).toBeNull();
  });

  it('keeps the newer snapshot, and the links', () => {
    const withLinks = { ...base, seq: 4, links: { self: '/api/v1/jobs/j1' } };
    expect(mergeSnapshot(withLinks, { ...base, seq: 3 })).toBe(withLinks);
    const merged = mergeSnapshot(withLinks, { ...base, seq: 4, cancel_requested: true });
    expect(merged.cancel_requested).toBe(true);
    expect(merged.links).toEqual({ self: '/api/v1/jobs/j1' });
  });
});
