import { describe, expect, it } from 'vitest';

import { createSSEParser, parseEventStream, type ServerSentEvent } from '../src/sse.js';

/** A small deterministic PRNG (mulberry32), so a failing split can be replayed from its seed. */
function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function parseChunks(chunks: (Uint8Array | string)[]) {
  const events: ServerSentEvent[] = [];
  const comments: string[] = [];
  const retries: number[] = [];
  const parser = createSSEParser({
    onEvent: (event) => events.push(event),
    onComment: (comment) => comments.push(comment),
    onRetry: (ms) => retries.push(ms),
  });
  for (const chunk of chunks) parser.feed(chunk);
  parser.end();
  return { events, comments, retries, lastEventId: parser.lastEventId };
}

function splitRandomly(bytes: Uint8Array, random: () => number, maxSize: number): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  let position = 0;
  while (position < bytes.length) {
    const size = 1 + Math.floor(random() * maxSize);
    chunks.push(bytes.subarray(position, position + size));
    position += size;
  }
  return chunks;
}

// A stream with everything the format allows: a BOM, the three line endings, comments,
// multi-line data, ids, retry, named and unnamed events, and text in several scripts.
const FIXTURE =
  '\uFEFF: hello, a comment\n' +
  'retry: 2500\n\n' +
  'id: 1\r\nevent: progress\r\ndata: {"step":1,"message":"Validating request parameters… 🔍"}\r\n\r\n' +
  'id: 2\revent: log\rdata: 第一行\rdata: второй ряд\rdata: 🎬 third\r\r' +
  ': ping\n' +
  'data:no space\ndata:  two spaces\n\n' +
  'id: 3\nevent: completed\ndata\ndata: {"result":{"video_url":"/v.mp4"},"emoji":"🎉"}\n\n' +
  'event: empty-no-data\n\n' +
  'id\n\n' +
  'data: after id reset\n\n' +
  'retry: 12x\nretry: 40\n' +
  'unknown: field\n' +
  'data: trailing incomplete event';

const EXPECTED: ServerSentEvent[] = [
  { id: '1', event: 'progress', data: '{"step":1,"message":"Validating request parameters… 🔍"}' },
  { id: '2', event: 'log', data: '第一行\nвторой ряд\n🎬 third' },
  { id: '2', event: 'message', data: 'no space\n two spaces' },
  { id: '3', event: 'completed', data: '\n{"result":{"video_url":"/v.mp4"},"emoji":"🎉"}' },
  { id: '', event: 'message', data: 'after id reset' },
];

