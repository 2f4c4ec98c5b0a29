/**
 * `JobStreamClient`: the REST calls of the canonical API and the watchers built on them.
 *
 * Nothing here touches `window` or `document`: `fetch`, `WebSocket` and `EventSource` are taken
 * from the options, or from `globalThis` when they exist, so the client runs the same in a
 * browser, in Node, in a worker or in a test with fakes.
 */

import { JobStreamError, errorFromResponse, isAbortError } from './errors.js';
import { JobWatch, type WatchJobOptions } from './job-watch.js';
import { JobsWatch, type WatchJobsOptions } from './jobs-watch.js';
import { API_PREFIX, jobPath } from './paths.js';
import type {
  EventSourceConstructor,
  EventsPage,
  EventsPageOptions,
  FetchLike,
  GetJobOptions,
  Job,
  JobKind,
  JobPage,
  ListJobsOptions,
  Query,
  RequestOptions,
  TokenSource,
  WatchConfig,
  WebSocketConstructor,
} from './types.js';
import { DEFAULT_WATCH_CONFIG, type WatchClient } from './watch.js';

export interface JobStreamClientOptions {
  /** Where the server is: `https://jobs.example.com`, or `''` for the page's own origin (fetch
   * resolves relative URLs in a browser; WebSocket needs an absolute base and is skipped without). */
  baseUrl?: string;
  token?: TokenSource;
  fetch?: FetchLike;
  /** `null` disables the WebSocket transport. Defaults to `globalThis.WebSocket`. */
  WebSocket?: WebSocketConstructor | null;
  /** `null` disables the EventSource transport. Defaults to `globalThis.EventSource`. */
  EventSource?: EventSourceConstructor | null;
  /** Extra headers for every HTTP request. */
  headers?: Record<string, string>;
  /** Called on every 401 (a request, or a stream refused for want of a token). */
  onUnauthorized?: (error: JobStreamError) => void;
  /** Defaults for every watcher this client starts. */
  watch?: Partial<WatchConfig>;
}

export class JobStreamClient implements WatchClient {
  readonly baseUrl: string;
  readonly watchDefaults: WatchConfig;
  readonly fetchImpl: FetchLike;
  readonly WebSocketImpl: WebSocketConstructor | null;
  readonly EventSourceImpl: EventSourceConstructor | null;
  private readonly tokenSource: TokenSource;
  private readonly extraHeaders: Record<string, string>;
  private readonly onUnauthorized: ((error: JobStreamError) => void) | undefined;
  private readonly reported = new WeakSet<JobStreamError>();

  constructor(options: JobStreamClientOptions = {}) {
    this.baseUrl = (options.baseUrl ?? '').replace(/\/+$/, '');
    this.tokenSource = options.token;
    this.extraHeaders = { ...options.headers };
    this.onUnauthorized = options.onUnauthorized;
    const globals = globalThis as unknown as {
      fetch?: FetchLike;
      WebSocket?: WebSocketConstructor;
      EventSource?: EventSourceConstructor;
    };
    const globalFetch = globals.fetch;
    this.fetchImpl =
      options.fetch ??
      ((input, init) => {
        if (!globalFetch) return Promise.reject(new Error('no fetch available: pass options.fetch'));
        return globalFetch.call(globalThis, input, init);
      });
    this.WebSocketImpl = options.WebSocket === undefined ? (globals.WebSocket ?? null) : options.WebSocket;
    this.EventSourceImpl = options.EventSource === undefined ? (globals.EventSource ?? null) : options.EventSource;
    this.watchDefaults = { ...DEFAULT_WATCH_CONFIG, ...options.watch };
  }

  // -- URLs and auth --------------------------------------------------------------------------

  /** The current token, if any. */
  token(): string | null {
    const source = this.tokenSource;
    const value = typeof source === 'function' ? source() : source;
    return value ? value : null;
  }

