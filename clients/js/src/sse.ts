/**
 * A Server-Sent Events parser that follows the WHATWG "event stream interpretation" rules.
 *
 * Input may arrive split anywhere: between `\r` and `\n`, inside a field name, inside a multi-byte
 * UTF-8 character. Bytes go through one streaming `TextDecoder`, so a character split across
 * chunks is decoded once both halves are here; lines end at `\r\n`, `\n` or `\r`; a leading BOM
 * is dropped once per stream. An event is dispatched at a blank line; an event that the stream
 * ends in the middle of is discarded, as a browser's `EventSource` does.
 */

export interface ServerSentEvent {
  /** The last event ID at dispatch time (it persists across events until an `id:` changes it). */
  id: string;
  /** The `event:` field, or `"message"` when there was none. */
  event: string;
  /** The `data:` lines joined with `\n`. */
  data: string;
}

export interface SSEParserCallbacks {
  onEvent(event: ServerSentEvent): void;
  /** A `:` comment line (heartbeats); the text after the colon, one leading space removed. */
  onComment?(comment: string): void;
  /** A valid `retry:` field, in milliseconds. */
  onRetry?(milliseconds: number): void;
}

export interface SSEParser {
  /** Feeds the next chunk, as bytes (decoded as UTF-8, streaming) or as already-decoded text. */
  feed(chunk: Uint8Array | string): void;
  /** The stream ended: flushes the decoder and drops any incomplete event. */
  end(): void;
  /** Forgets everything but the last event ID, ready for a new connection. */
  reset(): void;
  /** The last event ID string, as an `EventSource` would resend it. */
  readonly lastEventId: string;
}

const LINE_BREAK = /[\r\n]/g;
const DIGITS = /^[0-9]+$/;

export function createSSEParser(
  callbacks: SSEParserCallbacks,
  options: { lastEventId?: string } = {},
): SSEParser {
  let decoder: TextDecoder | null = null;
  let started = false; // the BOM check has been done for this stream
  let pendingCR = false; // the previous chunk ended with '\r': a leading '\n' belongs to it
  let partialLine = '';
  let data = '';
  let eventType = '';
  let idBuffer = options.lastEventId ?? '';
  let lastEventId = idBuffer;

  function dispatch(): void {
    lastEventId = idBuffer;
    if (data === '') {
      eventType = '';
      return;
    }
    const event: ServerSentEvent = {
      id: lastEventId,
      event: eventType === '' ? 'message' : eventType,
      data: data.endsWith('\n') ? data.slice(0, -1) : data,
    };
    data = '';
    eventType = '';
    callbacks.onEvent(event);
  }

  function processLine(line: string): void {
    if (line === '') {
      dispatch();
      return;
    }
    if (line.charCodeAt(0) === 0x3a /* ':' */) {
      if (callbacks.onComment) {
        callbacks.onComment(line.charCodeAt(1) === 0x20 ? line.slice(2) : line.slice(1));
      }
      return;
    }
    const colon = line.indexOf(':');
    let field: string;
    let value: string;
    if (colon === -1) {
      field = line;
      value = '';
    } else {
      field = line.slice(0, colon);
      value = line.slice(colon + 1);
      if (value.charCodeAt(0) === 0x20) value = value.slice(1);
    }
    switch (field) {
      case 'event':
        eventType = value;
        break;
      case 'data':
        data += value + '\n';
        break;
      case 'id':
        if (!value.includes('\u0000')) idBuffer = value;
        break;
      case 'retry':
        if (DIGITS.test(value) && callbacks.onRetry) callbacks.onRetry(Number.parseInt(value, 10));
        break;
      default:
        // Unknown fields are ignored.
        break;
    }
  }

  function processText(input: string): void {
    let text = input;
    if (text === '') return;
    if (!started) {
      started = true;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    let position = 0;
    if (pendingCR) {
      pendingCR = false;
      if (text.charCodeAt(0) === 0x0a) position = 1;
    }
    while (position < text.length) {
      LINE_BREAK.lastIndex = position;
      const match = LINE_BREAK.exec(text);
      if (match === null) {
        partialLine += text.slice(position);
        return;
      }
      const end = match.index;
      const line = partialLine === '' ? text.slice(position, end) : partialLine + text.slice(position, end);
      partialLine = '';
      position = end + 1;
      if (text.charCodeAt(end) === 0x0d) {
        if (position < text.length) {
          if (text.charCodeAt(position) === 0x0a) position += 1;
        } else {
          pendingCR = true;
        }
      }
      processLine(line);
    }
  }

  function resetStream(): void {
    decoder = null;
    started = false;
    pendingCR = false;
    partialLine = '';
    data = '';
    eventType = '';
    idBuffer = lastEventId;
  }

  return {
    feed(chunk) {
      if (typeof chunk === 'string') {
        processText(chunk);
        return;
      }
      // ignoreBOM: the BOM is dropped by processText, the same way for bytes and for text.
      decoder ??= new TextDecoder('utf-8', { ignoreBOM: true });
      processText(decoder.decode(chunk, { stream: true }));
    },
    end() {
      if (decoder !== null) processText(decoder.decode());
      resetStream();
    },
    reset: resetStream,
    get lastEventId() {
      return lastEventId;
    },
  };
}

/** Parses a whole event stream at once (for tests and for bodies read in full). */
export function parseEventStream(text: string | Uint8Array): ServerSentEvent[] {
  const events: ServerSentEvent[] = [];
  const parser = createSSEParser({ onEvent: (event) => events.push(event) });
  parser.feed(text);
  parser.end();
  return events;
}