describe('SSE parser', () => {
  it('parses every field, line ending and comment of the fixture', () => {
    const result = parseChunks([FIXTURE]);
    expect(result.events).toEqual(EXPECTED);
    expect(result.comments).toEqual(['hello, a comment', 'ping']);
    expect(result.retries).toEqual([2500, 40]);
    expect(result.lastEventId).toBe('');
  });

  it('gives the same events for bytes fed whole', () => {
    expect(parseChunks([new TextEncoder().encode(FIXTURE)]).events).toEqual(EXPECTED);
  });

  it('gives the same events for any random split of the bytes, inside multi-byte characters too', () => {
    const bytes = new TextEncoder().encode(FIXTURE);
    for (let seed = 1; seed <= 300; seed += 1) {
      const random = prng(seed);
      const chunks = splitRandomly(bytes, random, 1 + (seed % 17));
      const result = parseChunks(chunks);
      expect(result.events, `seed ${seed}`).toEqual(EXPECTED);
      expect(result.retries, `seed ${seed}`).toEqual([2500, 40]);
      expect(result.comments, `seed ${seed}`).toEqual(['hello, a comment', 'ping']);
    }
  });

  it('handles one byte at a time', () => {
    const bytes = new TextEncoder().encode(FIXTURE);
    const chunks = Array.from(bytes, (byte) => Uint8Array.of(byte));
    expect(parseChunks(chunks).events).toEqual(EXPECTED);
  });

  it('handles random splits of text (a CR and its LF in different chunks)', () => {
    for (let seed = 1; seed <= 200; seed += 1) {
      const random = prng(seed * 7919);
      const chunks: string[] = [];
      let position = 0;
      while (position < FIXTURE.length) {
        const size = 1 + Math.floor(random() * 9);
        chunks.push(FIXTURE.slice(position, position + size));
        position += size;
      }
      expect(parseChunks(chunks).events, `seed ${seed}`).toEqual(EXPECTED);
    }
  });

  it('treats CR LF split across chunks as one line break', () => {
    const { events } = parseChunks(['data: a\r', '\n', '\r', '\ndata: b\r', '\r']);
    expect(events).toEqual([
      { id: '', event: 'message', data: 'a' },
      { id: '', event: 'message', data: 'b' },
    ]);
  });

  it('keeps a multi-byte character split over three chunks intact', () => {
    const bytes = new TextEncoder().encode('data: 🎬\n\n');
    const emoji = bytes.indexOf(0xf0);
    const chunks = [bytes.subarray(0, emoji + 1), bytes.subarray(emoji + 1, emoji + 3), bytes.subarray(emoji + 3)];
    expect(parseChunks(chunks).events).toEqual([{ id: '', event: 'message', data: '🎬' }]);
  });

  it('drops only a leading BOM, once per stream', () => {
    expect(parseEventStream('\uFEFFdata: x\n\n')).toEqual([{ id: '', event: 'message', data: 'x' }]);
    // A second BOM is part of the field name, so the line is an unknown field.
    expect(parseEventStream('\uFEFF\uFEFFdata: x\n\ndata: y\n\n')).toEqual([{ id: '', event: 'message', data: 'y' }]);
    const bom = new Uint8Array([0xef, 0xbb, 0xbf]);
    const rest = new TextEncoder().encode('data: z\n\n');
    expect(parseChunks([bom.subarray(0, 2), bom.subarray(2), rest]).events).toEqual([
      { id: '', event: 'message', data: 'z' },
    ]);
  });

  it('keeps the last event id across events and ignores ids with NUL', () => {
    const { events, lastEventId } = parseChunks(['id: 7\ndata: a\n\ndata: b\n\nid: 8\u0000x\ndata: c\n\n']);
    expect(events.map((event) => event.id)).toEqual(['7', '7', '7']);
    expect(lastEventId).toBe('7');
  });

  it('updates the last event id even for an event without data', () => {
    const { events, lastEventId } = parseChunks(['id: 41\n\n', 'id: 42\nevent: nothing\n\n']);
    expect(events).toEqual([]);
    expect(lastEventId).toBe('42');
  });

  it('dispatches "data:" with an empty value as an empty message', () => {
    expect(parseEventStream('data:\n\n')).toEqual([{ id: '', event: 'message', data: '' }]);
    expect(parseEventStream('data\ndata\n\n')).toEqual([{ id: '', event: 'message', data: '\n' }]);
  });

  it('ignores a retry that is not all digits', () => {
    expect(parseChunks(['retry: -1\nretry: 1.5\nretry: abc\nretry:\n\n']).retries).toEqual([]);
  });

  it('discards an event the stream ends in the middle of', () => {
    expect(parseEventStream('data: complete\n\ndata: partial\n')).toEqual([
      { id: '', event: 'message', data: 'complete' },
    ]);
  });

  it('starts from a given last event id and survives reset()', () => {
    const events: ServerSentEvent[] = [];
    const parser = createSSEParser({ onEvent: (event) => events.push(event) }, { lastEventId: '5' });
    parser.feed('data: a\n\nid: 6\ndata: half');
    parser.reset();
    parser.feed('data: b\n\n');
    expect(events).toEqual([
      { id: '5', event: 'message', data: 'a' },
      { id: '5', event: 'message', data: 'b' },
    ]);
  });

  it('parses the canonical envelope stream of a job', () => {
    const envelope = { type: 'progress', job_id: 'j', seq: 4, ts: '2026-11-23T10:00:00.123Z', data: { progress: 40 } };
    const wire = `id: 4\nevent: progress\ndata: ${JSON.stringify(envelope)}\n\n`;
    const [event] = parseEventStream(wire);
    expect(event?.id).toBe('4');
    expect(JSON.parse(event?.data ?? 'null')).toEqual(envelope);
  });
});
