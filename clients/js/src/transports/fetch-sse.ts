/**
 * SSE over `fetch` and a streamed body: the transport that can send headers
 * (`Authorization: Bearer`, `Last-Event-ID`), so no token ends up in a URL.
 */

import { JobStreamError, errorFromResponse, isAbortError } from '../errors.js';
import { createSSEParser } from '../sse.js';
import type { FetchLike } from '../types.js';
import { TransportError, abortedError, type TransportContext } from './base.js';

export interface FetchSSERequest {
  fetch: FetchLike;
  url: string;
  headers: Record<string, string>;
  lastEventId: string | undefined;
}

export async function runFetchSSE(ctx: TransportContext, request: FetchSSERequest): Promise<void> {
  const headers: Record<string, string> = {
    ...request.headers,
    Accept: 'text/event-stream',
    'Cache-Control': 'no-cache',
  };
  if (request.lastEventId !== undefined) headers['Last-Event-ID'] = request.lastEventId;
  let response: Response;
  try {
    response = await request.fetch(request.url, { headers, signal: ctx.signal, cache: 'no-store' });
  } catch (error) {
    if (ctx.signal.aborted || isAbortError(error)) throw new TransportError('failed', abortedError());
    throw new TransportError(
      'failed',
      new JobStreamError('network', `Could not reach the event stream (${String(error)})`, { cause: error }),
    );
  }
  if (!response.ok) {
    throw new TransportError('failed', await errorFromResponse(response));
  }
  const type = response.headers.get('content-type') ?? '';
  if (!type.toLowerCase().includes('text/event-stream') || response.body === null) {
    // A server without this route that answers with its web page, or a body we cannot stream.
    void response.body?.cancel().catch(() => undefined);
    throw new TransportError(
      'unavailable',
      new JobStreamError('protocol', `Expected an event stream, got ${type || 'no content type'}`, {
        status: response.status,
      }),
    );
  }
  ctx.onOpen();
  const parser = createSSEParser(
    { onEvent: (event) => ctx.onMessage(event), onRetry: (ms) => ctx.onRetry(ms) },
    { lastEventId: request.lastEventId ?? '' },
  );
  const reader = response.body.getReader();
  // Not every fetch errors the body when its signal aborts: cancelling the reader always ends a
  // pending read.
  const onAbort = (): void => {
    reader.cancel().catch(() => undefined);
  };
  ctx.signal.addEventListener('abort', onAbort, { once: true });
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done || ctx.signal.aborted) break;
      ctx.onActivity();
      parser.feed(value);
    }
    parser.end();
    if (ctx.signal.aborted) throw new TransportError('failed', abortedError(), true);
  } catch (error) {
    if (error instanceof TransportError) throw error;
    if (ctx.signal.aborted || isAbortError(error)) throw new TransportError('failed', abortedError(), true);
    throw new TransportError(
      'failed',
      new JobStreamError('network', `The event stream broke (${String(error)})`, { cause: error }),
      true,
    );
  } finally {
    ctx.signal.removeEventListener('abort', onAbort);
    reader.cancel().catch(() => undefined);
  }
}
