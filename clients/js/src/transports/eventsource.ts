/**
 * SSE through a native `EventSource`: for when no header is needed (no token, or the token in
 * `?token=`). The browser's own reconnect is cut short: on the first error the source is closed
 * and the watcher reconnects with its own backoff, resume point and fallback.
 */

import { JobStreamError } from '../errors.js';
import type { EventSourceConstructor } from '../types.js';
import { SSE_EVENT_NAMES, TransportError, abortedError, type TransportContext } from './base.js';

export interface EventSourceRequest {
  EventSource: EventSourceConstructor;
  url: string;
}

export function runEventSource(ctx: TransportContext, request: EventSourceRequest): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (ctx.signal.aborted) {
      reject(new TransportError('failed', abortedError()));
      return;
    }
    let opened = false;
    let settled = false;
    let source: InstanceType<EventSourceConstructor>;
    try {
      source = new request.EventSource(request.url, { withCredentials: false });
    } catch (error) {
      reject(
        new TransportError('unavailable', new JobStreamError('protocol', `EventSource refused the URL (${String(error)})`)),
      );
      return;
    }
    const finish = (error?: TransportError): void => {
      if (settled) return;
      settled = true;
      source.close();
      ctx.signal.removeEventListener('abort', onAbort);
      if (error) reject(error);
      else resolve();
    };
    const onAbort = (): void => finish(new TransportError('failed', abortedError(), opened));
    ctx.signal.addEventListener('abort', onAbort, { once: true });
    source.onopen = () => {
      opened = true;
      ctx.onOpen();
      ctx.onActivity();
    };
    source.onerror = () => {
      if (opened) finish(); // the stream ended or broke after opening: reconnect and resume
      else finish(new TransportError('failed', new JobStreamError('network', 'The EventSource could not connect')));
    };
    const listener = (event: { data: string; lastEventId?: string; type: string }): void => {
      if (settled) return;
      ctx.onActivity();
      ctx.onMessage({ event: event.type, data: event.data, id: event.lastEventId ?? '' });
    };
    for (const name of SSE_EVENT_NAMES) source.addEventListener(name, listener);
  });
}
