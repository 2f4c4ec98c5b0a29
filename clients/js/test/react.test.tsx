// @vitest-environment jsdom
import { act, cleanup, render, screen, waitFor } from '@testing-library/react';
import { StrictMode, useState } from 'react';
import { afterEach, describe, expect, it } from 'vitest';

import { JobStreamClient } from '../src/client.js';
import { JobStreamProvider, useJob, useJobs } from '../src/react/index.js';
import { FakeJobServer, until } from './fake-server.js';

afterEach(() => cleanup());

function makeClient(server: FakeJobServer) {
  return new JobStreamClient({
    baseUrl: 'http://fake.test',
    fetch: server.fetch,
    WebSocket: null,
    EventSource: null,
    watch: { initialRetryDelay: 5, maxRetryDelay: 40, firstEventTimeout: 150, pollInterval: 10, random: () => 0.5 },
  });
}

function JobView({ id, onEvent }: { id: string; onEvent?: () => void }) {
  const job = useJob(id, { onEvent });
  return (
    <div>
      <div data-testid="status">{job.status ?? '-'}</div>
      <div data-testid="progress">{job.progress}</div>
      <div data-testid="step">
        {job.step.current}/{job.step.total} {job.step.name}
      </div>
      <div data-testid="eta">{job.eta ?? '-'}</div>
      <div data-testid="connection">{job.connection}</div>
      <div data-testid="error">{job.error ?? ''}</div>
      <ol data-testid="logs">
        {job.logs.map((entry) => (
          <li key={entry.seq}>{entry.message}</li>
        ))}
      </ol>
      <button type="button" onClick={() => void job.cancel()}>
        cancel
      </button>
    </div>
  );
}

describe('useJob', () => {
  it('shows a job live, from connecting to done', async () => {
    const server = new FakeJobServer();
    server.createJob('r1');
    server.runSteps('r1', 1);
    const client = makeClient(server);
    render(
      <StrictMode>
        <JobStreamProvider client={client}>
          <JobView id="r1" />
        </JobStreamProvider>
      </StrictMode>,
    );
    await waitFor(() => expect(screen.getByTestId('connection').textContent).toBe('open'));
    expect(screen.getByTestId('progress').textContent).toBe('5');
    expect(screen.getByTestId('logs').children).toHaveLength(1);

    act(() => server.runSteps('r1', 2, 2));
    await waitFor(() => expect(screen.getByTestId('progress').textContent).toBe('15'));
    expect(screen.getByTestId('step').textContent).toBe('3/20 Step 3 ✓ 進捗');
    expect(screen.getByTestId('eta').textContent).toBe('17');
    expect(screen.getByTestId('status').textContent).toBe('queued');
    expect(screen.getByTestId('logs').children).toHaveLength(3);

    act(() => {
      server.emit('r1', 'failed', { message: 'Pipeline error: PDF extraction failed' });
    });
    await waitFor(() => expect(screen.getByTestId('status').textContent).toBe('failed'));
    expect(screen.getByTestId('error').textContent).toBe('Pipeline error: PDF extraction failed');
    await waitFor(() => expect(screen.getByTestId('connection').textContent).toBe('closed'));
  });

  it('does not reconnect when inline handlers change on re-render', async () => {
    const server = new FakeJobServer();
    server.createJob('r2');
    const client = makeClient(server);
    let bump: () => void = () => undefined;
    function Parent() {
      const [count, setCount] = useState(0);
      bump = () => setCount((value) => value + 1);
      return (
        <JobStreamProvider client={client}>
          <span data-testid="count">{count}</span>
          <JobView id="r2" onEvent={() => undefined} />
        </JobStreamProvider>
      );
    }
    render(<Parent />);
    await waitFor(() => expect(screen.getByTestId('connection').textContent).toBe('open'));
    for (let index = 0; index < 5; index += 1) act(() => bump());
    act(() => server.runSteps('r2', 1));
    await waitFor(() => expect(screen.getByTestId('progress').textContent).toBe('5'));
    expect(server.sseConnections).toHaveLength(1);
  });

  it('cancel() asks the server to cancel', async () => {
    const server = new FakeJobServer();
    server.createJob('r3');
    const client = makeClient(server);
    render(
      <JobStreamProvider client={client}>
        <JobView id="r3" />
      </JobStreamProvider>,
    );
    await waitFor(() => expect(screen.getByTestId('connection').textContent).toBe('open'));
    act(() => screen.getByText('cancel').click());
    await until(() => server.requests.some((request) => request.method === 'POST' && request.url === '/api/v1/jobs/r3/cancel'));
    act(() => {
      server.emit('r3', 'cancelled', { message: 'Cancelled by user' });
    });
    await waitFor(() => expect(screen.getByTestId('status').textContent).toBe('cancelled'));
  });

  it('reports an unknown job as an error', async () => {
    const server = new FakeJobServer();
    render(
      <JobStreamProvider client={makeClient(server)}>
        <JobView id="nope" />
      </JobStreamProvider>,
    );
    await waitFor(() => expect(screen.getByTestId('error').textContent).toBe('Job not found'));
    expect(screen.getByTestId('connection').textContent).toBe('closed');
  });

  it('switches to another job when the id changes', async () => {
    const server = new FakeJobServer();
    server.createJob('one');
    server.createJob('two');
    server.runSteps('two', 2);
    const client = makeClient(server);
    const { rerender } = render(
      <JobStreamProvider client={client}>
        <JobView id="one" />
      </JobStreamProvider>,
    );
    await waitFor(() => expect(screen.getByTestId('connection').textContent).toBe('open'));
    expect(screen.getByTestId('progress').textContent).toBe('0');
    rerender(
      <JobStreamProvider client={client}>
        <JobView id="two" />
      </JobStreamProvider>,
    );
    await waitFor(() => expect(screen.getByTestId('progress').textContent).toBe('10'));
    await until(() => server.openStreams === 1);
  });
});

function JobList({ status }: { status?: 'running' }) {
  const { jobs, connection } = useJobs({ status });
  return (
    <div>
      <div data-testid="list-connection">{connection}</div>
      <ul data-testid="list">
        {jobs.map((job) => (
          <li key={job.id}>
            {job.id}:{job.status}:{job.progress}
          </li>
        ))}
      </ul>
    </div>
  );
}

describe('useJobs', () => {
  it('keeps a live list, newest first', async () => {
    const server = new FakeJobServer();
    server.createJob('a');
    const client = makeClient(server);
    render(
      <JobStreamProvider client={client}>
        <JobList />
      </JobStreamProvider>,
    );
    await waitFor(() => expect(screen.getByTestId('list').textContent).toBe('a:queued:0'));
    act(() => {
      server.createJob('b');
      server.emit('b', 'status_change', { old_status: 'queued', new_status: 'running' });
      server.runSteps('b', 1);
    });
    await waitFor(() =>
      expect([...screen.getByTestId('list').children].map((item) => item.textContent)).toEqual([
        'b:running:5',
        'a:queued:0',
      ]),
    );
    expect(screen.getByTestId('list-connection').textContent).toBe('open');
  });

  it('filters by status', async () => {
    const server = new FakeJobServer();
    server.createJob('a');
    server.createJob('b');
    server.emit('b', 'status_change', { old_status: 'queued', new_status: 'running' });
    render(
      <JobStreamProvider client={makeClient(server)}>
        <JobList status="running" />
      </JobStreamProvider>,
    );
    await waitFor(() => expect(screen.getByTestId('list').textContent).toBe('b:running:0'));
  });
});
