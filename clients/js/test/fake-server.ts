/**
 * An in-memory stand-in for the jobstream server's canonical API, reached through an injected
 * `fetch`. It keeps each job's event log, serves snapshots, long-polls and SSE streams (one job
 * and all jobs) with resume, and can misbehave on purpose per connection: drop the stream after
 * N events (even in the middle of one), stay silent, buffer everything until the end, answer
 * with the wrong content type or an error status.
 */

import { applyEvent } from '../src/reduce.js';
import type { Job, JobEvent, JobEventType, JobSnapshotMessage, JobsSnapshotMessage } from '../src/types.js';

export interface StreamPlan {
  /** Close the stream after this many events (snapshot included). */
  dropAfter?: number;
  /** When dropping, first send half of the next event's bytes. */
  cutMidEvent?: boolean;
  /** Answer with this status (and a JSON `detail`) instead of a stream. */
  status?: number;
  /** Answer 200 with this content type and an HTML body. */
  contentType?: string;
  /** Open the stream and send nothing, ever. */
  silent?: boolean;
  /** Hold every byte until the stream ends (a buffering proxy). */
  buffered?: boolean;
  /** Replay from this many events before the asked resume point (an overlapping replay). */
  overlap?: number;
  /** Send `retry: N` first. */
  retry?: number;
  /** Send the snapshot bare (the job object, or `{items}`), as servers before the envelope did. */
  bareSnapshot?: boolean;
}

export interface SSEConnection {
  url: string;
  lastEventId: string | null;
  authorization: string | null;
  closed: boolean;
}

interface LiveStream {
  jobId: string | null; // null: the all-jobs stream
  push(event: JobEvent, cursor: number): void;
}

const encoder = new TextEncoder();

export class FakeJobServer {
  readonly jobs = new Map<string, Job>();
  readonly logs = new Map<string, { event: JobEvent; cursor: number }[]>();
  readonly requests: { method: string; url: string; headers: Record<string, string> }[] = [];
  readonly sseConnections: SSEConnection[] = [];
  /** Per SSE connection, in order; connections past the end behave. */
  plans: StreamPlan[] = [];
  /** Plans for the all-jobs stream. */
  allPlans: StreamPlan[] = [];
  /** A token required on every request when set. */
  requiredToken: string | null = null;
  /** Every request fails as if the server were unreachable. */
  down = false;
  /** Answer 404 on every stream route (a server without SSE). */
  noStreams = false;
  /** Answer 404 to the JSON page of events (a server older than it: snapshots only). */
  noEventsPage = false;
  /** Split every written chunk at random points (including inside multi-byte characters). */
  splitChunks: (() => number) | null = null;
  private cursor = 0;
  private live = new Set<LiveStream>();
  private open = new Set<{ write: (text: string, isEvent: boolean) => boolean; close: () => void }>();
  private waiters = new Set<() => void>();
  private clock = Date.parse('2026-11-23T10:00:00.000Z');
  private sseCount = 0;
  private allCount = 0;

  readonly fetch = (input: string, init: RequestInit = {}): Promise<Response> => this.handle(input, init);

  now(): string {
    this.clock += 1;
    return new Date(this.clock).toISOString();
  }

  createJob(id: string, kind = 'pdf', params: Record<string, unknown> = {}): Job {
    const ts = this.now();
    const job: Job = {
      id,
      kind,
      owner: 'alice',
      params,
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
      created_at: ts,
      started_at: null,
      updated_at: ts,
      finished_at: null,
      seq: 0,
      links: { self: `/api/v1/jobs/${id}` },
    };
    this.jobs.set(id, job);
    this.logs.set(id, []);
    this.emit(id, 'status_change', { old_status: null, new_status: 'queued', kind, created_at: ts });
    return this.jobs.get(id) as Job;
  }

  emit(id: string, type: JobEventType, data: Record<string, unknown>): JobEvent {
    const job = this.jobs.get(id);
    if (!job) throw new Error(`no job ${id}`);
    const event = { type, job_id: id, seq: job.seq + 1, ts: this.now(), data } as JobEvent;
    const next = applyEvent(job, event);
    this.jobs.set(id, { ...next, links: job.links });
    const cursor = ++this.cursor;
    this.logs.get(id)?.push({ event, cursor });
    for (const stream of [...this.live]) if (stream.jobId === null || stream.jobId === id) stream.push(event, cursor);
    for (const wake of [...this.waiters]) wake();
    return event;
  }

