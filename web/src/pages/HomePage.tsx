import type { Job, JobStatus } from '@jobstream/client';
import { useJobs } from '@jobstream/client/react';
import { useCallback, useEffect, useMemo, useState } from 'react';

import { useClient } from '../client';
import { ConnectionIndicator } from '../components/ConnectionIndicator';
import { JobList } from '../components/JobList';
import { SubmitForm, useKinds } from '../components/SubmitForm';
import { kindLabel } from '../format';
import { jobHref, navigate } from '../router';

const STATUSES: JobStatus[] = ['queued', 'running', 'completed', 'failed', 'cancelled'];
/** As many as the all-jobs stream opens with (the newest 100), so "Show older jobs" continues
 * where the live list ends. */
const PAGE_SIZE = 100;

interface OlderJobs {
  key: string;
  jobs: Job[];
  /** The cursor of the next page; null when there is none; undefined before the first answer. */
  cursor: string | null | undefined;
  loading: boolean;
  error: string | null;
}

/** Pages of the caller's jobs from `GET /api/v1/jobs` (with the filters), beyond what the live
 * list holds: the first page when the filters change, the next one on `more()`. */
function useJobPages(status: JobStatus | '', kind: string) {
  const client = useClient();
  const key = `${status}|${kind}`;
  const [pages, setPages] = useState<OlderJobs>({ key, jobs: [], cursor: undefined, loading: true, error: null });

  const load = useCallback(
    async (cursor: string | null, signal?: AbortSignal): Promise<void> => {
      setPages((current) => ({ ...current, loading: true, error: null }));
      try {
        const page = await client.list({
          status: status || undefined,
          kind: kind || undefined,
          limit: PAGE_SIZE,
          cursor,
          signal,
        });
        setPages((current) => ({
          key,
          jobs: cursor === null || current.key !== key ? page.items : [...current.jobs, ...page.items],
          cursor: page.next_cursor,
          loading: false,
          error: null,
        }));
      } catch (error) {
        if (signal?.aborted) return;
        setPages((current) => ({ ...current, loading: false, error: error instanceof Error ? error.message : String(error) }));
      }
    },
    [client, key, status, kind],
  );

  useEffect(() => {
    const abort = new AbortController();
    setPages({ key, jobs: [], cursor: undefined, loading: true, error: null });
    void load(null, abort.signal);
    return () => abort.abort();
  }, [key, load]);

  const more = useCallback(() => {
    if (pages.cursor) void load(pages.cursor);
  }, [load, pages.cursor]);
  return { ...pages, more };
}

/** The live jobs and the loaded pages as one list, newest first: for a job in both, the copy
 * further along (higher seq). */
function mergeJobs(live: readonly Job[], paged: readonly Job[], status: string, kind: string): Job[] {
  const byId = new Map<string, Job>();
  for (const job of [...paged, ...live]) {
    const known = byId.get(job.id);
    if (!known || job.seq >= known.seq) byId.set(job.id, job);
  }
  return [...byId.values()]
    .filter((job) => (!status || job.status === status) && (!kind || job.kind === kind))
    .sort((a, b) => (a.created_at === b.created_at ? (a.id < b.id ? 1 : -1) : a.created_at < b.created_at ? 1 : -1));
}

export function HomePage() {
  const live = useJobs();
  const kinds = useKinds();
  const [status, setStatus] = useState<JobStatus | ''>('');
  const [kind, setKind] = useState('');
  const pages = useJobPages(status, kind);
  const jobs = useMemo(() => mergeJobs(live.jobs, pages.jobs, status, kind), [live.jobs, pages.jobs, status, kind]);
  const kindNames = useMemo(() => {
    const names = new Set(kinds.status === 'ready' ? kinds.kinds.map((k) => k.name) : []);
    for (const job of live.jobs) names.add(job.kind);
    return [...names].sort();
  }, [kinds, live.jobs]);

  const onSubmitted = (job: Job): void => {
    live.upsert(job);
    navigate(jobHref(job.id));
  };
  return (
    <div className="home">
      <h1 className="visually-hidden" tabIndex={-1}>
        jobstream
      </h1>
      <section className="card home__list" aria-labelledby="jobs-heading">
        <div className="card__header">
          <h2 className="section-title" id="jobs-heading">
            Jobs
          </h2>
          <ConnectionIndicator connection={live.connection} transport={live.transport} testId="list-connection" />
        </div>
        <div className="filters" role="group" aria-label="Filter the jobs">
          <label className="filters__field">
            <span>Status</span>
            <select
              data-testid="list-filter-status"
              value={status}
              onChange={(event) => setStatus(event.target.value as JobStatus | '')}
            >
              <option value="">All statuses</option>
              {STATUSES.map((value) => (
                <option key={value} value={value}>
                  {value}
                </option>
              ))}
            </select>
          </label>
          <label className="filters__field">
            <span>Kind</span>
            <select data-testid="list-filter-kind" value={kind} onChange={(event) => setKind(event.target.value)}>
              <option value="">All kinds</option>
              {kindNames.map((name) => (
                <option key={name} value={name}>
                  {kindLabel(name)}
                </option>
              ))}
            </select>
          </label>
        </div>
        {live.error && live.error.code !== 'unauthorized' ? (
          <p className="alert alert--error" role="alert">
            Live updates stopped: {live.error.message}
          </p>
        ) : null}
        <JobList jobs={jobs} filtered={Boolean(status || kind)} />
        {pages.error ? (
          <p className="alert alert--error" role="alert" data-testid="list-more-error">
            Could not load more jobs: {pages.error}
          </p>
        ) : null}
        {pages.cursor ? (
          <p className="list-more">
            <button
              type="button"
              className="button"
              data-testid="list-more"
              disabled={pages.loading}
              onClick={pages.more}
            >
              {pages.loading ? 'Loading…' : 'Show older jobs'}
            </button>
          </p>
        ) : null}
      </section>
      <section className="card home__form" aria-labelledby="submit-heading">
        <h2 className="section-title" id="submit-heading">
          New job
        </h2>
        <SubmitForm onSubmitted={onSubmitted} />
      </section>
    </div>
  );
}
