/**
 * React hooks over the jobstream client: `useJob` follows one job, `useJobs` keeps a live list.
 *
 * Handlers passed in options are read through a ref, so inline callbacks do not reconnect the
 * stream on every render (the bug of seed 001's hook, whose callbacks were effect dependencies);
 * only the job id, the client and the transport settings do.
 */

import {
  createContext,
  createElement,
  useCallback,
  useContext,
  useEffect,
  useMemo,
  useRef,
  useState,
  type ReactNode,
} from 'react';

import type { JobStreamClient } from '../client.js';
import type { JobStreamError } from '../errors.js';
import type { JobWatch, JobWatchState, WatchJobOptions } from '../job-watch.js';
import type { JobsWatch, JobsWatchState, WatchJobsOptions } from '../jobs-watch.js';
import type { ConnectionState, Job, JobStatus, LogEntry, TransportName, WatchConfig } from '../types.js';

const ClientContext = createContext<JobStreamClient | null>(null);

export interface JobStreamProviderProps {
  client: JobStreamClient;
  children?: ReactNode;
}

/** Makes `client` the one `useJob`/`useJobs` use when none is passed in their options. */
export function JobStreamProvider(props: JobStreamProviderProps): ReactNode {
  return createElement(ClientContext.Provider, { value: props.client }, props.children);
}

export function useJobStreamClient(explicit?: JobStreamClient): JobStreamClient {
  const fromContext = useContext(ClientContext);
  const client = explicit ?? fromContext;
  if (!client) throw new Error('No JobStreamClient: wrap the tree in <JobStreamProvider client={...}> or pass options.client');
  return client;
}

const CONFIG_KEYS: readonly (keyof WatchConfig)[] = [
  'transports',
  'initialRetryDelay',
  'maxRetryDelay',
  'maxFailures',
  'firstEventTimeout',
  'idleTimeout',
  'connectTimeout',
  'pollInterval',
  'longPollSeconds',
];

function configKey(options: Partial<WatchConfig> & { replay?: boolean; maxJobs?: number; pageSize?: number }): string {
  const parts: unknown[] = CONFIG_KEYS.map((key) => options[key]);
  parts.push(options.replay, options.maxJobs, options.pageSize);
  return JSON.stringify(parts);
}

function pickConfig(options: Partial<WatchConfig>): Partial<WatchConfig> {
  const config: Partial<WatchConfig> = {};
  for (const key of CONFIG_KEYS) {
    if (options[key] !== undefined) (config as Record<string, unknown>)[key] = options[key];
  }
  if (options.random) config.random = options.random;
  return config;
}

// -- useJob -------------------------------------------------------------------------------------

export interface UseJobOptions extends Omit<WatchJobOptions, 'signal' | 'autoStart'> {
  client?: JobStreamClient;
  /** Set false to hold off connecting (default true). */
  enabled?: boolean;
}

export interface UseJobResult {
  job: Job | null;
  status: JobStatus | null;
  /** 0–100. */
  progress: number;
  step: { current: number | null; total: number | null; name: string | null };
  state: string | null;
  /** Seconds to completion, or null when unknown. */
  eta: number | null;
  message: string | null;
  /** Every log line, oldest first. */
  logs: readonly LogEntry[];
  result: unknown;
  /** The job's failure reason, or why the watch stopped (unknown job, refused token). */
  error: string | null;
  /** The error that stopped the watch, with its `code` (`unauthorized`, `not_found`, …). */
  streamError: JobStreamError | null;
  connection: ConnectionState;
  transport: TransportName | null;
  /** The job is finished and its stream closed. */
  done: boolean;
  /** Requests cancellation; resolves with the job (cancel_requested set). */
  cancel: () => Promise<Job>;
}

const IDLE_JOB_STATE: JobWatchState = {
  job: null,
  logs: [],
  connection: 'closed',
  transport: null,
  error: null,
  done: false,
};