  /** A running job with `steps` progress events and a log line each. */
  runSteps(id: string, steps: number, from = 1): void {
    for (let step = from; step < from + steps; step += 1) {
      this.emit(id, 'progress', {
        progress: step * 5,
        current_step: step,
        total_steps: 20,
        step_name: `Step ${step} ✓ 進捗`,
        state: 'running',
        message: `step ${step}`,
        eta_seconds: 20 - step,
      });
      this.emit(id, 'log', { level: 'info', message: `log ${step} — ünïcødé 🎬`, step });
    }
  }

  /** Live envelopes of one job (for the fake WebSocket). */
  subscribe(id: string, push: (event: JobEvent) => void): () => void {
    const stream: LiveStream = { jobId: id, push: (event) => push(event) };
    this.live.add(stream);
    return () => this.live.delete(stream);
  }

  /** Closes every open stream abruptly, as a server that dies does. */
  dropStreams(): void {
    for (const stream of [...this.open]) stream.close();
  }

  /** The stream time limit: every open stream gets `event: timeout`, then closes. */
  timeoutStreams(): void {
    for (const stream of [...this.open]) {
      stream.write('event: timeout\ndata: {"message": "Stream timeout"}\n\n', false);
      stream.close();
    }
  }

  get openStreams(): number {
    return this.open.size;
  }

  /** The caller's jobs, newest first. */
  recentJobs(): Job[] {
    return [...this.jobs.values()].sort((a, b) => b.created_at.localeCompare(a.created_at));
  }

  /** A job's `snapshot` message, as the server sends it first on SSE and WebSocket. */
  snapshotEnvelope(job: Job): JobSnapshotMessage {
    return { type: 'snapshot', job_id: job.id, seq: job.seq, ts: job.updated_at, data: job };
  }

  /** The all-jobs stream's first message: the recent jobs and the cursor to resume from. */
  feedSnapshotEnvelope(): JobsSnapshotMessage {
    return { type: 'snapshot', job_id: null, seq: null, cursor: this.cursor, ts: this.now(), data: { items: this.recentJobs() } };
  }

  /** Every stored envelope with its all-jobs cursor, in cursor order. */
  feedLog(): { event: JobEvent; cursor: number }[] {
    return [...this.logs.values()].flat().sort((a, b) => a.cursor - b.cursor);
  }

  /** Live envelopes of every job, with their cursor (for the fake all-jobs WebSocket). */
  subscribeAll(push: (event: JobEvent, cursor: number) => void): () => void {
    const stream: LiveStream = { jobId: null, push };
    this.live.add(stream);
    return () => this.live.delete(stream);
  }

