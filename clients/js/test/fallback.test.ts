import { describe, expect, it } from 'vitest';

import { JobStreamClient, type JobStreamClientOptions } from '../src/client.js';
import type { JobEvent, TransportName } from '../src/types.js';
import { FakeJobServer, fakeEventSourceClass, fakeWebSocketClass, range, until } from './fake-server.js';

function makeClient(server: FakeJobServer, extra: JobStreamClientOptions = {}) {
  return new JobStreamClient({
    baseUrl: 'http://fake.test',
    fetch: server.fetch,
    WebSocket: null,
    EventSource: null,
    ...extra,
    watch: {
      initialRetryDelay: 5,
      maxRetryDelay: 40,
      firstEventTimeout: 150,
      pollInterval: 10,
      longPollSeconds: 1,
      random: () => 0.5,
      ...extra.watch,
    },
  });
}

/** Drives a job to completion in the background, a few ms per step. */
async function finishLater(server: FakeJobServer, id: string, steps = 3): Promise<void> {
  for (let step = 1; step <= steps; step += 1) {
    await new Promise((resolve) => setTimeout(resolve, 15));
    server.runSteps(id, 1, step);
  }
  await new Promise((resolve) => setTimeout(resolve, 15));
  server.emit(id, 'completed', { result: { ok: true }, output_path: null, elapsed_seconds: 1 });
}

