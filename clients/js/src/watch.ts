/**
 * The connection lifecycle shared by `JobWatch` (one job) and `JobsWatch` (all jobs).
 *
 * A `StreamRunner` walks an ordered list of transports (fetch-streamed SSE, EventSource,
 * WebSocket, long-polling). It keeps a transport while it works and reconnects it with
 * exponential backoff and jitter (or the server's `retry:` after a stream that worked), resuming
 * from what the target has already seen. It moves to the next transport when one is unavailable
 * (the route is missing, the body cannot be streamed, the socket never opens), when one keeps
 * failing, or when a stream opens but delivers nothing while data was due at once (a buffering
 * proxy that would hand over the events only when the stream closes). 401 and a confirmed unknown
 * job stop the watch.
 *
 * What a stream means (which URL, what to resend, how to fold a message) belongs to a
 * `StreamTarget`; the runner never parses a message itself.
 */

import { backoffDelay, sleep } from './backoff.js';
import { JobStreamError, isAbortError } from './errors.js';
import { TransportError, type TransportContext, type WireMessage } from './transports/base.js';
import { runEventSource } from './transports/eventsource.js';
import { runFetchSSE } from './transports/fetch-sse.js';
import { runWebSocket } from './transports/websocket.js';
import type {
  ConnectionState,
  EventSourceConstructor,
  EventsPage,
  EventsPageOptions,
  FetchLike,
  GetJobOptions,
  Job,
  JobPage,
  ListJobsOptions,
  Query,
  RequestOptions,
  TransportName,
  WatchConfig,
  WebSocketConstructor,
} from './types.js';

/** What a watch needs from a client (`JobStreamClient` is one): the transports' constructors,
 * URLs and headers, the REST calls a watch makes, and where a fatal error is reported. Declared
 * here, below the client, so that the watches never import the module that imports them. */
export interface WatchClient {
  readonly watchDefaults: WatchConfig;
  readonly fetchImpl: FetchLike;
  readonly WebSocketImpl: WebSocketConstructor | null;
  readonly EventSourceImpl: EventSourceConstructor | null;
  url(path: string, query?: Query): string;
  urlWithToken(path: string, query?: Query): string;
  webSocketUrl(path: string, query?: Query): string | null;
  headers(extra?: Record<string, string>): Record<string, string>;
  reportError(error: JobStreamError): JobStreamError;
  get(id: string, options?: GetJobOptions): Promise<Job>;
  getIfChanged(id: string, etag: string | null, options?: GetJobOptions): Promise<{ job: Job | null; etag: string | null }>;
  events(id: string, options?: EventsPageOptions): Promise<EventsPage>;
  list(options?: ListJobsOptions): Promise<JobPage>;
  cancel(id: string, options?: RequestOptions): Promise<Job>;
}

export const DEFAULT_WATCH_CONFIG: WatchConfig = {
  transports: ['sse', 'websocket', 'poll'],
  initialRetryDelay: 1000,
  maxRetryDelay: 30_000,
  maxFailures: 3,
  firstEventTimeout: 10_000,
  idleTimeout: 45_000,
  connectTimeout: 15_000,
  pollInterval: 1000,
  longPollSeconds: 25,
  random: Math.random,
};

export interface StreamRequest {
  path: string;
  query?: Query;
  /** The resume point to send (`Last-Event-ID`), if any. */
  lastEventId?: string | undefined;
}

/** What a watcher follows: the runner asks it where to connect and hands it every message. */
export interface StreamTarget {
  sseRequest(): StreamRequest;
  webSocketRequest(): StreamRequest | null;
  /** Runs before each connection (e.g. fetch a snapshot first); may throw a JobStreamError. */
  prepare(transport: TransportName, signal: AbortSignal): Promise<void>;
  /** The polling transport: loops until done or aborted, reporting through `ctx`. */
  poll(ctx: TransportContext, config: WatchConfig): Promise<void>;
  handle(message: WireMessage): void;
  /** Data is due as soon as this transport's stream opens (a snapshot, a replay of missed events). */
  expectsImmediateData(transport: TransportName): boolean;
  /** Nothing more to follow: the runner stops. */
  done(): boolean;
  /** A plain request to the server (the job's snapshot, the job list). Resolves when the server
   * answers it; rejects with the JobStreamError otherwise. The runner asks it whether a failing
   * transport is to blame (the server answers plain requests) or the server itself is down or
   * refuses (then no other transport would do better), and whether a 404 means a missing route. */
  probe(signal: AbortSignal): Promise<void>;
}

export interface RunnerCallbacks {
  onConnection(state: ConnectionState, transport: TransportName | null): void;
  onFatal(error: JobStreamError): void;
}

export class StreamRunner {
  private readonly abort = new AbortController();
  private retryMs: number | null = null;
  private started = false;

