import { JobStreamError, isTerminalStatus, type Job, type JobEvent } from '@jobstream/client';
import { useJob } from '@jobstream/client/react';
import { useEffect, useRef, useState } from 'react';

import { useClient } from '../client';
import { ConnectionIndicator } from '../components/ConnectionIndicator';
import { LogView } from '../components/LogView';
import { ProgressBar } from '../components/ProgressBar';
import { StatusBadge } from '../components/StatusBadge';
import { formatDuration, formatEta, formatPercent, formatTime, jobCondition, jobSummary, kindLabel } from '../format';
import { useNow } from '../hooks';
import { Link, jobHref, navigate } from '../router';

function isVideo(job: Job): boolean {
  return job.kind === 'video' || (job.artifact?.media_type.startsWith('video/') ?? false);
}

function Result({ job }: { job: Job }) {
  const client = useClient();
  const url = client.resultUrl(job.id);
  const hasJson = job.result !== null && job.result !== undefined;
  const artifact = job.artifact;
  const media = artifact?.media_type ?? '';
  return (
    <section className="card result" aria-labelledby="result-heading">
      <h2 className="section-title" id="result-heading">
        Result
      </h2>
      {isVideo(job) ? (
        <video className="result__video" controls preload="metadata" playsInline src={url} data-testid="result-video">
          Your browser cannot play this video; <a href={url}>download it</a>.
        </video>
      ) : null}
      {media.startsWith('image/') ? <img className="result__image" src={url} alt={`The job's output, ${artifact?.filename ?? ''}`} data-testid="result-image" /> : null}
      {media.startsWith('audio/') ? <audio className="result__audio" controls preload="metadata" src={url} data-testid="result-audio" /> : null}
      {artifact ? (
        <p className="result__files">
          <a
            className={`button${isVideo(job) ? '' : ' button--primary'}`}
            href={url}
            download={artifact.filename}
            data-testid={isVideo(job) ? 'result-download' : 'result-link'}
          >
            Download {artifact.filename}
          </a>
          <span className="muted result__type">{artifact.media_type}</span>
        </p>
      ) : null}
      {hasJson && !isVideo(job) ? (
        <pre className="result__json" data-testid="result-json" tabIndex={0} aria-label="Result data">
          {JSON.stringify(job.result, null, 2)}
        </pre>
      ) : null}
      {!artifact && hasJson ? (
        <p>
          <a className="button" href={url} download={`${job.id}.json`} data-testid="result-link">
            Download the result (JSON)
          </a>
        </p>
      ) : null}
    </section>
  );
}

/** The remaining time, counted down from the latest estimate: seconds, or null when unknown. */
function useCountdown(eta: number | null, running: boolean, now: number): number | null {
  const since = useRef<{ eta: number | null; at: number }>({ eta: null, at: Date.now() });
  if (since.current.eta !== eta) since.current = { eta, at: Date.now() };
  if (eta === null || !running) return null;
  return Math.max(0, eta - (now - since.current.at) / 1000);
}

/** The latest warning the server logged about a stall ("No word from its worker since …"). */
function stallNotice(logs: readonly { level: string; message: string }[]): string | null {
  for (let index = logs.length - 1; index >= 0; index -= 1) {
    const entry = logs[index];
    if (entry && entry.level === 'warning') return entry.message;
  }
  return null;
}

/** `text` ending with a full stop. */
function sentence(text: string): string {
  return /[.!?…]$/.test(text) ? text : `${text}.`;
}

