/**
 * `JobWatch`: follows one job from its current state to its terminal event.
 *
 * Exactly-once delivery: every envelope carries the job's `seq`, and the watch keeps the highest
 * one it has delivered. A reconnect resumes from it (`Last-Event-ID` on SSE, `after_seq` on the
 * WebSocket and on long-polls), and anything at or below it (a replay overlapping what was already
 * seen) is dropped, so `onEvent` sees each event once, in order. The job snapshot is folded with
 * `applyEvent`, the server's own rules.
 *
 * With `replay` (the default) the watch first fetches the snapshot, then opens the stream from
 * seq 0: the server replays the job's retained events, so the log is complete from the start,
 * while the snapshot (already past those events) does not move until new ones arrive.
 */

import { sleep } from './backoff.js';
import type { JobStreamError } from './errors.js';
import { jobPath } from './paths.js';
import {
  applyEvent,
  isJobEvent,
  jobFromFirstEvent,
  jobSnapshotMessage,
  logEntryFromEvent,
  mergeSnapshot,
  snapshotJob,
} from './reduce.js';
import type { TransportContext, WireMessage } from './transports/base.js';
import {
  isTerminalEvent,
  isTerminalStatus,
  type ConnectionState,
  type EventsPage,
  type Job,
  type JobEvent,
  type LogEntry,
  type TransportName,
  type WatchConfig,
} from './types.js';
import { StateStore, StreamRunner, type StreamRequest, type StreamTarget, type WatchClient } from './watch.js';

export interface JobWatchHandlers {
  /** The job changed (a snapshot or a folded event). */
  onJob?(job: Job, event: JobEvent | null): void;
  /** Each envelope, exactly once, in `seq` order, after it is folded into `job`. */
  onEvent?(event: JobEvent, job: Job): void;
  onLog?(entry: LogEntry, job: Job): void;
  /** A whole snapshot arrived (first connect, poll, or a resume past the retained log). */
  onSnapshot?(job: Job): void;
  onConnection?(state: ConnectionState, transport: TransportName | null): void;
  /** The watch stopped on an error it will not retry (401, unknown job). */
  onError?(error: JobStreamError): void;
  /** The job reached `completed`, `failed` or `cancelled`; the watch is closed. */
  onDone?(job: Job): void;
}

export interface WatchJobOptions extends JobWatchHandlers, Partial<WatchConfig> {
  /** Fetch the job's event history too, so `logs` holds every retained line (default true). */
  replay?: boolean;
  /** A snapshot already in hand (e.g. from `submit`). */
  initialJob?: Job;
  /** Aborting it closes the watch. */
  signal?: AbortSignal;
  /** Start connecting at once (default true). */
  autoStart?: boolean;
}

export interface JobWatchState {
  job: Job | null;
  /** Every log line seen, in `seq` order. */
  logs: readonly LogEntry[];
  connection: ConnectionState;
  transport: TransportName | null;
  /** Why the watch stopped, when it stopped on an error. */
  error: JobStreamError | null;
  /** The job is finished and the watch closed. */
  done: boolean;
}

export class JobWatch extends StateStore<JobWatchState> {
  readonly id: string;
  private readonly runner: StreamRunner;
  private readonly handlers: JobWatchHandlers;
  private readonly replay: boolean;
  /** The server has no events page: polling reads snapshots. */
  private snapshotsOnly = false;
  /** Highest envelope seq handed to `onEvent`; the resume point. */
  private delivered: number;
  private finishedNotified = false;
  private doneWaiters: { resolve: (job: Job) => void; reject: (error: unknown) => void }[] = [];

  constructor(
    private readonly client: WatchClient,
    id: string,
    options: WatchJobOptions = {},
  ) {
    const initial = options.initialJob && options.initialJob.id === id ? options.initialJob : null;
    super({ job: initial, logs: [], connection: 'connecting', transport: null, error: null, done: false });
    this.id = id;
    this.handlers = options;
    this.replay = options.replay ?? true;
    this.delivered = initial && !this.replay ? initial.seq : 0;
    const config: WatchConfig = { ...client.watchDefaults };
    for (const key of Object.keys(config) as (keyof WatchConfig)[]) {
      if (options[key] !== undefined) (config as unknown as Record<string, unknown>)[key] = options[key];
    }
    this.runner = new StreamRunner(client, this.target(), config, {
      onConnection: (connection, transport) => {
        if (connection === 'closed') this.checkDone();
        this.setConnection(connection, transport);
        if (connection === 'closed') this.settle();
      },
      onFatal: (error) => {
        this.setState({ error });
        this.handlers.onError?.(error);
      },
    });
    if (options.signal) {
      if (options.signal.aborted) this.runner.close();
      else options.signal.addEventListener('abort', () => this.close(), { once: true });
    }
    if (options.autoStart ?? true) this.start();
  }

