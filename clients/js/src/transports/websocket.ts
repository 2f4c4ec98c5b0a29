/**
 * The canonical WebSocket stream: each text frame is one envelope (or a `snapshot`). Close codes
 * follow the server's contract: 4401 (token), 4404 (unknown job) end the watch; 1013 (over the
 * connection cap) is retried later; a socket that never opens makes the watcher move on to the
 * next transport at once (the route is missing, or something on the way refuses upgrades).
 */

import { JobStreamError } from '../errors.js';
import type { WebSocketConstructor } from '../types.js';
import { TransportError, abortedError, type TransportContext } from './base.js';

export interface WebSocketRequest {
  WebSocket: WebSocketConstructor;
  url: string;
}

export function runWebSocket(ctx: TransportContext, request: WebSocketRequest): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (ctx.signal.aborted) {
      reject(new TransportError('failed', abortedError()));
      return;
    }
    let opened = false;
    let settled = false;
    let socket: InstanceType<WebSocketConstructor>;
    try {
      socket = new request.WebSocket(request.url);
    } catch (error) {
      reject(new TransportError('unavailable', new JobStreamError('protocol', `WebSocket refused the URL (${String(error)})`)));
      return;
    }
    const finish = (error?: TransportError): void => {
      if (settled) return;
      settled = true;
      if (errorTimer !== undefined) clearTimeout(errorTimer);
      ctx.signal.removeEventListener('abort', onAbort);
      socket.onopen = socket.onmessage = socket.onerror = socket.onclose = null;
      if (socket.readyState === 0 || socket.readyState === 1) {
        try {
          socket.close(1000, 'client done');
        } catch {
          // already closing
        }
      }
      if (error) reject(error);
      else resolve();
    };
    const onAbort = (): void => finish(new TransportError('failed', abortedError(), opened));
    ctx.signal.addEventListener('abort', onAbort, { once: true });
    socket.onopen = () => {
      opened = true;
      ctx.onOpen();
      ctx.onActivity();
    };
    socket.onmessage = (event) => {
      if (settled) return;
      ctx.onActivity();
      if (typeof event.data !== 'string') return;
      let value: unknown;
      try {
        value = JSON.parse(event.data);
      } catch {
        return;
      }
      const type =
        value && typeof value === 'object' && typeof (value as { type?: unknown }).type === 'string'
          ? (value as { type: string }).type
          : 'message';
      ctx.onMessage({ event: type, data: event.data, value });
    };
    let errorTimer: ReturnType<typeof setTimeout> | undefined;
    socket.onerror = () => {
      if (!opened) {
        // A handshake refused (no such route, a proxy in the way). Browsers fire close next,
        // some implementations never do: fail now either way.
        finish(new TransportError('unavailable', new JobStreamError('network', 'WebSocket did not open')));
        return;
      }
      // A close with its code normally follows at once; do not wait for it forever.
      errorTimer ??= setTimeout(
        () => finish(new TransportError('failed', new JobStreamError('network', 'WebSocket error'), true)),
        1000,
      );
    };
    socket.onclose = (event) => {
      const reason = event.reason || `code ${event.code}`;
      if (event.code === 4401) {
        finish(new TransportError('fatal', new JobStreamError('unauthorized', `WebSocket refused: ${reason}`, { status: 401 }), opened));
      } else if (event.code === 4404) {
        finish(new TransportError('fatal', new JobStreamError('not_found', `WebSocket refused: ${reason}`, { status: 404 }), opened));
      } else if (event.code === 1013) {
        finish(new TransportError('failed', new JobStreamError('unavailable', `WebSocket over capacity: ${reason}`), opened));
      } else if (!opened) {
        finish(new TransportError('unavailable', new JobStreamError('network', `WebSocket did not open (${reason})`)));
      } else {
        finish();
      }
    };
  });
}
