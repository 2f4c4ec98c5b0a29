import { describe, expect, it, vi } from 'vitest';

import { JobStreamClient } from '../src/client.js';
import type { JobEvent } from '../src/types.js';
import { FakeJobServer, range, until } from './fake-server.js';

function makeClient(server: FakeJobServer, extra: ConstructorParameters<typeof JobStreamClient>[0] = {}) {
  return new JobStreamClient({
    baseUrl: 'http://fake.test',
    fetch: server.fetch,
    WebSocket: null,
    EventSource: null,
    ...extra,
    watch: {
      initialRetryDelay: 5,
      maxRetryDelay: 40,
      firstEventTimeout: 200,
      pollInterval: 10,
      longPollSeconds: 1,
      random: () => 0.5,
      ...extra.watch,
    },
  });
}

function collect(events: JobEvent[]) {
  return (event: JobEvent) => {
    events.push(event);
  };
}

describe('watchJob over fetch-SSE: reconnect, resume and dedupe', () => {
  it('resends Last-Event-ID after a drop mid-event and loses or repeats nothing', async () => {
    const server = new FakeJobServer();
    server.createJob('j1');
    server.emit('j1', 'status_change', { old_status: 'queued', new_status: 'running' });
    server.runSteps('j1', 4); // seq 3..10
    // First stream: 4 events then half of the 5th; second: 3 events; third: healthy.
    server.plans = [{ dropAfter: 4, cutMidEvent: true }, { dropAfter: 3 }, {}];
    server.splitChunks = (() => {
      let n = 0;
      return () => ((n = (n * 1103515245 + 12345) % 2147483648) / 2147483648);
    })();

    const events: JobEvent[] = [];
    const connections: string[] = [];
    const client = makeClient(server);
    const watch = client.watchJob('j1', {
      onEvent: collect(events),
      onConnection: (state) => connections.push(state),
    });

    await until(() => server.sseConnections.length >= 3 && events.length >= 10);
    server.runSteps('j1', 3, 5); // seq 11..16, live
    server.emit('j1', 'completed', { result: { page_count: 12 }, output_path: null, elapsed_seconds: 1 });
    const job = await watch.finished();

    expect(events.map((event) => event.seq)).toEqual(range(1, 17));
    expect(server.sseConnections.map((connection) => connection.lastEventId)).toEqual(['0', '4', '7']);
    expect(job.status).toBe('completed');
    expect(job.seq).toBe(17);
    expect(job.progress).toBe(100);
    expect(watch.logs.map((entry) => entry.message)).toEqual(range(1, 7).map((step) => `log ${step} — ünïcødé 🎬`));
    expect(watch.connection).toBe('closed');
    expect(connections).toContain('reconnecting');
    expect(connections.at(-1)).toBe('closed');
    // The terminal event closed the stream: no further connection was opened.
    expect(server.sseConnections.length).toBe(3);
  });

  it('drops events a resumed stream replays a second time', async () => {
    const server = new FakeJobServer();
    server.createJob('j2');
    server.runSteps('j2', 3); // seq 2..7
    server.plans = [{ dropAfter: 5 }, { overlap: 3 }];
    const events: JobEvent[] = [];
    const watch = makeClient(server).watchJob('j2', { onEvent: collect(events) });
    await until(() => server.sseConnections.length === 2 && events.length === 7);
    server.emit('j2', 'failed', { message: 'Pipeline error: PDF extraction failed' });
    const job = await watch.finished();
    expect(events.map((event) => event.seq)).toEqual(range(1, 8));
    expect(server.sseConnections[1]?.lastEventId).toBe('5');
    expect(job.status).toBe('failed');
    expect(job.error).toBe('Pipeline error: PDF extraction failed');
  });

  it('without replay, starts from the snapshot and resumes from its seq', async () => {
    const server = new FakeJobServer();
    server.createJob('j3');
    server.runSteps('j3', 2); // seq 2..5
    server.plans = [{ dropAfter: 2 }, {}];
    const events: JobEvent[] = [];
    const snapshots: number[] = [];
    const watch = makeClient(server).watchJob('j3', {
      replay: false,
      onEvent: collect(events),
      onSnapshot: (job) => snapshots.push(job.seq),
    });
    await until(() => snapshots.length === 1);
    server.runSteps('j3', 1, 3); // seq 6, 7: the first stream delivers 6 and drops
    await until(() => server.sseConnections.length === 2);
    server.emit('j3', 'completed', { result: null, output_path: null, elapsed_seconds: 1 });
    await watch.finished();
    expect(server.sseConnections.map((connection) => connection.lastEventId)).toEqual([null, '6']);
    expect(snapshots[0]).toBe(5);
    expect(events.map((event) => event.seq)).toEqual([6, 7, 8]);
    // No GET before the stream: the SSE snapshot was the first thing asked for.
    expect(server.requests[0]?.url).toBe('/api/v1/jobs/j3/events');
  });

  it('takes the job from the canonical snapshot envelope, and still from a bare job object', async () => {
    for (const bareSnapshot of [false, true]) {
      const server = new FakeJobServer();
      server.createJob('s1', 'pdf', { pages: 3 });
      server.runSteps('s1', 1); // seq 2, 3
      server.plans = [{ bareSnapshot }];
      const snapshots: unknown[] = [];
      const watch = makeClient(server).watchJob('s1', { replay: false, onSnapshot: (job) => snapshots.push(job) });
      await until(() => snapshots.length === 1);
      expect(snapshots[0]).toMatchObject({ id: 's1', kind: 'pdf', seq: 3, progress: 5, params: { pages: 3 } });
      expect(watch.job).not.toHaveProperty('type');
      server.emit('s1', 'completed', { result: null, output_path: null, elapsed_seconds: 1 });
      expect((await watch.finished()).status).toBe('completed');
    }
  });

  it("honours the server's retry: hint", async () => {
    const server = new FakeJobServer();
    server.createJob('j4');
    server.plans = [{ retry: 20, dropAfter: 1 }, {}];
    const client = makeClient(server, { watch: { initialRetryDelay: 60_000 } });
    const watch = client.watchJob('j4');
    await until(() => watch.connection === 'open' && server.openStreams === 1);
    server.emit('j4', 'log', { message: 'this one is not delivered: the stream drops' });
    // With the default delay a reconnect would take a minute; the hint makes it 20 ms.
    await until(() => server.sseConnections.length === 2, 2000);
    expect(server.sseConnections[1]?.lastEventId).toBe('1');
    server.emit('j4', 'cancelled', { message: 'Cancelled by user' });
    const job = await watch.finished();
    expect(job.status).toBe('cancelled');
  });

  it('reconnects after an `event: timeout` and resumes', async () => {
    const server = new FakeJobServer();
    server.createJob('j5');
    const events: JobEvent[] = [];
    const watch = makeClient(server).watchJob('j5', { onEvent: collect(events) });
    await until(() => events.length === 1 && server.openStreams === 1);
    server.emit('j5', 'log', { message: 'before timeout' });
    await until(() => events.length === 2);
    server.timeoutStreams();
    server.emit('j5', 'log', { message: 'while disconnected' });
    await until(() => server.sseConnections.length === 2);
    server.emit('j5', 'completed', { result: null, output_path: null, elapsed_seconds: 1 });
    await watch.finished();
    expect(server.sseConnections.map((connection) => connection.lastEventId)).toEqual(['0', '2']);
    expect(events.map((event) => event.seq)).toEqual([1, 2, 3, 4]);
    expect(watch.logs.map((entry) => entry.message)).toEqual(['before timeout', 'while disconnected']);
  });

  it('stops on 401 and tells onUnauthorized', async () => {
    const server = new FakeJobServer();
    server.createJob('j6');
    server.requiredToken = 'good';
    const unauthorized = vi.fn();
    const errors: string[] = [];
    const client = makeClient(server, { token: 'bad', onUnauthorized: unauthorized });
    const watch = client.watchJob('j6', { onError: (error) => errors.push(error.code) });
    await expect(watch.finished()).rejects.toMatchObject({ code: 'unauthorized' });
    expect(errors).toEqual(['unauthorized']);
    expect(unauthorized).toHaveBeenCalledTimes(1);
    expect(watch.connection).toBe('closed');
    expect(watch.getState().error?.status).toBe(401);
  });

  it('sends the token as a Bearer header on the stream', async () => {
    const server = new FakeJobServer();
    server.createJob('j7');
    server.emit('j7', 'completed', { result: 1, output_path: null, elapsed_seconds: 0 });
    server.requiredToken = 'secret';
    let token = 'secret';
    const client = makeClient(server, { token: () => token });
    const job = await client.watchJob('j7').finished();
    expect(job.result).toBe(1);
    expect(server.sseConnections[0]?.authorization).toBe('Bearer secret');
    expect(server.sseConnections[0]?.url).not.toContain('token=');
    token = 'other';
    expect(client.resultUrl('j7')).toBe('http://fake.test/api/v1/jobs/j7/result?token=other');
  });

  it('stops on an unknown job', async () => {
    const server = new FakeJobServer();
    const client = makeClient(server);
    const watch = client.watchJob('missing', { replay: false });
    await expect(watch.finished()).rejects.toMatchObject({ code: 'not_found' });
    expect(server.sseConnections).toHaveLength(1);
  });

  it('does not connect at all for a finished job without replay', async () => {
    const server = new FakeJobServer();
    const job = server.createJob('done');
    server.emit('done', 'completed', { result: 'ok', output_path: null, elapsed_seconds: 0 });
    const watch = makeClient(server).watchJob('done', {
      replay: false,
      initialJob: { ...(server.jobs.get('done') ?? job) },
    });
    const final = await watch.finished();
    expect(final.result).toBe('ok');
    expect(server.sseConnections).toHaveLength(0);
  });

  it('a finished job with replay gets its whole log, then closes', async () => {
    const server = new FakeJobServer();
    server.createJob('old');
    server.runSteps('old', 3);
    server.emit('old', 'completed', { result: 'ok', output_path: null, elapsed_seconds: 0 });
    const watch = makeClient(server).watchJob('old');
    const final = await watch.finished();
    expect(final.status).toBe('completed');
    expect(watch.logs).toHaveLength(3);
    expect(server.sseConnections).toHaveLength(1);
  });

  it('cancel() posts and merges the answer', async () => {
    const server = new FakeJobServer();
    server.createJob('c1');
    const watch = makeClient(server).watchJob('c1');
    await until(() => watch.connection === 'open');
    const answer = await watch.cancel();
    expect(answer.cancel_requested).toBe(true);
    expect(watch.job?.cancel_requested).toBe(true);
    server.emit('c1', 'cancelled', { message: 'Cancelled by user' });
    const final = await watch.finished();
    expect(final.status).toBe('cancelled');
    await expect(makeClient(server).cancel('c1')).rejects.toMatchObject({ code: 'conflict', status: 409 });
  });
});
