/**
 * What a transport is: a function that opens one connection, reports what arrives, and settles
 * when the connection ends. Reconnecting, resuming, falling back and deduplicating are the
 * watcher's job (`watch.ts`), so each transport stays a straight translation of one protocol.
 *
 * A transport resolves when the server ended the stream normally, and rejects with a
 * `TransportError` saying whether to retry it (`failed`), to move on to the next transport at
 * once (`unavailable`), or to stop watching (`fatal`, e.g. a 401 or an unknown job).
 */

import { JobStreamError } from '../errors.js';

/** One message off the wire, whatever the transport: an SSE event, a WebSocket frame, a poll. */
export interface WireMessage {
  /** The SSE `event:` name, or the envelope's `type` for WebSocket frames. */
  event: string;
  /** The raw data text. */
  data: string;
  /** The SSE `id:` in effect, if any. */
  id?: string;
  /** The parsed data, when the transport already has it (saves a JSON.parse). */
  value?: unknown;
}

export interface TransportContext {
  signal: AbortSignal;
  /** The connection is established (HTTP headers in, socket open). */
  onOpen(): void;
  /** Bytes or a frame arrived (heartbeats included): the connection is alive. */
  onActivity(): void;
  onMessage(message: WireMessage): void;
  /** The server's `retry:` hint, in ms. */
  onRetry(ms: number): void;
}

export type TransportOutcome = 'failed' | 'unavailable' | 'fatal';

export class TransportError extends Error {
  override readonly name = 'TransportError';
  constructor(
    readonly outcome: TransportOutcome,
    readonly error: JobStreamError,
    /** The connection had opened before it failed. */
    readonly opened = false,
  ) {
    super(error.message);
  }
}

export function abortedError(): JobStreamError {
  return new JobStreamError('aborted', 'aborted');
}

/** Names of the canonical SSE events (for EventSource, which needs a listener per name). */
export const SSE_EVENT_NAMES = [
  'snapshot',
  'status_change',
  'progress',
  'log',
  'completed',
  'failed',
  'cancelled',
  'timeout',
  'message',
] as const;