  constructor(
    private readonly client: WatchClient,
    private readonly target: StreamTarget,
    readonly config: WatchConfig,
    private readonly callbacks: RunnerCallbacks,
  ) {}

  get signal(): AbortSignal {
    return this.abort.signal;
  }

  get closed(): boolean {
    return this.abort.signal.aborted;
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    // Asynchronously, so that no handler runs before the caller holds the watch.
    void Promise.resolve().then(() => this.loop());
  }

  close(): void {
    this.abort.abort();
  }

  /** The transports of `config.transports` that can run here, in order. */
  availableTransports(): TransportName[] {
    const seen = new Set<TransportName>();
    return this.config.transports.filter((name) => {
      if (seen.has(name)) return false;
      seen.add(name);
      switch (name) {
        case 'eventsource':
          return this.client.EventSourceImpl !== null;
        case 'websocket':
          return this.client.WebSocketImpl !== null && this.client.webSocketUrl('/') !== null;
        default:
          return true;
      }
    });
  }

  private async loop(): Promise<void> {
    const order = this.availableTransports();
    const config = this.config;
    let index = 0;
    let failures = 0;
    let attempt = 0;
    let everOpened = false;
    try {
      while (!this.closed && !this.target.done()) {
        const name = order[index];
        if (name === undefined) {
          this.callbacks.onFatal(new JobStreamError('protocol', 'No transport is available'));
          return;
        }
        this.callbacks.onConnection(everOpened || attempt > 0 || index > 0 ? 'reconnecting' : 'connecting', name);

        const attemptAbort = new AbortController();
        const stop = (): void => attemptAbort.abort();
        this.abort.signal.addEventListener('abort', stop, { once: true });
        let opened = false;
        let delivered = false;
        let timedOut: 'buffered' | 'idle' | 'connect' | null = null;
        let timer: ReturnType<typeof setTimeout> | undefined;
        const arm = (ms: number, reason: 'buffered' | 'idle' | 'connect'): void => {
          if (timer !== undefined) clearTimeout(timer);
          timer = undefined;
          if (Number.isFinite(ms) && ms > 0) {
            timer = setTimeout(() => {
              timedOut = reason;
              attemptAbort.abort();
            }, ms);
          }
        };
        const streaming = name !== 'poll';
        // Pings are visible only to fetch-SSE (EventSource hides comments, WebSocket pings are
        // protocol frames), so only there does silence mean a dead connection.
        const idleTimeout = name === 'sse' ? config.idleTimeout : Number.POSITIVE_INFINITY;
        let expectData = false;

        const ctx: TransportContext = {
          signal: attemptAbort.signal,
          onOpen: () => {
            opened = true;
            everOpened = true;
            this.callbacks.onConnection('open', name);
            if (streaming) {
              if (expectData) arm(config.firstEventTimeout, 'buffered');
              else arm(idleTimeout, 'idle');
            }
          },
          onActivity: () => {
            if (streaming && (delivered || !expectData)) arm(idleTimeout, 'idle');
          },
          onMessage: (message) => {
            if (attemptAbort.signal.aborted) return;
            delivered = true;
            failures = 0;
            attempt = 0;
            if (streaming) arm(idleTimeout, 'idle');
            this.target.handle(message);
            if (this.target.done()) attemptAbort.abort();
          },
          onRetry: (ms) => {
            this.retryMs = Math.min(Math.max(ms, 50), config.maxRetryDelay);
          },
        };

        let failure: TransportError | null = null;
        try {
          if (streaming) arm(config.connectTimeout, 'connect');
          await this.target.prepare(name, attemptAbort.signal);
          if (this.target.done()) break;
          expectData = this.target.expectsImmediateData(name);
          await this.runTransport(name, ctx);
        } catch (error) {
          failure = toTransportError(error, opened);
        } finally {
          if (timer !== undefined) clearTimeout(timer);
          this.abort.signal.removeEventListener('abort', stop);
          attemptAbort.abort();
        }
        if (this.closed || this.target.done()) break;

        if (timedOut === 'buffered' && !delivered) {
          failure = new TransportError(
            'unavailable',
            new JobStreamError('protocol', 'The stream opened but delivered nothing (a buffering proxy?)'),
            true,
          );
        } else if (timedOut !== null) {
          failure = new TransportError('failed', new JobStreamError('network', `Connection ${timedOut} timeout`), opened);
        }

        if (failure !== null) {
          const code = failure.error.code;
          if (failure.outcome === 'fatal' || FATAL_CODES.has(code)) {
            this.fail(failure.error);
            return;
          }
          if (code === 'not_found') {
            // The job is gone, or this server lacks the route: the probe tells which.
            const probe = await this.probe();
            if (this.closed) break;
            if (probe instanceof JobStreamError) {
              this.fail(probe.code === 'not_found' ? failure.error : probe);
              return;
            }
            if (probe) failure = new TransportError('unavailable', failure.error, opened);
          }
          if (failure.outcome === 'unavailable' && index < order.length - 1) {
            index += 1;
            failures = 0;
            attempt = 0;
            continue;
          }
        }

        let delay: number;
        if (delivered) {
          delay = this.retryMs ?? config.initialRetryDelay;
        } else {
          failures += 1;
          if (failures >= config.maxFailures && index < order.length - 1) {
            // Only blame the transport if the server answers plain requests: when the server is
            // down, every transport fails alike, and staying keeps the best one for its return.
            const probe = await this.probe();
            if (this.closed) break;
            if (probe instanceof JobStreamError) {
              this.fail(probe);
              return;
            }
            if (probe) {
              index += 1;
              failures = 0;
              attempt = 0;
              continue;
            }
          }
          delay = backoffDelay(attempt, {
            initialDelay: this.retryMs ?? config.initialRetryDelay,
            maxDelay: config.maxRetryDelay,
            random: config.random,
          });
          attempt += 1;
        }
        const retryAfter = failure?.error.retryAfterMs;
        if (retryAfter !== undefined) delay = Math.max(delay, Math.min(retryAfter, config.maxRetryDelay));
        this.callbacks.onConnection('reconnecting', name);
        await sleep(delay, this.abort.signal);
      }
    } catch (error) {
      // A bug in a target's handler: end the watch visibly rather than spin.
      if (!this.closed) {
        this.fail(
          error instanceof JobStreamError
            ? error
            : new JobStreamError('protocol', `Watch failed: ${String(error)}`, { cause: error }),
        );
        return;
      }
    }
    this.callbacks.onConnection('closed', null);
  }

