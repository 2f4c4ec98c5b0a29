import { JobStreamError, isTerminalStatus, type Job, type JobEvent } from '@jobstream/client';
import { useJob } from '@jobstream/client/react';
import { useEffect, useState } from 'react';

import { useClient } from '../client';
import { ConnectionIndicator } from '../components/ConnectionIndicator';
import { LogView } from '../components/LogView';
import { ProgressBar } from '../components/ProgressBar';
import { StatusBadge } from '../components/StatusBadge';
import { formatDuration, formatEta, formatPercent, formatTime, kindLabel } from '../format';
import { useNow } from '../hooks';
import { Link } from '../router';

function isVideo(job: Job): boolean {
  return job.kind === 'video' || (job.artifact?.media_type.startsWith('video/') ?? false);
}

function Result({ job }: { job: Job }) {
  const client = useClient();
  const url = client.resultUrl(job.id);
  const hasJson = job.result !== null && job.result !== undefined;
  return (
    <section className="card result" aria-labelledby="result-heading">
      <h2 className="section-title" id="result-heading">
        Result
      </h2>
      {isVideo(job) ? (
        <>
          <video className="result__video" controls preload="metadata" playsInline src={url} data-testid="result-video">
            Your browser cannot play this video; <a href={url}>download it</a>.
          </video>
          <p>
            <a className="button" href={url} download={job.artifact?.filename ?? `${job.id}.mp4`} data-testid="result-download">
              Download video
            </a>
          </p>
        </>
      ) : (
        <p>
          <a
            className="button button--primary"
            href={url}
            download={job.artifact?.filename ?? true}
            data-testid="result-link"
          >
            Download result{job.artifact ? ` (${job.artifact.filename})` : ''}
          </a>
        </p>
      )}
      {hasJson && !isVideo(job) ? (
        <pre className="result__json" data-testid="result-json" tabIndex={0} aria-label="Result data">
          {JSON.stringify(job.result, null, 2)}
        </pre>
      ) : null}
    </section>
  );
}

function stepText(current: number | null, total: number | null, name: string | null): string {
  const numbers = current !== null && total !== null ? `${current}/${total}` : current !== null ? `${current}` : null;
  if (numbers && name) return `Step ${numbers} · ${name}`;
  if (numbers) return `Step ${numbers}`;
  return name ?? '—';
}

/** A running job sent back to the queue (its worker or server died) starts over: say why, so the
 * bar going back to 0 % makes sense. */
function restartReason(event: JobEvent): string | null {
  if (event.type !== 'status_change') return null;
  const { old_status: from, new_status: to, reason } = event.data;
  if (from !== 'running' || to !== 'queued') return null;
  return typeof reason === 'string' && reason ? reason : 'it was interrupted';
}

