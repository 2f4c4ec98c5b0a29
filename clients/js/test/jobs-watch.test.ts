import { describe, expect, it } from 'vitest';

import { JobStreamClient } from '../src/client.js';
import type { JobEvent } from '../src/types.js';
import { FakeJobServer, fakeWebSocketClass, until } from './fake-server.js';

function makeClient(server: FakeJobServer) {
  return new JobStreamClient({
    baseUrl: 'http://fake.test',
    fetch: server.fetch,
    WebSocket: null,
    EventSource: null,
    watch: { initialRetryDelay: 5, maxRetryDelay: 40, firstEventTimeout: 150, pollInterval: 10, random: () => 0.5 },
  });
}

describe('watchJobs (the all-jobs stream)', () => {
  it('starts from the snapshot, adds new jobs from their first event, folds their progress', async () => {
    const server = new FakeJobServer();
    server.createJob('a', 'pdf');
    server.emit('a', 'status_change', { old_status: 'queued', new_status: 'running' });
    const watch = makeClient(server).watchJobs();
    await until(() => watch.jobs.length === 1);
    expect(watch.jobs[0]).toMatchObject({ id: 'a', status: 'running' });

    server.createJob('b', 'video');
    server.runSteps('b', 2);
    await until(() => watch.jobs.length === 2 && watch.jobs[0]?.seq === 5);
    expect(watch.jobs.map((job) => job.id)).toEqual(['b', 'a']); // newest first
    expect(watch.jobs[0]).toMatchObject({ kind: 'video', progress: 10, current_step: 2, state: 'running' });
    expect(watch.getState().connection).toBe('open');
    watch.close();
    expect(watch.getState().connection).toBe('closed');
  });

  it('resumes from the cursor after a drop and applies each event once', async () => {
    const server = new FakeJobServer();
    server.createJob('a');
    server.allPlans = [{ dropAfter: 3 }, {}];
    const events: JobEvent[] = [];
    const watch = makeClient(server).watchJobs({ onEvent: (event) => events.push(event) });
    await until(() => watch.jobs.length === 1);
    server.runSteps('a', 3); // 6 events: the first two go out, then the stream drops
    await until(() => server.sseConnections.length === 2 && events.length === 6);
    expect(server.sseConnections.map((connection) => connection.lastEventId)).toEqual([null, '3']);
    expect(events.map((event) => event.seq)).toEqual([2, 3, 4, 5, 6, 7]);
    expect(watch.jobs[0]?.seq).toBe(7);
    watch.close();
  });

  it('fetches a job it meets mid-life', async () => {
    const server = new FakeJobServer();
    const watch = makeClient(server).watchJobs();
    await until(() => watch.getState().connection === 'open');
    // A job created before the snapshot was taken would be in it; this one sneaks in unseen.
    server.createJob('late', 'task');
    await until(() => watch.jobs.length === 1);
    watch.close();

    const server2 = new FakeJobServer();
    server2.createJob('x', 'task');
    server2.allPlans = [{ silent: false }];
    const watch2 = makeClient(server2).watchJobs();
    await until(() => watch2.jobs.length === 1);
    // Remove the job from the client's view, then send a mid-life event.
    (watch2 as unknown as { byId: Map<string, unknown> }).byId.clear();
    server2.emit('x', 'progress', { progress: 50 });
    await until(() => watch2.jobs.length === 1 && watch2.jobs[0]?.progress === 50);
    expect(server2.requests.some((request) => request.url === '/api/v1/jobs/x')).toBe(true);
    watch2.close();
  });

  it('takes the jobs from the canonical snapshot envelope, and still from a bare {items}', async () => {
    for (const bareSnapshot of [false, true]) {
      const server = new FakeJobServer();
      server.createJob('a', 'pdf');
      server.createJob('b', 'video');
      server.allPlans = [{ bareSnapshot }];
      const watch = makeClient(server).watchJobs();
      await until(() => watch.jobs.length === 2);
      expect(watch.jobs.map((job) => job.id)).toEqual(['b', 'a']);
      expect(server.requests.map((request) => request.url)).toEqual(['/api/v1/events']);
      watch.close();
    }
  });

  it('follows every job over the WebSocket: the snapshot, then events, resuming from the cursor', async () => {
    const server = new FakeJobServer();
    server.createJob('a', 'pdf');
    const fake = fakeWebSocketClass(server);
    const events: JobEvent[] = [];
    const client = new JobStreamClient({
      baseUrl: 'http://fake.test',
      fetch: server.fetch,
      WebSocket: fake.WebSocket,
      EventSource: null,
      watch: { transports: ['websocket'], initialRetryDelay: 5, maxRetryDelay: 40, random: () => 0.5 },
    });
    const watch = client.watchJobs({ onEvent: (event) => events.push(event) });
    await until(() => watch.jobs.length === 1 && watch.getState().connection === 'open');
    server.createJob('b', 'video'); // cursor 2
    server.runSteps('b', 1); // cursors 3, 4
    await until(() => events.length === 3);
    fake.sockets[0]?.drop();
    server.emit('a', 'status_change', { old_status: 'queued', new_status: 'running' }); // cursor 5, missed
    await until(() => fake.sockets.length === 2 && events.length === 4);
    expect(fake.sockets.map((socket) => socket.url)).toEqual([
      'ws://fake.test/api/v1/ws',
      'ws://fake.test/api/v1/ws?after_cursor=4',
    ]);
    expect(events.map((event) => `${event.job_id}:${event.seq}`)).toEqual(['b:1', 'b:2', 'b:3', 'a:2']);
    expect(watch.jobs.map((job) => [job.id, job.status, job.progress])).toEqual([
      ['b', 'queued', 5],
      ['a', 'running', 0],
    ]);
    watch.close();
  });

  it('falls back to listing when the all-jobs stream is missing', async () => {
    const server = new FakeJobServer();
    server.createJob('a');
    server.noStreams = true;
    const watch = makeClient(server).watchJobs();
    await until(() => watch.getState().transport === 'poll' && watch.jobs.length === 1);
    server.createJob('b');
    server.emit('a', 'completed', { result: null, output_path: null, elapsed_seconds: 1 });
    await until(() => watch.jobs.length === 2 && watch.jobs.find((job) => job.id === 'a')?.status === 'completed');
    watch.close();
  });
});