  private async handle(input: string, init: RequestInit): Promise<Response> {
    const url = new URL(input, 'http://fake.test');
    const method = (init.method ?? 'GET').toUpperCase();
    const headers = normaliseHeaders(init.headers);
    this.requests.push({ method, url: url.pathname + url.search, headers });
    const signal = init.signal ?? undefined;
    if (signal?.aborted) throw abortError();
    if (this.down) throw new TypeError('fetch failed');

    if (this.requiredToken) {
      const token = headers['authorization']?.replace(/^Bearer /, '') ?? url.searchParams.get('token');
      if (token !== this.requiredToken) return json(401, { detail: 'Not authenticated' });
    }
    const path = url.pathname;
    let match: RegExpMatchArray | null;
    if (method === 'GET' && path === '/api/v1/events') {
      if (this.noStreams) return json(404, { detail: 'Not Found' });
      return this.streamAll(url, headers, signal);
    }
    if (method === 'GET' && path === '/api/v1/jobs') {
      return json(200, { items: this.recentJobs(), next_cursor: null });
    }
    if ((match = path.match(/^\/api\/v1\/jobs\/([^/]+)\/events$/)) && method === 'GET') {
      if (this.noStreams) return json(404, { detail: 'Not Found' });
      const accept = headers['accept'] ?? '';
      if (accept.includes('application/json') && !accept.includes('text/event-stream')) {
        return this.eventsPage(decodeURIComponent(match[1] as string), url, signal);
      }
      return this.streamJob(decodeURIComponent(match[1] as string), url, headers, signal);
    }
    if ((match = path.match(/^\/api\/v1\/jobs\/([^/]+)\/cancel$/)) && method === 'POST') {
      const id = decodeURIComponent(match[1] as string);
      const job = this.jobs.get(id);
      if (!job) return json(404, { detail: 'Job not found' });
      if (['completed', 'failed', 'cancelled'].includes(job.status)) return json(409, { detail: 'Job already finished' });
      this.jobs.set(id, { ...job, cancel_requested: true });
      return json(202, this.jobs.get(id));
    }
    if ((match = path.match(/^\/api\/v1\/jobs\/([^/]+)$/)) && method === 'GET') {
      const id = decodeURIComponent(match[1] as string);
      if (!this.jobs.has(id)) return json(404, { detail: 'Job not found' });
      const wait = Number(url.searchParams.get('wait') ?? 0);
      const after = Number(url.searchParams.get('after_seq') ?? -1);
      if (wait > 0 && after >= 0) await this.waitFor(() => (this.jobs.get(id) as Job).seq > after, wait * 1000, signal);
      const job = this.jobs.get(id) as Job;
      const etag = `"${id}-${job.seq}"`;
      if (headers['if-none-match'] === etag) return new Response(null, { status: 304, headers: { etag } });
      return json(200, job, { etag });
    }
    return json(404, { detail: 'Not Found' });
  }

  /** `GET /api/v1/jobs/{id}/events` as JSON: `{events, next_seq, done}`, long-polled. */
  private async eventsPage(id: string, url: URL, signal: AbortSignal | undefined): Promise<Response> {
    if (this.noEventsPage) return json(404, { detail: 'Not Found' });
    if (!this.jobs.has(id)) return json(404, { detail: 'Job not found' });
    const finished = (): boolean => ['completed', 'failed', 'cancelled'].includes((this.jobs.get(id) as Job).status);
    const raw = url.searchParams.get('after_seq');
    if (raw === null) {
      const job = this.jobs.get(id) as Job;
      return json(200, { events: [this.snapshotEnvelope(job)], next_seq: job.seq, done: finished() });
    }
    const after = Number(raw);
    const wait = Number(url.searchParams.get('wait') ?? 0);
    if (wait > 0 && !finished()) await this.waitFor(() => (this.jobs.get(id) as Job).seq > after, wait * 1000, signal);
    const job = this.jobs.get(id) as Job;
    const events = (this.logs.get(id) ?? []).map((entry) => entry.event).filter((event) => event.seq > after);
    const next = events.length ? (events[events.length - 1] as JobEvent).seq : after;
    return json(200, { events, next_seq: next, done: finished() && next >= job.seq });
  }