/** Follows one job: its snapshot, progress, logs and connection, live. */
export function useJob(jobId: string | null | undefined, options: UseJobOptions = {}): UseJobResult {
  const client = useJobStreamClient(options.client);
  const optionsRef = useRef(options);
  optionsRef.current = options;
  const watchRef = useRef<JobWatch | null>(null);
  const enabled = options.enabled ?? true;
  const key = configKey(options);
  const initialJob = options.initialJob;
  const [state, setState] = useState<JobWatchState>(() =>
    jobId && enabled ? { ...IDLE_JOB_STATE, connection: 'connecting', job: initialJob?.id === jobId ? initialJob : null } : IDLE_JOB_STATE,
  );

  useEffect(() => {
    if (!jobId || !enabled) {
      watchRef.current = null;
      setState(IDLE_JOB_STATE);
      return undefined;
    }
    const current = optionsRef.current;
    const watch = client.watchJob(jobId, {
      ...pickConfig(current),
      replay: current.replay,
      initialJob: current.initialJob,
      autoStart: false,
      onJob: (job, event) => optionsRef.current.onJob?.(job, event),
      onEvent: (event, job) => optionsRef.current.onEvent?.(event, job),
      onLog: (entry, job) => optionsRef.current.onLog?.(entry, job),
      onSnapshot: (job) => optionsRef.current.onSnapshot?.(job),
      onConnection: (connection, transport) => optionsRef.current.onConnection?.(connection, transport),
      onError: (error) => optionsRef.current.onError?.(error),
      onDone: (job) => optionsRef.current.onDone?.(job),
    });
    watchRef.current = watch;
    const unsubscribe = watch.subscribe(() => setState(watch.getState()));
    setState(watch.getState());
    watch.start();
    return () => {
      unsubscribe();
      watch.close();
      if (watchRef.current === watch) watchRef.current = null;
    };
    // `key` stands for the transport settings; handlers are read through the ref.
  }, [client, jobId, enabled, key]);

  const cancel = useCallback(async (): Promise<Job> => {
    const watch = watchRef.current;
    if (watch && watch.id === jobId) return watch.cancel();
    if (!jobId) throw new Error('no job to cancel');
    return client.cancel(jobId);
  }, [client, jobId]);

  return useMemo((): UseJobResult => {
    // A state left over from another job id (before the effect runs) is not shown.
    const job = state.job && state.job.id === jobId ? state.job : null;
    return {
      job,
      status: job?.status ?? null,
      progress: job?.progress ?? 0,
      step: { current: job?.current_step ?? null, total: job?.total_steps ?? null, name: job?.step_name ?? null },
      state: job?.state ?? job?.status ?? null,
      eta: job?.eta_seconds ?? null,
      message: job?.message ?? null,
      logs: job ? state.logs : [],
      result: job?.result ?? null,
      error: job?.error ?? state.error?.message ?? null,
      streamError: state.error,
      connection: state.connection,
      transport: state.transport,
      done: state.done,
      cancel,
    };
  }, [state, jobId, cancel]);
}

// -- useJobs ------------------------------------------------------------------------------------

export interface UseJobsOptions extends Omit<WatchJobsOptions, 'signal' | 'autoStart'> {
  client?: JobStreamClient;
  enabled?: boolean;
  /** Only jobs with one of these statuses. */
  status?: JobStatus | JobStatus[];
  /** Only jobs of this kind. */
  kind?: string;
}

export interface UseJobsResult {
  /** Newest first. */
  jobs: readonly Job[];
  connection: ConnectionState;
  transport: TransportName | null;
  error: JobStreamError | null;
  /** Adds or refreshes a job in the list at once (e.g. the answer of `submit`). */
  upsert: (job: Job) => void;
}

const IDLE_JOBS_STATE: JobsWatchState = { jobs: [], connection: 'closed', transport: null, error: null };

/** A live list of the caller's jobs, from the all-jobs stream. */
export function useJobs(options: UseJobsOptions = {}): UseJobsResult {
  const client = useJobStreamClient(options.client);
  const optionsRef = useRef(options);
  optionsRef.current = options;
  const watchRef = useRef<JobsWatch | null>(null);
  const enabled = options.enabled ?? true;
  const key = configKey(options);
  const [state, setState] = useState<JobsWatchState>(() =>
    enabled ? { ...IDLE_JOBS_STATE, connection: 'connecting' } : IDLE_JOBS_STATE,
  );

  useEffect(() => {
    if (!enabled) {
      watchRef.current = null;
      setState(IDLE_JOBS_STATE);
      return undefined;
    }
    const current = optionsRef.current;
    const watch = client.watchJobs({
      ...pickConfig(current),
      maxJobs: current.maxJobs,
      pageSize: current.pageSize,
      autoStart: false,
      onJobs: (jobs) => optionsRef.current.onJobs?.(jobs),
      onEvent: (event, job) => optionsRef.current.onEvent?.(event, job),
      onConnection: (connection, transport) => optionsRef.current.onConnection?.(connection, transport),
      onError: (error) => optionsRef.current.onError?.(error),
    });
    watchRef.current = watch;
    const unsubscribe = watch.subscribe(() => setState(watch.getState()));
    setState(watch.getState());
    watch.start();
    return () => {
      unsubscribe();
      watch.close();
      if (watchRef.current === watch) watchRef.current = null;
    };
  }, [client, enabled, key]);

  const upsert = useCallback((job: Job) => watchRef.current?.upsert(job), []);
  const statusFilter = options.status;
  const statusKey = Array.isArray(statusFilter) ? statusFilter.join(',') : (statusFilter ?? '');
  const kind = options.kind;

  return useMemo((): UseJobsResult => {
    const statuses = statusKey ? new Set(statusKey.split(',')) : null;
    const jobs =
      statuses || kind
        ? state.jobs.filter((job) => (!statuses || statuses.has(job.status)) && (!kind || job.kind === kind))
        : state.jobs;
    return { jobs, connection: state.connection, transport: state.transport, error: state.error, upsert };
  }, [state, statusKey, kind, upsert]);
}

export type { JobWatchState, JobsWatchState };