  /** An absolute or origin-relative URL for an API path and query. */
  url(path: string, query: Query = {}): string {
    const search = encodeQuery(query);
    return `${this.baseUrl}${path}${search ? `?${search}` : ''}`;
  }

  /** A URL for clients that cannot send headers (EventSource, WebSocket, `<video src>`):
   * the token, if any, goes in `?token=`. */
  urlWithToken(path: string, query: Query = {}): string {
    const token = this.token();
    return this.url(path, token ? { ...query, token } : query);
  }

  /** The same as `urlWithToken` with a `ws:`/`wss:` scheme, or null when the base URL is not
   * absolute (a WebSocket needs a host). */
  webSocketUrl(path: string, query: Query = {}): string | null {
    const url = this.urlWithToken(path, query);
    if (/^https:\/\//i.test(url)) return `wss://${url.slice(8)}`;
    if (/^http:\/\//i.test(url)) return `ws://${url.slice(7)}`;
    if (/^wss?:\/\//i.test(url)) return url;
    return null;
  }

  /** Headers for an HTTP request: the extra headers and `Authorization: Bearer` when a token is set. */
  headers(extra: Record<string, string> = {}): Record<string, string> {
    const headers: Record<string, string> = { ...this.extraHeaders, ...extra };
    const token = this.token();
    if (token) headers['Authorization'] = `Bearer ${token}`;
    return headers;
  }

  /** Where the result of a job is served; with the token in the query, so it works as a
   * `<video src>` or a download link (pass `{ token: false }` to leave it out). */
  resultUrl(id: string, options: { token?: boolean } = {}): string {
    const path = `${API_PREFIX}/jobs/${encodeURIComponent(id)}/result`;
    return options.token === false ? this.url(path) : this.urlWithToken(path);
  }

  /** Reports a 401 to `onUnauthorized`; returns the error for throwing. */
  reportError(error: JobStreamError): JobStreamError {
    if (error.code === 'unauthorized' && !this.reported.has(error)) {
      this.reported.add(error);
      this.onUnauthorized?.(error);
    }
    return error;
  }

  // -- HTTP -----------------------------------------------------------------------------------

  /** A request; non-2xx answers (except those in `accept`) throw a `JobStreamError`. */
  async request(
    method: string,
    path: string,
    init: RequestOptions & { query?: Query; body?: unknown; accept?: readonly number[] } = {},
  ): Promise<Response> {
    const headers = this.headers({ Accept: 'application/json', ...init.headers });
    let body: string | undefined;
    if (init.body !== undefined) {
      headers['Content-Type'] = 'application/json';
      body = JSON.stringify(init.body);
    }
    let response: Response;
    try {
      response = await this.fetchImpl(this.url(path, init.query), {
        method,
        headers,
        body,
        signal: init.signal,
        cache: 'no-store',
      });
    } catch (error) {
      if (isAbortError(error) || init.signal?.aborted) {
        throw new JobStreamError('aborted', 'The request was aborted', { cause: error });
      }
      throw new JobStreamError('network', `Could not reach the server (${describe(error)})`, { cause: error });
    }
    if (!response.ok && !(init.accept ?? []).includes(response.status)) {
      throw this.reportError(await errorFromResponse(response));
    }
    return response;
  }

  async json<T>(
    method: string,
    path: string,
    init: RequestOptions & { query?: Query; body?: unknown } = {},
  ): Promise<T> {
    const response = await this.request(method, path, init);
    try {
      return (await response.json()) as T;
    } catch (error) {
      throw new JobStreamError('protocol', `${method} ${path}: the answer is not JSON`, {
        status: response.status,
        cause: error,
      });
    }
  }

  /** `POST /api/v1/jobs`: submit a job; resolves with the job object (status `queued`). */
  submit(kind: string, params: Record<string, unknown> = {}, options: RequestOptions = {}): Promise<Job> {
    return this.json<Job>('POST', `${API_PREFIX}/jobs`, { ...options, body: { kind, params } });
  }

  /** `GET /api/v1/jobs/{id}`; with `wait`, a long-poll that returns once the job's `seq` passes
   * `afterSeq` or `wait` seconds have gone by. */
  get(id: string, options: GetJobOptions = {}): Promise<Job> {
    return this.json<Job>('GET', jobPath(id), {
      ...options,
      query: { wait: options.wait, after_seq: options.afterSeq },
    });
  }

  /** `GET /api/v1/jobs/{id}` with `If-None-Match`: null when the job has not changed (304). */
  async getIfChanged(
    id: string,
    etag: string | null,
    options: GetJobOptions = {},
  ): Promise<{ job: Job | null; etag: string | null }> {
    const response = await this.request('GET', jobPath(id), {
      ...options,
      headers: etag ? { ...options.headers, 'If-None-Match': etag } : options.headers,
      query: { wait: options.wait, after_seq: options.afterSeq },
      accept: [304],
    });
    if (response.status === 304) return { job: null, etag };
    const job = (await response.json()) as Job;
    return { job, etag: response.headers.get('etag') };
  }

  /** `GET /api/v1/jobs/{id}/events` as JSON: the job's events after `afterSeq` (long-polled
   * with `wait`), the same envelopes as its SSE stream; what the polling transport reads. */
  events(id: string, options: EventsPageOptions = {}): Promise<EventsPage> {
    const { afterSeq, wait, ...rest } = options;
    return this.json<EventsPage>('GET', `${jobPath(id)}/events`, {
      ...rest,
      query: { after_seq: afterSeq, wait },
    });
  }

  /** `GET /api/v1/jobs`: the caller's jobs, newest first. */
  list(options: ListJobsOptions = {}): Promise<JobPage> {
    const { status, kind, limit, cursor, ...rest } = options;
    return this.json<JobPage>('GET', `${API_PREFIX}/jobs`, {
      ...rest,
      query: { status, kind, limit, cursor },
    });
  }

  /** `POST /api/v1/jobs/{id}/cancel`: asks the job to stop; a `conflict` error if it is finished. */
  cancel(id: string, options: RequestOptions = {}): Promise<Job> {
    return this.json<Job>('POST', `${jobPath(id)}/cancel`, options);
  }

  /** `GET /api/v1/jobs/{id}/result`, as a `Response` (a file or JSON). */
  fetchResult(id: string, options: RequestOptions = {}): Promise<Response> {
    return this.request('GET', `${jobPath(id)}/result`, {
      ...options,
      headers: { Accept: '*/*', ...options.headers },
    });
  }

  /** `GET /api/v1/kinds`: the registered job kinds and their params' JSON schemas. */
  kinds(options: RequestOptions = {}): Promise<JobKind[]> {
    return this.json<JobKind[]>('GET', `${API_PREFIX}/kinds`, options);
  }

  /** `GET /healthz`. */
  health(options: RequestOptions = {}): Promise<unknown> {
    return this.json<unknown>('GET', '/healthz', options);
  }

  // -- live ----------------------------------------------------------------------------------

  /** Follows one job until it finishes (see `JobWatch`). */
  watchJob(id: string, options: WatchJobOptions = {}): JobWatch {
    return new JobWatch(this, id, options);
  }

  /** Follows every job of the caller (see `JobsWatch`); it never finishes by itself. */
  watchJobs(options: WatchJobsOptions = {}): JobsWatch {
    return new JobsWatch(this, options);
  }
}

function encodeQuery(query: Query): string {
  const parts: string[] = [];
  for (const [key, value] of Object.entries(query)) {
    if (value === undefined || value === null || value === '') continue;
    const text = Array.isArray(value) ? value.join(',') : String(value);
    parts.push(`${encodeURIComponent(key)}=${encodeURIComponent(text)}`);
  }
  return parts.join('&');
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