  private waitFor(condition: () => boolean, ms: number, signal: AbortSignal | undefined): Promise<void> {
    return new Promise((resolve, reject) => {
      if (condition()) {
        resolve();
        return;
      }
      const done = (): void => {
        clearTimeout(timer);
        this.waiters.delete(check);
        signal?.removeEventListener('abort', onAbort);
      };
      const check = (): void => {
        if (condition()) {
          done();
          resolve();
        }
      };
      const onAbort = (): void => {
        done();
        reject(abortError());
      };
      const timer = setTimeout(() => {
        done();
        resolve();
      }, ms);
      this.waiters.add(check);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  private streamJob(id: string, url: URL, headers: Record<string, string>, signal?: AbortSignal): Response {
    const plan = this.plans[this.sseCount] ?? {};
    this.sseCount += 1;
    const lastEventId = headers['last-event-id'] ?? url.searchParams.get('last_event_id');
    const connection: SSEConnection = {
      url: url.pathname + url.search,
      lastEventId,
      authorization: headers['authorization'] ?? null,
      closed: false,
    };
    this.sseConnections.push(connection);
    const early = this.earlyAnswer(plan);
    if (early) return early;
    const job = this.jobs.get(id);
    if (!job) return json(404, { detail: 'Job not found' });

    return this.openStream(plan, connection, signal, (write, close) => {
      if (plan.retry !== undefined) write(`retry: ${plan.retry}\n\n`, false);
      const frame = (event: JobEvent): string =>
        `id: ${event.seq}\nevent: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`;
      const terminal = (event: JobEvent): boolean => ['completed', 'failed', 'cancelled'].includes(event.type);
      if (lastEventId === null) {
        const snapshot = this.jobs.get(id) as Job;
        const body = plan.bareSnapshot ? snapshot : this.snapshotEnvelope(snapshot);
        if (!write(`id: ${snapshot.seq}\nevent: snapshot\ndata: ${JSON.stringify(body)}\n\n`, true)) return null;
        if (['completed', 'failed', 'cancelled'].includes(snapshot.status)) {
          close();
          return null;
        }
      } else {
        const from = Number(lastEventId) - (plan.overlap ?? 0);
        for (const { event } of this.logs.get(id) ?? []) {
          if (event.seq <= from) continue;
          if (!write(frame(event), true)) return null;
          if (terminal(event)) {
            close();
            return null;
          }
        }
      }
      return {
        jobId: id,
        push: (event) => {
          if (!write(frame(event), true)) return;
          if (terminal(event)) close();
        },
      };
    });
  }

  private streamAll(url: URL, headers: Record<string, string>, signal?: AbortSignal): Response {
    const plan = this.allPlans[this.allCount] ?? {};
    this.allCount += 1;
    const lastEventId = headers['last-event-id'] ?? url.searchParams.get('last_event_id');
    const connection: SSEConnection = {
      url: url.pathname + url.search,
      lastEventId,
      authorization: headers['authorization'] ?? null,
      closed: false,
    };
    this.sseConnections.push(connection);
    const early = this.earlyAnswer(plan);
    if (early) return early;
    return this.openStream(plan, connection, signal, (write) => {
      const frame = (event: JobEvent, cursor: number): string =>
        `id: ${cursor}\nevent: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`;
      if (lastEventId === null) {
        const body = plan.bareSnapshot ? { items: this.recentJobs() } : this.feedSnapshotEnvelope();
        if (!write(`id: ${this.cursor}\nevent: snapshot\ndata: ${JSON.stringify(body)}\n\n`, true)) return null;
      } else {
        const from = Number(lastEventId);
        for (const { event, cursor } of this.feedLog()) {
          if (cursor <= from) continue;
          if (!write(frame(event, cursor), true)) return null;
        }
      }
      return { jobId: null, push: (event, cursor) => void write(frame(event, cursor), true) };
    });
  }

  private earlyAnswer(plan: StreamPlan): Response | null {
    if (plan.status) return json(plan.status, { detail: `status ${plan.status}` }, plan.status === 503 ? { 'retry-after': '0' } : {});
    if (plan.contentType) return new Response('<!doctype html><title>app</title>', { status: 200, headers: { 'content-type': plan.contentType } });
    return null;
  }

  /** Opens a stream; `start` writes the initial events and returns the live subscription. `write`
   * returns false once the plan's drop point is reached (the stream is then closed). */
  private openStream(
    plan: StreamPlan,
    connection: SSEConnection,
    signal: AbortSignal | undefined,
    start: (write: (text: string, isEvent: boolean) => boolean, close: () => void) => LiveStream | null,
  ): Response {
    let controller!: ReadableStreamDefaultController<Uint8Array>;
    let sent = 0;
    let closed = false;
    let live: LiveStream | null = null;
    const held: Uint8Array[] = [];
    const enqueue = (bytes: Uint8Array): void => {
      if (plan.buffered) {
        held.push(bytes);
        return;
      }
      const split = this.splitChunks;
      if (!split) {
        controller.enqueue(bytes);
        return;
      }
      let position = 0;
      while (position < bytes.length) {
        const size = Math.max(1, Math.floor(split() * 12));
        controller.enqueue(bytes.slice(position, position + size));
        position += size;
      }
    };
    const close = (): void => {
      if (closed) return;
      closed = true;
      connection.closed = true;
      this.open.delete(handle);
      if (live) this.live.delete(live);
      for (const bytes of held) controller.enqueue(bytes);
      try {
        controller.close();
      } catch {
        // already errored
      }
    };
    const write = (text: string, isEvent: boolean): boolean => {
      if (closed) return false;
      if (plan.silent) return true;
      const bytes = encoder.encode(text);
      if (isEvent && plan.dropAfter !== undefined && sent >= plan.dropAfter) {
        if (plan.cutMidEvent) enqueue(bytes.slice(0, Math.floor(bytes.length / 2)));
        close();
        return false;
      }
      enqueue(bytes);
      if (isEvent) sent += 1;
      return true;
    };
    const handle = { write: (text: string, isEvent: boolean) => write(text, isEvent), close: () => close() };
    this.open.add(handle);
    const body = new ReadableStream<Uint8Array>({
      start: (c) => {
        controller = c;
      },
      cancel: () => {
        closed = true;
        connection.closed = true;
        this.open.delete(handle);
        if (live) this.live.delete(live);
      },
    });
    signal?.addEventListener(
      'abort',
      () => {
        if (closed) return;
        closed = true;
        connection.closed = true;
        this.open.delete(handle);
        if (live) this.live.delete(live);
        try {
          controller.error(abortError());
        } catch {
          // already closed
        }
      },
      { once: true },
    );
    queueMicrotask(() => {
      if (closed) return;
      live = start(write, close);
      if (live && !closed) this.live.add(live);
    });
    return new Response(body, {
      status: 200,
      headers: { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' },
    });
  }
}

function normaliseHeaders(headers: HeadersInit | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  new Headers(headers).forEach((value, key) => {
    out[key.toLowerCase()] = value;
  });
  return out;
}

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { 'content-type': 'application/json', ...headers },
  });
}

function abortError(): Error {
  const error = new Error('The operation was aborted');
  error.name = 'AbortError';
  return error;
}

export function until(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const tick = (): void => {
      if (condition()) resolve();
      else if (Date.now() - started > timeoutMs) reject(new Error('timed out waiting for condition'));
      else setTimeout(tick, 2);
    };
    tick();
  });
}