  /** true: the server answers; false: it does not (down, 5xx); an error: stop (401, 404…). */
  private async probe(): Promise<boolean | JobStreamError> {
    try {
      await this.target.probe(this.abort.signal);
      return true;
    } catch (error) {
      if (error instanceof JobStreamError && (FATAL_CODES.has(error.code) || error.code === 'not_found')) return error;
      return false;
    }
  }

  private fail(error: JobStreamError): void {
    this.client.reportError(error);
    this.callbacks.onFatal(error);
    this.callbacks.onConnection('closed', null);
    this.abort.abort();
  }

  private runTransport(name: TransportName, ctx: TransportContext): Promise<void> {
    const client = this.client;
    switch (name) {
      case 'sse': {
        const request = this.target.sseRequest();
        return runFetchSSE(ctx, {
          fetch: client.fetchImpl,
          url: client.url(request.path, request.query),
          headers: client.headers(),
          lastEventId: request.lastEventId,
        });
      }
      case 'eventsource': {
        const request = this.target.sseRequest();
        const EventSourceImpl = client.EventSourceImpl;
        if (EventSourceImpl === null) return Promise.reject(unavailable('No EventSource here'));
        return runEventSource(ctx, {
          EventSource: EventSourceImpl,
          url: client.urlWithToken(request.path, { ...request.query, last_event_id: request.lastEventId }),
        });
      }
      case 'websocket': {
        const request = this.target.webSocketRequest();
        const url = request && client.webSocketUrl(request.path, request.query);
        const WebSocketImpl = client.WebSocketImpl;
        if (!url || WebSocketImpl === null) return Promise.reject(unavailable('No WebSocket stream here'));
        return runWebSocket(ctx, { WebSocket: WebSocketImpl, url });
      }
      case 'poll':
        return this.target.poll(ctx, this.config);
      default:
        return Promise.reject(unavailable(`Unknown transport ${String(name)}`));
    }
  }
}

/** Errors no reconnect can fix. */
const FATAL_CODES: ReadonlySet<string> = new Set(['unauthorized', 'forbidden']);

function unavailable(message: string): TransportError {
  return new TransportError('unavailable', new JobStreamError('protocol', message));
}

function toTransportError(error: unknown, opened: boolean): TransportError {
  if (error instanceof TransportError) return error;
  if (error instanceof JobStreamError) return new TransportError('failed', error, opened);
  if (isAbortError(error)) return new TransportError('failed', new JobStreamError('aborted', 'aborted'), opened);
  return new TransportError(
    'failed',
    new JobStreamError('network', error instanceof Error ? error.message : String(error), { cause: error }),
    opened,
  );
}

/** A minimal observable state holder: `getState()` is immutable, `subscribe()` is notified on
 * every change (the shape `useSyncExternalStore` wants). */
export class StateStore<S extends object> {
  private listeners = new Set<() => void>();

  constructor(private state: S) {}

  getState = (): S => this.state;

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  };

  protected setState(patch: Partial<S>): void {
    this.state = { ...this.state, ...patch };
    for (const listener of [...this.listeners]) listener();
  }
}