  get job(): Job | null {
    return this.getState().job;
  }

  get logs(): readonly LogEntry[] {
    return this.getState().logs;
  }

  get connection(): ConnectionState {
    return this.getState().connection;
  }

  get transport(): TransportName | null {
    return this.getState().transport;
  }

  start(): void {
    this.runner.start();
  }

  /** Stops watching (idempotent). */
  close(): void {
    this.runner.close();
    this.setConnection('closed', null);
    this.settle();
  }

  private setConnection(connection: ConnectionState, transport: TransportName | null): void {
    const state = this.getState();
    if (state.connection === connection && (transport === null || state.transport === transport)) return;
    this.setState({ connection, transport: transport ?? state.transport });
    this.handlers.onConnection?.(connection, transport);
  }

  /** Requests cancellation; the returned job (with `cancel_requested`) is merged in. */
  async cancel(): Promise<Job> {
    const job = await this.client.cancel(this.id);
    this.applySnapshot(job, false);
    return job;
  }

  /** Resolves with the final job once it is finished; rejects if the watch stops first. */
  finished(): Promise<Job> {
    const { job, done, error, connection } = this.getState();
    if (done && job) return Promise.resolve(job);
    if (this.runner.closed || connection === 'closed') {
      return Promise.reject(error ?? new Error('the watch was closed'));
    }
    return new Promise((resolve, reject) => this.doneWaiters.push({ resolve, reject }));
  }

  /** Takes a snapshot obtained elsewhere (e.g. the answer of a request) if it is not older. */
  offerSnapshot(job: Job): void {
    this.applySnapshot(job, false);
  }

  /** A snapshot from the stream (or a poll) also moves the resume point: the server says the
   * events up to its `seq` are in it. */
  private applySnapshot(job: Job, fromStream: boolean): void {
    if (job.id !== this.id) return;
    const current = this.getState().job;
    const merged = mergeSnapshot(current, job);
    if (fromStream && merged.seq > this.delivered) this.delivered = merged.seq;
    if (merged === current || (current && sameSnapshot(current, merged))) {
      this.checkDone();
      return;
    }
    this.setState({ job: merged });
    this.handlers.onSnapshot?.(merged);
    this.handlers.onJob?.(merged, null);
    this.checkDone();
  }

  private settle(): void {
    const { job, done, error } = this.getState();
    const waiters = this.doneWaiters;
    this.doneWaiters = [];
    for (const waiter of waiters) {
      if (done && job) waiter.resolve(job);
      else waiter.reject(error ?? new Error('the watch was closed'));
    }
  }

  private isDone(): boolean {
    const job = this.getState().job;
    return job !== null && isTerminalStatus(job.status) && this.delivered >= job.seq;
  }

  private checkDone(): void {
    if (this.finishedNotified || !this.isDone()) return;
    this.finishedNotified = true;
    const job = this.getState().job as Job;
    this.runner.close();
    this.setState({ done: true });
    this.setConnection('closed', null);
    this.handlers.onDone?.(job);
    this.settle();
  }

  private handleEvent(event: JobEvent): void {
    if (event.job_id !== this.id || event.seq <= this.delivered) return;
    this.delivered = event.seq;
    const state = this.getState();
    let job = state.job;
    job = job === null ? jobFromFirstEvent(event) : applyEvent(job, event);
    const entry = logEntryFromEvent(event);
    const patch: Partial<JobWatchState> = {};
    if (job !== state.job) patch.job = job;
    if (entry) patch.logs = [...state.logs, entry];
    if (patch.job !== undefined || patch.logs !== undefined) this.setState(patch);
    if (job) {
      this.handlers.onEvent?.(event, job);
      if (entry) this.handlers.onLog?.(entry, job);
      if (patch.job) this.handlers.onJob?.(job, event);
    }
    if (isTerminalEvent(event) && job && job.seq === event.seq) void this.refreshFinal(event.seq);
    this.checkDone();
  }

  /** The terminal event lacks fields the snapshot has (the artifact): fetch the final snapshot.
   * The server may publish an event before it stores it, so an older answer is retried a few
   * times. */
  private async refreshFinal(seq: number): Promise<void> {
    for (let attempt = 0; attempt < 4; attempt += 1) {
      try {
        const fresh = await this.client.get(this.id);
        this.applySnapshot(fresh, false);
        if (fresh.seq >= seq) return;
      } catch {
        return;
      }
      await sleep(150 * 2 ** attempt);
    }
  }

