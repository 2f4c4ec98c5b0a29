// @vitest-environment jsdom
/**
 * The two React examples of docs/client.md are the files in examples/, word for word (checked
 * here), and they work: rendered against the fake server, they follow a job and a list live.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { act, cleanup, render, screen, waitFor } from '@testing-library/react';
import { afterEach, describe, expect, it } from 'vitest';

import { JobProgress } from '../examples/job-progress.js';
import { MyJobs } from '../examples/my-jobs.js';
import { JobStreamClient } from '../src/client.js';
import { JobStreamProvider } from '../src/react/index.js';
import { FakeJobServer, until } from './fake-server.js';

afterEach(() => cleanup());

const read = (path: string): string => readFileSync(fileURLToPath(new URL(path, import.meta.url)), 'utf8');

function makeClient(server: FakeJobServer) {
  return new JobStreamClient({
    baseUrl: 'http://fake.test',
    fetch: server.fetch,
    WebSocket: null,
    EventSource: null,
    watch: { initialRetryDelay: 5, maxRetryDelay: 40, firstEventTimeout: 150, pollInterval: 10, random: () => 0.5 },
  });
}

describe('docs/client.md', () => {
  it.each(['job-progress.tsx', 'my-jobs.tsx'])('shows examples/%s verbatim, in under 20 lines', (name) => {
    const example = read(`../examples/${name}`);
    const docs = read('../../../docs/client.md');
    expect(docs).toContain(example.trim());
    expect(example.trim().split('\n').length).toBeLessThan(20);
  });
});

describe('the docs examples', () => {
  it('JobProgress: a live progress bar, logs, the failure and a cancel button', async () => {
    const server = new FakeJobServer();
    server.createJob('p1');
    server.emit('p1', 'status_change', { old_status: 'queued', new_status: 'running' });
    server.runSteps('p1', 2);
    render(
      <JobStreamProvider client={makeClient(server)}>
        <JobProgress id="p1" />
      </JobStreamProvider>,
    );
    const bar = await screen.findByRole('progressbar', { name: 'Job progress' });
    await waitFor(() => expect(bar.getAttribute('value')).toBe('10'));
    await waitFor(() => expect(screen.getByText(/🟢 live/)).toBeTruthy());
    expect(screen.getByText(/Step 2\/20 Step 2/)).toBeTruthy();
    expect(screen.getAllByRole('listitem')).toHaveLength(2);

    act(() => screen.getByRole('button', { name: 'Cancel' }).click());
    await until(() => server.requests.some((request) => request.method === 'POST' && request.url === '/api/v1/jobs/p1/cancel'));
    act(() => {
      server.emit('p1', 'failed', { message: 'Pipeline error: OCR failed' });
    });
    await waitFor(() => expect(screen.getByRole('alert').textContent).toBe('Pipeline error: OCR failed'));
    expect(screen.queryByRole('button', { name: 'Cancel' })).toBeNull();
  });

  it('MyJobs: the list of the user’s jobs, live', async () => {
    const server = new FakeJobServer();
    server.createJob('first', 'video');
    render(
      <JobStreamProvider client={makeClient(server)}>
        <MyJobs />
      </JobStreamProvider>,
    );
    await waitFor(() => expect(screen.getAllByRole('listitem')).toHaveLength(1));
    act(() => {
      server.createJob('second', 'pdf');
      server.runSteps('second', 3);
    });
    await waitFor(() => expect(screen.getAllByRole('listitem')).toHaveLength(2));
    const [newest] = screen.getAllByRole('progressbar');
    await waitFor(() => expect(newest?.getAttribute('value')).toBe('15'));
    expect(screen.getAllByRole('link').map((link) => link.getAttribute('href'))).toEqual(['/jobs/second', '/jobs/first']);
  });
});
