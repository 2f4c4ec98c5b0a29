/**
 * `JobsWatch`: a live list of every job the caller can see, from `GET /api/v1/events`.
 *
 * A fresh connection starts with a `snapshot` of recent jobs (the canonical envelope
 * `{"type": "snapshot", "job_id": null, "seq": null, "cursor", "ts", "data": {"items"}}`); after
 * that, envelopes of any job. The stream's position is a per-owner cursor (the SSE `id:`, the
 * `cursor` of each WebSocket message), resent on reconnect (`Last-Event-ID`, `?after_cursor=`);
 * each job's own `seq` deduplicates what a resume replays. A job first seen through its creation
 * event (`status_change` from null, with `kind` and `created_at`) is built from it; one first
 * seen mid-life is fetched, and its events are held until the snapshot arrives. Before its first
 * WebSocket connection the watch lists the jobs (`GET /api/v1/jobs`); polling lists them every
 * `pollInterval`.
 */

import { sleep } from './backoff.js';
import type { JobStreamError } from './errors.js';
import { API_PREFIX } from './paths.js';
import { applyEvent, isJobEvent, isRecord, jobFromFirstEvent, jobsSnapshotMessage, mergeSnapshot, snapshotItems } from './reduce.js';
import type { TransportContext, WireMessage } from './transports/base.js';
import type { ConnectionState, Job, JobEvent, TransportName, WatchConfig } from './types.js';
import { StateStore, StreamRunner, type StreamRequest, type WatchClient } from './watch.js';

export interface JobsWatchHandlers {
  /** The list changed. */
  onJobs?(jobs: readonly Job[]): void;
  /** Each new envelope of any job, once, after it is folded into that job. */
  onEvent?(event: JobEvent, job: Job): void;
  onConnection?(state: ConnectionState, transport: TransportName | null): void;
  onError?(error: JobStreamError): void;
}

export interface WatchJobsOptions extends JobsWatchHandlers, Partial<WatchConfig> {
  /** How many jobs to keep (newest first); default 200. */
  maxJobs?: number;
  /** How many jobs a resync or a poll fetches; default 50. */
  pageSize?: number;
  signal?: AbortSignal;
  autoStart?: boolean;
}

export interface JobsWatchState {
  /** Newest first. */
  jobs: readonly Job[];
  connection: ConnectionState;
  transport: TransportName | null;
  error: JobStreamError | null;
}

export class JobsWatch extends StateStore<JobsWatchState> {
  private readonly runner: StreamRunner;
  private readonly handlers: JobsWatchHandlers;
  private readonly maxJobs: number;
  private readonly pageSize: number;
  private readonly byId = new Map<string, Job>();
  /** Events of jobs being fetched, applied once their snapshot is in. */
  private readonly pending = new Map<string, JobEvent[]>();
  private cursor: string | undefined;

  constructor(
    private readonly client: WatchClient,
    options: WatchJobsOptions = {},
  ) {
    super({ jobs: [], connection: 'connecting', transport: null, error: null });
    this.handlers = options;
    this.maxJobs = options.maxJobs ?? 200;
    this.pageSize = options.pageSize ?? 50;
    const config: WatchConfig = { ...client.watchDefaults };
    for (const key of Object.keys(config) as (keyof WatchConfig)[]) {
      if (options[key] !== undefined) (config as unknown as Record<string, unknown>)[key] = options[key];
    }
    this.runner = new StreamRunner(
      client,
      {
        sseRequest: (): StreamRequest => ({ path: `${API_PREFIX}/events`, lastEventId: this.cursor }),
        webSocketRequest: (): StreamRequest => ({ path: `${API_PREFIX}/ws`, query: { after_cursor: this.cursor } }),
        prepare: async (transport, signal) => {
          if (transport === 'websocket' && this.cursor === undefined) await this.resync(signal);
        },
        poll: (ctx, pollConfig) => this.poll(ctx, pollConfig),
        handle: (message) => this.handleMessage(message),
        expectsImmediateData: (transport) => transport !== 'websocket' && this.cursor === undefined,
        done: () => false,
        probe: async (signal) => {
          await this.client.list({ limit: 1, signal });
        },
      },
      config,
      {
        onConnection: (connection, transport) => {
          const state = this.getState();
          if (state.connection === connection && (transport === null || state.transport === transport)) return;
          this.setState({ connection, transport: transport ?? state.transport });
          this.handlers.onConnection?.(connection, transport);
        },
        onFatal: (error) => {
          this.setState({ error });
          this.handlers.onError?.(error);
        },
      },
    );
    if (options.signal) {
      if (options.signal.aborted) this.runner.close();
      else options.signal.addEventListener('abort', () => this.close(), { once: true });
    }
    if (options.autoStart ?? true) this.start();
  }