  private target(): StreamTarget {
    const path = jobPath(this.id);
    return {
      sseRequest: (): StreamRequest => ({
        path: `${path}/events`,
        lastEventId: this.getState().job === null ? undefined : String(this.delivered),
      }),
      webSocketRequest: (): StreamRequest => ({ path: `${path}/ws`, query: { after_seq: this.delivered } }),
      prepare: async (transport, signal) => {
        if (this.getState().job !== null) return;
        // SSE sends a snapshot first by itself; every other way (and a replay) starts from one.
        if ((transport === 'sse' || transport === 'eventsource') && !this.replay) return;
        const job = await this.client.get(this.id, { signal });
        this.applySnapshot(job, !this.replay);
      },
      poll: (ctx, config) => this.poll(ctx, config),
      handle: (message) => this.handleMessage(message),
      expectsImmediateData: () => {
        const job = this.getState().job;
        return job === null || this.delivered < job.seq;
      },
      done: () => this.isDone(),
      probe: async (signal) => {
        this.applySnapshot(await this.client.get(this.id, { signal }), false);
      },
    };
  }

  private handleMessage(message: WireMessage): void {
    let value = message.value;
    if (value === undefined) {
      try {
        value = JSON.parse(message.data) as unknown;
      } catch {
        return;
      }
    }
    if (message.event === 'snapshot') {
      const job = snapshotJob(value);
      if (job) this.applySnapshot(job, true);
      return;
    }
    if (message.event === 'timeout') return; // the server closes next; the runner resumes
    if (isJobEvent(value)) this.handleEvent(value);
  }

  /** Polling a server without the events page: the job's snapshot, long-polled (no log lines
   * arrive this way). */
  private async pollSnapshots(ctx: TransportContext, config: WatchConfig): Promise<void> {
    let etag: string | null = null;
    let opened = false;
    while (!ctx.signal.aborted && !this.isDone()) {
      const startedAt = Date.now();
      const requestAbort = new AbortController();
      const forward = (): void => requestAbort.abort();
      ctx.signal.addEventListener('abort', forward, { once: true });
      const timer = setTimeout(forward, (config.longPollSeconds + 15) * 1000);
      try {
        const known = this.getState().job;
        const answer = await this.client.getIfChanged(this.id, etag, {
          signal: requestAbort.signal,
          wait: config.longPollSeconds,
          afterSeq: known?.seq ?? 0,
        });
        if (!opened) {
          opened = true;
          ctx.onOpen();
        }
        ctx.onActivity();
        etag = answer.etag;
        if (answer.job) ctx.onMessage({ event: 'snapshot', data: '', value: jobSnapshotMessage(answer.job) });
      } finally {
        clearTimeout(timer);
        ctx.signal.removeEventListener('abort', forward);
      }
      if (this.isDone()) return;
      const elapsed = Date.now() - startedAt;
      if (elapsed < config.pollInterval) await sleep(config.pollInterval - elapsed, ctx.signal);
    }
  }

  /** Polling without loss: pages of the job's events after the last seq delivered (the same
   * envelopes as SSE, so a polling watch has the whole log too), each long-polled. */
  private async poll(ctx: TransportContext, config: WatchConfig): Promise<void> {
    if (this.snapshotsOnly) return this.pollSnapshots(ctx, config);
    let opened = false;
    while (!ctx.signal.aborted && !this.isDone()) {
      const startedAt = Date.now();
      const requestAbort = new AbortController();
      const forward = (): void => requestAbort.abort();
      ctx.signal.addEventListener('abort', forward, { once: true });
      const timer = setTimeout(forward, (config.longPollSeconds + 15) * 1000);
      let page: EventsPage;
      try {
        const known = this.getState().job;
        try {
          page = await this.client.events(this.id, {
            signal: requestAbort.signal,
            wait: config.longPollSeconds,
            afterSeq: known === null && !this.replay ? undefined : this.delivered,
          });
        } catch (error) {
          // A server without the page (older, or a proxy that keeps only the stream's route):
          // poll the job's snapshot instead, as before.
          if (known !== null && isJobStreamError(error) && (error.status === 404 || error.code === 'protocol')) {
            this.snapshotsOnly = true;
            return this.pollSnapshots(ctx, config);
          }
          throw error;
        }
        if (!opened) {
          opened = true;
          ctx.onOpen();
        }
        ctx.onActivity();
        for (const envelope of page.events) ctx.onMessage({ event: envelope.type, data: '', value: envelope });
      } finally {
        clearTimeout(timer);
        ctx.signal.removeEventListener('abort', forward);
      }
      if (this.isDone() || page.done) return;
      const elapsed = Date.now() - startedAt;
      if (elapsed < config.pollInterval) await sleep(config.pollInterval - elapsed, ctx.signal);
    }
  }
}

function isJobStreamError(error: unknown): error is JobStreamError {
  return error instanceof Error && error.name === 'JobStreamError';
}

function sameSnapshot(a: Job, b: Job): boolean {
  return a.seq === b.seq && JSON.stringify(a) === JSON.stringify(b);
}