export function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, index) => from + index);
}

/** A WebSocket class wired to a FakeJobServer: `/api/v1/jobs/{id}/ws?after_seq=N` sends the
 * envelopes after N as text frames (without `after_seq`: the job's `snapshot` envelope first),
 * then live ones, and closes with 1000 after the terminal one. `/api/v1/ws` is the all-jobs
 * stream: its `snapshot` envelope (or, with `?after_cursor=N`, the envelopes after cursor N),
 * then every live envelope, each with its `cursor`. `refuse` makes every socket fail before
 * opening (code 1006), as a server without the route. */
export function fakeWebSocketClass(server: FakeJobServer, options: { refuse?: boolean; closeCode?: number } = {}) {
  const sockets: FakeSocket[] = [];
  class FakeSocket {
    readyState = 0;
    onopen: ((event: unknown) => void) | null = null;
    onmessage: ((event: { data: unknown }) => void) | null = null;
    onclose: ((event: { code: number; reason: string }) => void) | null = null;
    onerror: ((event: unknown) => void) | null = null;
    readonly url: string;
    private unsubscribe: (() => void) | null = null;

    constructor(url: string) {
      this.url = url;
      sockets.push(this);
      setTimeout(() => this.connect(), 1);
    }

    private connect(): void {
      if (this.readyState !== 0) return;
      if (options.refuse) {
        this.readyState = 3;
        this.onerror?.({});
        this.onclose?.({ code: 1006, reason: '' });
        return;
      }
      if (options.closeCode) {
        // Refusals come after the handshake, so that the browser sees the code.
        this.readyState = 1;
        this.onopen?.({});
        this.finish(options.closeCode, 'refused');
        return;
      }
      const url = new URL(this.url);
      if (url.pathname === '/api/v1/ws') {
        this.connectAll(url);
        return;
      }
      const match = url.pathname.match(/^\/api\/v1\/jobs\/([^/]+)\/ws$/);
      const id = match ? decodeURIComponent(match[1] as string) : '';
      if (!server.jobs.has(id)) {
        this.readyState = 1;
        this.onopen?.({});
        this.finish(4404, 'Job not found');
        return;
      }
      this.readyState = 1;
      this.onopen?.({});
      const afterSeq = url.searchParams.get('after_seq');
      if (afterSeq === null) {
        const job = server.jobs.get(id) as Job;
        this.onmessage?.({ data: JSON.stringify(server.snapshotEnvelope(job)) });
        if (['completed', 'failed', 'cancelled'].includes(job.status)) {
          this.finish(1000, 'done');
          return;
        }
      }
      const after = afterSeq === null ? (server.jobs.get(id) as Job).seq : Number(afterSeq);
      for (const { event } of server.logs.get(id) ?? []) {
        if (event.seq <= after) continue;
        if (this.deliver(event)) return;
      }
      this.unsubscribe = server.subscribe(id, (event) => {
        this.deliver(event);
      });
    }

    private connectAll(url: URL): void {
      this.readyState = 1;
      this.onopen?.({});
      const send = (event: JobEvent, cursor: number): void => {
        if (this.readyState === 1) this.onmessage?.({ data: JSON.stringify({ ...event, cursor }) });
      };
      const after = url.searchParams.get('after_cursor');
      if (after === null) {
        this.onmessage?.({ data: JSON.stringify(server.feedSnapshotEnvelope()) });
      } else {
        for (const { event, cursor } of server.feedLog()) if (cursor > Number(after)) send(event, cursor);
      }
      this.unsubscribe = server.subscribeAll(send);
    }

    private deliver(event: JobEvent): boolean {
      if (this.readyState !== 1) return true;
      this.onmessage?.({ data: JSON.stringify(event) });
      if (['completed', 'failed', 'cancelled'].includes(event.type)) {
        this.finish(1000, 'done');
        return true;
      }
      return false;
    }

    /** Drops the connection from the server side (abnormal closure). */
    drop(): void {
      this.finish(1006, 'dropped');
    }

    private finish(code: number, reason: string): void {
      if (this.readyState === 3) return;
      this.readyState = 3;
      this.unsubscribe?.();
      this.onclose?.({ code, reason });
    }

    send(): void {}

    close(): void {
      if (this.readyState === 3) return;
      this.readyState = 3;
      this.unsubscribe?.();
    }
  }
  return { WebSocket: FakeSocket, sockets };
}