export function JobPage({ id }: { id: string }) {
  const [restarted, setRestarted] = useState<string | null>(null);
  const live = useJob(id, {
    onEvent: (event) => {
      const reason = restartReason(event);
      if (reason) setRestarted(reason);
    },
  });
  const { job } = live;
  const now = useNow(1000);
  const [cancelling, setCancelling] = useState(false);
  const [cancelError, setCancelError] = useState<string | null>(null);

  const finished = job ? isTerminalStatus(job.status) : false;
  useEffect(() => {
    document.title = job ? `${formatPercent(job.progress)} · ${job.kind} · jobstream` : 'Job · jobstream';
    return () => {
      document.title = 'jobstream';
    };
  }, [job]);

  const cancel = async (): Promise<void> => {
    setCancelling(true);
    setCancelError(null);
    try {
      await live.cancel();
    } catch (error) {
      setCancelError(
        error instanceof JobStreamError && error.code === 'conflict' ? 'The job has already finished.' : String((error as Error).message ?? error),
      );
    } finally {
      setCancelling(false);
    }
  };

  if (!job) {
    const notFound = live.streamError?.code === 'not_found';
    return (
      <article className="job-page" aria-busy={!live.streamError}>
        <p>
          <Link to="/">← All jobs</Link>
        </p>
        <h1 tabIndex={-1} className="page-title">
          {notFound ? 'Job not found' : 'Loading job…'}
        </h1>
        {live.streamError && !notFound ? (
          <p className="alert alert--error" role="alert" data-testid="job-error">
            {live.streamError.message}
          </p>
        ) : null}
        {notFound ? <p className="muted">There is no job {id}, or it is not yours.</p> : null}
        {!live.streamError ? <ConnectionIndicator connection={live.connection} transport={live.transport} /> : null}
      </article>
    );
  }

  const elapsedFrom = job.started_at ?? job.created_at;
  const elapsedTo = job.finished_at ? Date.parse(job.finished_at) : now;
  const elapsed = Math.max(0, (elapsedTo - Date.parse(elapsedFrom)) / 1000);
  const cancelDisabled = finished || cancelling || job.cancel_requested;

  return (
    <article className="job-page" aria-labelledby="job-title">
      <p className="back">
        <Link to="/">← All jobs</Link>
      </p>
      <header className="job-header">
        <div className="job-header__title">
          <h1 id="job-title" tabIndex={-1} className="page-title">
            {kindLabel(job.kind)} job
          </h1>
          <StatusBadge status={job.status} testId="job-status" />
        </div>
        <ConnectionIndicator connection={live.connection} transport={live.transport} done={live.done} />
      </header>
      <p className="job-id muted">
        <span className="visually-hidden">Job id: </span>
        <code data-testid="job-id">{job.id}</code>
      </p>

      <section className="card" aria-labelledby="progress-heading">
        <h2 className="visually-hidden" id="progress-heading">
          Progress
        </h2>
        <div className="progress-line">
          <ProgressBar value={job.progress} status={job.status} label="Job progress" testId="job-progress" />
          <span className="progress-line__percent" data-testid="job-percent">
            {formatPercent(job.progress)}
          </span>
        </div>
        <dl className="stats">
          <div>
            <dt>Step</dt>
            <dd data-testid="job-step">{stepText(live.step.current, live.step.total, live.step.name)}</dd>
          </div>
          <div>
            <dt>State</dt>
            <dd data-testid="job-state">{live.state ?? '—'}</dd>
          </div>
          <div>
            <dt>ETA</dt>
            <dd data-testid="job-eta">{finished ? '—' : formatEta(live.eta)}</dd>
          </div>
          <div>
            <dt>{finished ? 'Took' : 'Elapsed'}</dt>
            <dd data-testid="job-elapsed">{formatDuration(elapsed)}</dd>
          </div>
        </dl>
        {job.message && job.status !== 'failed' && job.status !== 'cancelled' ? (
          <p className="job-message" data-testid="job-message">
            {job.message}
          </p>
        ) : null}
        {finished ? null : (
          <div className="actions">
            <button
              type="button"
              className="button button--danger"
              data-testid="cancel-button"
              onClick={() => void cancel()}
              disabled={cancelDisabled}
              aria-describedby={cancelError ? 'cancel-error' : undefined}
            >
              {job.cancel_requested && !finished ? 'Cancelling…' : 'Cancel'}
            </button>
            {cancelError ? (
              <span className="form__error" id="cancel-error" role="alert">
                {cancelError}
              </span>
            ) : null}
          </div>
        )}
      </section>

      {restarted ? (
        <div className="alert alert--info" role="status" data-testid="job-restarted">
          <strong>Restarted:</strong> the job was re-queued because {restarted}, and ran again from the start.
        </div>
      ) : null}
      {job.status === 'failed' ? (
        <div className="alert alert--error" role="alert" data-testid="job-error">
          <strong>Failed:</strong> {job.error ?? job.message ?? 'the job failed'}
        </div>
      ) : null}
      {job.status === 'cancelled' ? (
        <div className="alert alert--muted" role="status" data-testid="job-cancelled">
          <strong>Cancelled:</strong> {job.error ?? job.message ?? 'the job was cancelled'}
        </div>
      ) : null}
      {live.streamError && job.status !== 'failed' ? (
        <div className="alert alert--error" role="alert" data-testid="stream-error">
          Live updates stopped: {live.streamError.message}
        </div>
      ) : null}

      {job.status === 'completed' ? <Result job={job} /> : null}

      <section className="card" aria-labelledby="log-heading">
        <LogView logs={live.logs} />
      </section>

      <section className="card details" aria-labelledby="details-heading">
        <h2 className="section-title" id="details-heading">
          Details
        </h2>
        <dl className="stats stats--details">
          <div>
            <dt>Created</dt>
            <dd>
              <time dateTime={job.created_at}>{formatTime(job.created_at)}</time>
            </dd>
          </div>
          {job.started_at ? (
            <div>
              <dt>Started</dt>
              <dd>
                <time dateTime={job.started_at}>{formatTime(job.started_at)}</time>
              </dd>
            </div>
          ) : null}
          {job.finished_at ? (
            <div>
              <dt>Finished</dt>
              <dd>
                <time dateTime={job.finished_at}>{formatTime(job.finished_at)}</time>
              </dd>
            </div>
          ) : null}
          {job.owner ? (
            <div>
              <dt>Owner</dt>
              <dd>{job.owner}</dd>
            </div>
          ) : null}
        </dl>
        <h3 className="section-subtitle">Parameters</h3>
        <pre className="params" tabIndex={0} aria-label="Job parameters" data-testid="job-params">
          {JSON.stringify(job.params, null, 2)}
        </pre>
      </section>
    </article>
  );
}
