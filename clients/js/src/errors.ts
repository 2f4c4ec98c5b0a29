/**
 * One error class for everything the client reports. `code` says what kind of problem it is, so
 * an application can branch on it (ask for a token on `unauthorized`, show "not found", retry on
 * `network`) without parsing messages; `status` and `detail` keep what the server said.
 */

export type JobStreamErrorCode =
  | 'unauthorized' // 401, or a WebSocket closed with 4401: a token is needed or was refused
  | 'forbidden' // 403
  | 'not_found' // 404, or 4404: unknown job (or another user's, which answers the same)
  | 'conflict' // 409: for example cancelling a finished job, or a result not ready
  | 'validation' // 422: bad params
  | 'rate_limited' // 429
  | 'unavailable' // 503 (stream caps) and other 5xx
  | 'http' // any other non-2xx answer
  | 'network' // the request never got an answer
  | 'protocol' // an answer that is not what the API promises (wrong content type, bad JSON)
  | 'aborted'; // the caller aborted

export interface ValidationIssue {
  loc?: (string | number)[];
  msg: string;
  type?: string;
}

export class JobStreamError extends Error {
  override readonly name = 'JobStreamError';
  readonly code: JobStreamErrorCode;
  readonly status: number | undefined;
  /** The `detail` of a FastAPI-style error body, when there was one. */
  readonly detail: unknown;
  /** Milliseconds from a `Retry-After` header, when there was one. */
  readonly retryAfterMs: number | undefined;

  constructor(
    code: JobStreamErrorCode,
    message: string,
    init: { status?: number; detail?: unknown; retryAfterMs?: number; cause?: unknown } = {},
  ) {
    super(message, init.cause === undefined ? undefined : { cause: init.cause });
    this.code = code;
    this.status = init.status;
    this.detail = init.detail;
    this.retryAfterMs = init.retryAfterMs;
  }

  /** The 422 `detail` list, if this is a validation error. */
  get issues(): ValidationIssue[] {
    return Array.isArray(this.detail) ? (this.detail as ValidationIssue[]) : [];
  }
}

export function codeForStatus(status: number): JobStreamErrorCode {
  switch (status) {
    case 401:
      return 'unauthorized';
    case 403:
      return 'forbidden';
    case 404:
      return 'not_found';
    case 409:
      return 'conflict';
    case 422:
      return 'validation';
    case 429:
      return 'rate_limited';
    default:
      return status >= 500 ? 'unavailable' : 'http';
  }
}

/** A readable message from a FastAPI `detail` (a string, or a list of `{loc, msg}`). */
export function describeDetail(detail: unknown): string | undefined {
  if (typeof detail === 'string') return detail;
  if (Array.isArray(detail)) {
    const parts = detail.map((issue: unknown) => {
      if (issue && typeof issue === 'object' && 'msg' in issue) {
        const { loc, msg } = issue as ValidationIssue;
        const where = Array.isArray(loc) ? loc.filter((part) => part !== 'body').join('.') : '';
        return where ? `${where}: ${msg}` : String(msg);
      }
      return typeof issue === 'string' ? issue : JSON.stringify(issue);
    });
    return parts.join('; ');
  }
  if (detail && typeof detail === 'object') {
    const record = detail as Record<string, unknown>;
    if (typeof record['message'] === 'string') return record['message'];
    return JSON.stringify(detail);
  }
  return undefined;
}

export function parseRetryAfter(value: string | null): number | undefined {
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const date = Date.parse(value);
  if (Number.isFinite(date)) return Math.max(0, date - Date.now());
  return undefined;
}

/** Turns a non-2xx response into a `JobStreamError`, reading the body's `detail` if it is JSON. */
export async function errorFromResponse(response: Response): Promise<JobStreamError> {
  let detail: unknown;
  try {
    const text = await response.text();
    if (text) {
      try {
        const body = JSON.parse(text) as unknown;
        detail = body && typeof body === 'object' && 'detail' in body ? (body as { detail: unknown }).detail : body;
      } catch {
        detail = text.length > 500 ? `${text.slice(0, 500)}…` : text;
      }
    }
  } catch {
    // The body could not be read; the status is enough.
  }
  const message =
    describeDetail(detail) ?? (`${response.status} ${response.statusText}`.trim() || `HTTP ${response.status}`);
  return new JobStreamError(codeForStatus(response.status), message, {
    status: response.status,
    detail,
    retryAfterMs: parseRetryAfter(response.headers.get('retry-after')),
  });
}

export function isAbortError(error: unknown): boolean {
  if (error instanceof JobStreamError) return error.code === 'aborted';
  return (
    typeof error === 'object' &&
    error !== null &&
    'name' in error &&
    ((error as { name: unknown }).name === 'AbortError' || (error as { name: unknown }).name === 'TimeoutError')
  );
}
