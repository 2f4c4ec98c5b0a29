/**
 * @jobstream/client — follow jobstream jobs from a browser, Node, or anything with `fetch`.
 *
 * ```ts
 * const client = new JobStreamClient({ baseUrl: 'http://127.0.0.1:8000', token });
 * const job = await client.submit('video', { prompt: 'a red fox in the snow' });
 * client.watchJob(job.id, { onJob: (j) => render(j.progress), onDone: (j) => show(j.result) });
 * ```
 */

export { JobStreamClient } from './client.js';
export type { JobStreamClientOptions } from './client.js';
export { API_PREFIX, jobPath } from './paths.js';
export { JobStreamError, describeDetail } from './errors.js';
export type { JobStreamErrorCode, ValidationIssue } from './errors.js';
export { JobWatch } from './job-watch.js';
export type { JobWatchHandlers, JobWatchState, WatchJobOptions } from './job-watch.js';
export { JobsWatch } from './jobs-watch.js';
export type { JobsWatchHandlers, JobsWatchState, WatchJobsOptions } from './jobs-watch.js';
export { applyEvent, isJob, isJobEvent, jobFromFirstEvent, logEntryFromEvent, mergeSnapshot } from './reduce.js';
export { createSSEParser, parseEventStream } from './sse.js';
export type { SSEParser, SSEParserCallbacks, ServerSentEvent } from './sse.js';
export { backoffDelay } from './backoff.js';
export { DEFAULT_WATCH_CONFIG } from './watch.js';
export { JOB_EVENT_TYPES, TERMINAL_STATUSES, isTerminalEvent, isTerminalStatus } from './types.js';
export type {
  CompletedData,
  ConnectionState,
  EventDataMap,
  EventSourceConstructor,
  EventSourceLike,
  FailedData,
  FetchLike,
  GetJobOptions,
  Job,
  JobArtifact,
  JobEvent,
  JobEventType,
  JobKind,
  JobLinks,
  JobPage,
  EventsPage,
  EventsPageOptions,
  JobSnapshotMessage,
  JobStatus,
  JobsSnapshotMessage,
  JsonSchema,
  ListJobsOptions,
  LogData,
  LogEntry,
  ProgressData,
  RequestOptions,
  StatusChangeData,
  TokenSource,
  TransportName,
  WatchConfig,
  WebSocketConstructor,
  WebSocketLike,
} from './types.js';
