import { describe, expect, it } from 'vitest';

import { JobStreamClient } from '../src/client.js';
import { FakeJobServer } from './fake-server.js';

function recordingFetch(responses: Response[]) {
  const calls: { url: string; init: RequestInit }[] = [];
  const fetch = async (url: string, init: RequestInit = {}) => {
    calls.push({ url, init });
    const next = responses.shift();
    if (!next) throw new Error('no more responses');
    return next;
  };
  return { fetch, calls };
}

const json = (status: number, body: unknown) =>
  new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });

describe('JobStreamClient REST calls', () => {
  it('submits with a JSON body and a Bearer token', async () => {
    const { fetch, calls } = recordingFetch([json(202, { id: 'j1', status: 'queued' })]);
    const client = new JobStreamClient({ baseUrl: 'https://jobs.example/', token: 'tkn', fetch });
    const job = await client.submit('video', { prompt: 'a red fox' });
    expect(job.id).toBe('j1');
    expect(calls[0]?.url).toBe('https://jobs.example/api/v1/jobs');
    expect(calls[0]?.init.method).toBe('POST');
    expect(JSON.parse(String(calls[0]?.init.body))).toEqual({ kind: 'video', params: { prompt: 'a red fox' } });
    expect((calls[0]?.init.headers as Record<string, string>)['Authorization']).toBe('Bearer tkn');
  });

  it('turns a 422 detail list into a readable validation error', async () => {
    const detail = [{ loc: ['body', 'params', 'prompt'], msg: 'String should have at least 10 characters', type: 'string_too_short' }];
    const { fetch } = recordingFetch([json(422, { detail })]);
    const client = new JobStreamClient({ fetch });
    const error = await client.submit('video', { prompt: 'short' }).catch((caught: unknown) => caught);
    expect(error).toMatchObject({ code: 'validation', status: 422, message: 'params.prompt: String should have at least 10 characters' });
    expect((error as { issues: unknown[] }).issues).toEqual(detail);
  });

  it('lists with filters and builds the query', async () => {
    const { fetch, calls } = recordingFetch([json(200, { items: [], next_cursor: null })]);
    const client = new JobStreamClient({ fetch });
    await client.list({ status: 'running', kind: 'pdf', limit: 20, cursor: null });
    expect(calls[0]?.url).toBe('/api/v1/jobs?status=running&kind=pdf&limit=20');
  });

  it('reports a network failure as such', async () => {
    const client = new JobStreamClient({
      fetch: () => Promise.reject(new TypeError('fetch failed')),
    });
    await expect(client.get('x')).rejects.toMatchObject({ code: 'network' });
  });

  it('long-polls with ETag and If-None-Match', async () => {
    const server = new FakeJobServer();
    server.createJob('p');
    const client = new JobStreamClient({ baseUrl: 'http://fake.test', fetch: server.fetch });
    const first = await client.getIfChanged('p', null);
    expect(first.job?.seq).toBe(1);
    expect(first.etag).toBe('"p-1"');
    const second = await client.getIfChanged('p', first.etag);
    expect(second.job).toBeNull();
  });

  it('builds result URLs for <video src> with and without the token', () => {
    const client = new JobStreamClient({ baseUrl: 'http://h:8000', token: 'a b' });
    expect(client.resultUrl('id/1')).toBe('http://h:8000/api/v1/jobs/id%2F1/result?token=a%20b');
    expect(client.resultUrl('x', { token: false })).toBe('http://h:8000/api/v1/jobs/x/result');
    expect(new JobStreamClient().resultUrl('x')).toBe('/api/v1/jobs/x/result');
    expect(client.webSocketUrl('/api/v1/ws')).toBe('ws://h:8000/api/v1/ws?token=a%20b');
    expect(new JobStreamClient({ baseUrl: 'https://h' }).webSocketUrl('/api/v1/ws')).toBe('wss://h/api/v1/ws');
  });
});