/** A minimal EventSource over the server's fetch and the package's own parser. */
export function fakeEventSourceClass(server: FakeJobServer) {
  const urls: string[] = [];
  class FakeEventSource {
    readyState = 0;
    onopen: ((event: unknown) => void) | null = null;
    onerror: ((event: unknown) => void) | null = null;
    private listeners = new Map<string, ((event: { data: string; lastEventId: string; type: string }) => void)[]>();
    private abort = new AbortController();

    constructor(url: string) {
      urls.push(url);
      void this.run(url);
    }

    addEventListener(type: string, listener: (event: { data: string; lastEventId: string; type: string }) => void): void {
      this.listeners.set(type, [...(this.listeners.get(type) ?? []), listener]);
    }

    close(): void {
      this.readyState = 2;
      this.abort.abort();
    }

    private async run(url: string): Promise<void> {
      try {
        const response = await server.fetch(url, { signal: this.abort.signal });
        if (!response.ok || !response.body) throw new Error('failed');
        this.readyState = 1;
        this.onopen?.({});
        const { createSSEParser } = await import('../src/sse.js');
        const parser = createSSEParser({
          onEvent: (event) => {
            for (const listener of this.listeners.get(event.event) ?? []) {
              listener({ data: event.data, lastEventId: event.id, type: event.event });
            }
          },
        });
        const reader = response.body.getReader();
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          parser.feed(value);
        }
      } catch {
        // fall through to error
      }
      if (this.readyState !== 2) {
        this.readyState = 0;
        this.onerror?.({});
      }
    }
  }
  return { EventSource: FakeEventSource, urls };
}