  get jobs(): readonly Job[] {
    return this.getState().jobs;
  }

  start(): void {
    this.runner.start();
  }

  close(): void {
    if (this.runner.closed) return;
    this.runner.close();
    if (this.getState().connection !== 'closed') {
      this.setState({ connection: 'closed' });
      this.handlers.onConnection?.('closed', null);
    }
  }

  /** Puts a job in the list (e.g. the answer of `submit`) if it is newer than what is there. */
  upsert(job: Job): void {
    if (this.mergeJob(job)) this.publish();
  }

  private mergeJob(job: Job): boolean {
    const current = this.byId.get(job.id);
    const merged = mergeSnapshot(current, job);
    if (merged === current) return false;
    if (current && merged.seq === current.seq && JSON.stringify(merged) === JSON.stringify(current)) return false;
    this.byId.set(job.id, merged);
    return true;
  }

  private publish(): void {
    let jobs = [...this.byId.values()].sort(newestFirst);
    if (jobs.length > this.maxJobs) {
      for (const dropped of jobs.slice(this.maxJobs)) this.byId.delete(dropped.id);
      jobs = jobs.slice(0, this.maxJobs);
    }
    this.setState({ jobs });
    this.handlers.onJobs?.(jobs);
  }

  private handleMessage(message: WireMessage): void {
    let value = message.value;
    if (value === undefined) {
      try {
        value = JSON.parse(message.data) as unknown;
      } catch {
        value = undefined;
      }
    }
    if (value !== undefined) {
      if (message.event === 'snapshot') {
        let changed = false;
        for (const job of snapshotItems(value) ?? []) if (this.mergeJob(job)) changed = true;
        if (changed) this.publish();
      } else if (message.event !== 'timeout' && isJobEvent(value)) {
        this.handleEvent(value);
      }
    }
    // The cursor moves only once the message is handled, so a resume never skips it.
    if (message.id) this.cursor = message.id;
    else if (isRecord(value) && typeof value['cursor'] === 'number' && value['cursor'] > 0) this.cursor = String(value['cursor']);
  }

  private handleEvent(event: JobEvent): void {
    const held = this.pending.get(event.job_id);
    if (held) {
      held.push(event);
      return;
    }
    const current = this.byId.get(event.job_id);
    if (current) {
      if (event.seq <= current.seq) return; // already folded (a resume replay)
      const next = applyEvent(current, event);
      this.byId.set(event.job_id, next);
      this.publish();
      this.handlers.onEvent?.(event, next);
      return;
    }
    const created = jobFromFirstEvent(event);
    if (created) {
      this.byId.set(created.id, created);
      this.publish();
      this.handlers.onEvent?.(event, created);
      return;
    }
    // A job we have not seen start: fetch it, holding its events meanwhile.
    this.pending.set(event.job_id, [event]);
    void this.client
      .get(event.job_id, { signal: this.runner.signal })
      .then((job) => {
        const events = this.pending.get(event.job_id) ?? [];
        this.pending.delete(event.job_id);
        let merged = mergeSnapshot(this.byId.get(job.id), job);
        for (const held of events.sort((a, b) => a.seq - b.seq)) {
          if (held.seq <= merged.seq) continue;
          merged = applyEvent(merged, held);
          this.handlers.onEvent?.(held, merged);
        }
        this.byId.set(merged.id, merged);
        this.publish();
      })
      .catch(() => {
        this.pending.delete(event.job_id);
      });
  }

  private async resync(signal: AbortSignal): Promise<void> {
    const page = await this.client.list({ limit: this.pageSize, signal });
    let changed = false;
    for (const job of page.items) if (this.mergeJob(job)) changed = true;
    if (changed) this.publish();
  }

  private async poll(ctx: TransportContext, config: WatchConfig): Promise<void> {
    let opened = false;
    while (!ctx.signal.aborted) {
      const startedAt = Date.now();
      const page = await this.client.list({ limit: this.pageSize, signal: ctx.signal });
      if (!opened) {
        opened = true;
        ctx.onOpen();
      }
      ctx.onActivity();
      ctx.onMessage({ event: 'snapshot', data: '', value: jobsSnapshotMessage(page.items, new Date().toISOString()) });
      const elapsed = Date.now() - startedAt;
      await sleep(Math.max(0, config.pollInterval - elapsed), ctx.signal);
    }
  }
}

function newestFirst(a: Job, b: Job): number {
  const byTime = Date.parse(b.created_at) - Date.parse(a.created_at);
  if (byTime !== 0 && Number.isFinite(byTime)) return byTime;
  return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
}