describe('transport fallback', () => {
  it('falls back to polling when the stream opens but stays silent (a buffering proxy)', async () => {
    const server = new FakeJobServer();
    server.createJob('p1');
    server.plans = [{ silent: true }];
    const transports: (TransportName | null)[] = [];
    const watch = makeClient(server).watchJob('p1', { onConnection: (_, transport) => transports.push(transport) });
    await until(() => watch.transport === 'poll');
    void finishLater(server, 'p1');
    const job = await watch.finished();
    expect(job.status).toBe('completed');
    expect(job.progress).toBe(100);
    expect(server.sseConnections).toHaveLength(1);
    expect(transports).toContain('sse');
    expect(transports).toContain('poll');
    // Long-polls of the events page carried the resume point.
    const polls = server.requests.filter(
      (request) => request.url.startsWith('/api/v1/jobs/p1/events?') && request.headers['accept'] === 'application/json',
    );
    expect(polls.length).toBeGreaterThan(0);
    expect(polls.every((request) => /after_seq=\d+&wait=1/.test(request.url))).toBe(true);
  });

  it('delivers every event and log line on polling, as a stream would', async () => {
    const server = new FakeJobServer();
    server.createJob('pl');
    server.runSteps('pl', 2);
    server.plans = [{ silent: true }];
    const events: JobEvent[] = [];
    const logs: string[] = [];
    const watch = makeClient(server).watchJob('pl', {
      onEvent: (event) => events.push(event),
      onLog: (entry) => logs.push(entry.message),
    });
    await until(() => watch.transport === 'poll');
    void finishLater(server, 'pl', 2);
    const job = await watch.finished();
    expect(job.status).toBe('completed');
    const seqs = events.map((event) => event.seq);
    expect(seqs).toEqual(Array.from({ length: job.seq }, (_, i) => i + 1));
    expect(logs.length).toBe(4);
    expect(watch.getState().logs.map((entry) => entry.message)).toEqual(logs);
  });

  it('polls snapshots on a server without the events page', async () => {
    const server = new FakeJobServer();
    server.createJob('po');
    server.plans = [{ silent: true }];
    server.noEventsPage = true;
    const watch = makeClient(server).watchJob('po');
    await until(() => watch.transport === 'poll');
    void finishLater(server, 'po', 1);
    expect((await watch.finished()).status).toBe('completed');
    expect(server.requests.some((request) => /^\/api\/v1\/jobs\/po\?wait=1/.test(request.url))).toBe(true);
  });

  it('falls back when a proxy hands over the events only at the end of the stream', async () => {
    const server = new FakeJobServer();
    server.createJob('p2');
    server.plans = [{ buffered: true }];
    const events: JobEvent[] = [];
    const watch = makeClient(server).watchJob('p2', { onEvent: (event) => events.push(event) });
    await until(() => watch.transport === 'poll');
    void finishLater(server, 'p2', 2);
    const job = await watch.finished();
    expect(job.status).toBe('completed');
    // Whatever events arrived, by the stream or by polling, none was repeated.
    expect(new Set(events.map((event) => event.seq)).size).toBe(events.length);
  });

  it('moves on at once when the stream route answers with a web page', async () => {
    const server = new FakeJobServer();
    server.createJob('p3');
    server.plans = [{ contentType: 'text/html' }];
    const started = Date.now();
    const watch = makeClient(server, { watch: { firstEventTimeout: 5000 } }).watchJob('p3');
    await until(() => watch.transport === 'poll');
    expect(Date.now() - started).toBeLessThan(1000);
    void finishLater(server, 'p3', 1);
    expect((await watch.finished()).status).toBe('completed');
  });

  it('moves on when the stream route is missing but the job exists', async () => {
    const server = new FakeJobServer();
    server.createJob('p4');
    server.noStreams = true;
    const errors: string[] = [];
    const watch = makeClient(server).watchJob('p4', { replay: false, onError: (error) => errors.push(error.code) });
    await until(() => watch.transport === 'poll');
    void finishLater(server, 'p4', 1);
    expect((await watch.finished()).status).toBe('completed');
    expect(errors).toEqual([]);
  });

  it('retries a failing stream with backoff, then falls back after maxFailures', async () => {
    const server = new FakeJobServer();
    server.createJob('p5');
    server.plans = [{ status: 500 }, { status: 500 }, { status: 500 }];
    const watch = makeClient(server, { watch: { maxFailures: 3 } }).watchJob('p5');
    await until(() => watch.transport === 'poll');
    expect(server.sseConnections).toHaveLength(3);
    void finishLater(server, 'p5', 1);
    expect((await watch.finished()).status).toBe('completed');
  });

  it('keeps SSE after a 503 (stream cap) and resumes when it recovers', async () => {
    const server = new FakeJobServer();
    server.createJob('p6');
    server.plans = [{ status: 503 }, {}];
    const events: JobEvent[] = [];
    const watch = makeClient(server).watchJob('p6', { onEvent: (event) => events.push(event) });
    await until(() => server.sseConnections.length === 2 && watch.connection === 'open');
    void finishLater(server, 'p6', 2);
    await watch.finished();
    expect(watch.transport).toBe('sse');
    expect(events.map((event) => event.seq)).toEqual(range(1, 6));
  });

  it('stays on SSE while the server is down, and resumes there when it is back', async () => {
    const server = new FakeJobServer();
    server.createJob('d1');
    const events: JobEvent[] = [];
    const watch = makeClient(server, { watch: { maxFailures: 2, maxRetryDelay: 20 } }).watchJob('d1', {
      onEvent: (event) => events.push(event),
    });
    await until(() => watch.connection === 'open' && events.length === 1);
    server.down = true;
    server.dropStreams();
    await until(() => server.requests.length > 12); // several failed reconnects and probes
    server.emit('d1', 'log', { message: 'while down' });
    server.down = false;
    await until(() => events.length === 2);
    server.emit('d1', 'completed', { result: null, output_path: null, elapsed_seconds: 1 });
    await watch.finished();
    expect(watch.transport).toBe('sse');
    expect(events.map((event) => event.seq)).toEqual([1, 2, 3]);
    expect(server.sseConnections.at(-1)?.lastEventId).toBe('1');
  });

  it('falls back from a WebSocket that never opens', async () => {
    const server = new FakeJobServer();
    server.createJob('w1');
    const fake = fakeWebSocketClass(server, { refuse: true });
    const watch = makeClient(server, {
      WebSocket: fake.WebSocket,
      watch: { transports: ['websocket', 'poll'] },
    }).watchJob('w1');
    await until(() => watch.transport === 'poll');
    expect(fake.sockets).toHaveLength(1);
    void finishLater(server, 'w1', 1);
    expect((await watch.finished()).status).toBe('completed');
  });

  it('follows a job over the WebSocket, resuming with after_seq after a drop', async () => {
    const server = new FakeJobServer();
    server.createJob('w2');
    server.runSteps('w2', 2); // seq 2..5
    const fake = fakeWebSocketClass(server);
    const events: JobEvent[] = [];
    const watch = makeClient(server, {
      token: 'tok',
      WebSocket: fake.WebSocket,
      watch: { transports: ['websocket', 'poll'] },
    }).watchJob('w2', { onEvent: (event) => events.push(event) });
    await until(() => events.length === 5);
    fake.sockets[0]?.drop();
    server.runSteps('w2', 1, 3); // seq 6, 7 while reconnecting
    await until(() => fake.sockets.length === 2 && events.length === 7);
    server.emit('w2', 'completed', { result: null, output_path: null, elapsed_seconds: 1 });
    await watch.finished();
    expect(events.map((event) => event.seq)).toEqual(range(1, 8));
    expect(fake.sockets[0]?.url).toBe('ws://fake.test/api/v1/jobs/w2/ws?after_seq=0&token=tok');
    expect(fake.sockets[1]?.url).toBe('ws://fake.test/api/v1/jobs/w2/ws?after_seq=5&token=tok');
    expect(watch.transport).toBe('websocket');
  });

  it('stops when the WebSocket refuses the token (4401)', async () => {
    const server = new FakeJobServer();
    server.createJob('w3');
    const fake = fakeWebSocketClass(server, { closeCode: 4401 });
    const watch = makeClient(server, {
      WebSocket: fake.WebSocket,
      watch: { transports: ['websocket', 'poll'] },
    }).watchJob('w3');
    await expect(watch.finished()).rejects.toMatchObject({ code: 'unauthorized' });
    expect(fake.sockets).toHaveLength(1);
  });

  it('skips the WebSocket when the base URL is relative', () => {
    const server = new FakeJobServer();
    const fake = fakeWebSocketClass(server);
    const client = new JobStreamClient({ baseUrl: '', fetch: server.fetch, WebSocket: fake.WebSocket });
    expect(client.webSocketUrl('/api/v1/ws')).toBeNull();
  });

  it('uses a native EventSource with the token and resume point in the query', async () => {
    const server = new FakeJobServer();
    server.createJob('e1');
    server.runSteps('e1', 1);
    server.plans = [{ dropAfter: 2 }, {}];
    const fake = fakeEventSourceClass(server);
    const events: JobEvent[] = [];
    const watch = makeClient(server, {
      token: 't0k',
      EventSource: fake.EventSource,
      watch: { transports: ['eventsource', 'poll'] },
    }).watchJob('e1', { onEvent: (event) => events.push(event) });
    await until(() => server.sseConnections.length === 2 && events.length === 3);
    server.emit('e1', 'completed', { result: null, output_path: null, elapsed_seconds: 1 });
    await watch.finished();
    expect(events.map((event) => event.seq)).toEqual([1, 2, 3, 4]);
    expect(fake.urls).toEqual([
      'http://fake.test/api/v1/jobs/e1/events?last_event_id=0&token=t0k',
      'http://fake.test/api/v1/jobs/e1/events?last_event_id=2&token=t0k',
    ]);
  });
});