function RunAgain({ job }: { job: Job }) {
  const client = useClient();
  const [busy, setBusy] = useState(false);
  const [problem, setProblem] = useState<string | null>(null);
  const run = async (): Promise<void> => {
    setBusy(true);
    setProblem(null);
    try {
      const next = await client.submit(job.kind, job.params ?? {});
      navigate(jobHref(next.id));
    } catch (error) {
      setProblem(error instanceof Error ? error.message : String(error));
      setBusy(false);
    }
  };
  return (
    <>
      <button type="button" className="button" data-testid="run-again-button" disabled={busy} onClick={() => void run()}>
        {busy ? 'Starting…' : 'Run again'}
      </button>
      {problem ? (
        <span className="form__error" role="alert" data-testid="run-again-error">
          {problem}
        </span>
      ) : null}
    </>
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
  const countdown = useCountdown(live.eta, job?.status === 'running', now);
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
  const condition = jobCondition(job);
  const summary = jobSummary(job);
  const reconnecting = !live.done && live.connection === 'reconnecting';
  const etaText = job.status === 'completed' ? 'done' : finished ? '—' : countdown !== null && countdown < 1 && live.eta !== null ? 'any moment now' : formatEta(countdown);
  const stepLine = stepText(live.step.current, live.step.total, live.step.name);
  const timing =
    job.status === 'running'
      ? [`${formatDuration(elapsed)} elapsed`, countdown !== null ? (countdown < 1 ? 'finishing' : `${formatEta(countdown)} left`) : null]
      : job.status === 'queued'
        ? ['waiting for a worker']
        : [`took ${formatDuration(elapsed)}`];

  return (
    <article className={`job-page${reconnecting ? ' job-page--offline' : ''}`} aria-labelledby="job-title">
      <p className="back">
        <Link to="/">← All jobs</Link>
      </p>
      <header className="job-header">
        <div className="job-header__title">
          <h1 id="job-title" tabIndex={-1} className="page-title">
            {kindLabel(job.kind)} job
          </h1>
          <StatusBadge status={job.status} testId="job-status" />
          {condition === 'stalled' ? (
            <span className="badge badge--stalled" data-testid="job-condition">
              Stalled
            </span>
          ) : null}
        </div>
        <ConnectionIndicator connection={live.connection} transport={live.transport} done={live.done} />
      </header>
      {summary ? (
        <p className="job-what" data-testid="job-what">
          {summary}
        </p>
      ) : null}
      <p className="job-id muted">
        <span className="visually-hidden">Job id: </span>
        <code data-testid="job-id">{job.id}</code>
      </p>

      {reconnecting ? (
        <div className="alert alert--warning banner" role="status" data-testid="connection-lost">
          <strong>Connection lost.</strong> Reconnecting… what happens meanwhile is caught up as soon as the server
          answers again.
        </div>
      ) : null}
      {condition === 'stalled' ? (
        <div className="alert alert--warning banner" role="alert" data-testid="job-stalled">
          <strong>Stalled:</strong> {sentence(stallNotice(live.logs) ?? 'its worker has stopped reporting')} If the worker
          does not come back, the job is re-queued.
        </div>
      ) : null}

      <section className={`card${condition ? ` card--${condition}` : ''}`} aria-labelledby="progress-heading">
        <h2 className="visually-hidden" id="progress-heading">
          Progress
        </h2>
        <div className="progress-line">
          <ProgressBar value={job.progress} status={condition ?? job.status} label="Job progress" testId="job-progress" />
          <span className="progress-line__percent" data-testid="job-percent">
            {formatPercent(job.progress)}
          </span>
        </div>
        <p className="job-timing" data-testid="job-timing">
          {[stepLine !== '—' ? stepLine : null, ...timing].filter(Boolean).join(' · ')}
        </p>
        <dl className="stats">
          <div>
            <dt>Step</dt>
            <dd data-testid="job-step">{stepLine}</dd>
          </div>
          <div>
            <dt>State</dt>
            <dd data-testid="job-state">{live.state ?? '—'}</dd>
          </div>
          <div>
            <dt>ETA</dt>
            <dd data-testid="job-eta">{etaText}</dd>
          </div>
          <div>
            <dt>{finished ? 'Took' : 'Elapsed'}</dt>
            <dd data-testid="job-elapsed">{formatDuration(elapsed)}</dd>
          </div>
        </dl>
        {job.message && job.status !== 'failed' && job.status !== 'cancelled' && !(condition === 'stalled' && job.message === stallNotice(live.logs)) ? (
          <p className="job-message" data-testid="job-message">
            {job.message}
          </p>
        ) : null}
        <div className="actions">
          {finished ? null : (
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
          )}
          {finished ? <RunAgain job={job} /> : null}
          {cancelError ? (
            <span className="form__error" id="cancel-error" role="alert">
              {cancelError}
            </span>
          ) : null}
        </div>
      </section>

      {restarted ? (
        <div className="alert alert--info" role="status" data-testid="job-restarted">
          {job.status === 'queued' ? (
            <>
              <strong>Re-queued:</strong> the job was re-queued because {restarted}; it runs again from the start when a
              worker takes it.
            </>
          ) : (
            <>
              <strong>Restarted:</strong> the job was re-queued because {restarted}, and ran again from the start.
            </>
          )}
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
        <details className="params-details" data-testid="job-params-details">
          <summary>Parameters</summary>
          <pre className="params" tabIndex={0} aria-label="Job parameters" data-testid="job-params">
            {JSON.stringify(job.params, null, 2)}
          </pre>
        </details>
      </section>
    </article>
  );
}
