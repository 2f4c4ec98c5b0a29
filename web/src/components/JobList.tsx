import type { Job } from '@jobstream/client';

import { CONDITION_LABELS, formatAge, formatPercent, jobCondition, jobSummary, kindLabel, shortId } from '../format';
import { useNow } from '../hooks';
import { Link, jobHref } from '../router';
import { ProgressBar } from './ProgressBar';
import { StatusBadge } from './StatusBadge';

function JobRow({ job, now }: { job: Job; now: number }) {
  const step =
    job.current_step !== null && job.total_steps !== null ? `${job.current_step}/${job.total_steps}` : null;
  const summary = jobSummary(job);
  const condition = jobCondition(job);
  const title = summary ?? `${kindLabel(job.kind)} ${shortId(job.id)}`;
  const spoken = [kindLabel(job.kind), summary, condition ? CONDITION_LABELS[condition] : job.status, formatPercent(job.progress)]
    .filter(Boolean)
    .join(', ');
  return (
    <li
      className={`job-row${condition ? ` job-row--${condition}` : ''}`}
      data-testid={`job-row-${job.id}`}
      data-status={job.status}
      data-condition={condition ?? undefined}
    >
      <Link to={jobHref(job.id)} className="job-row__link" aria-label={spoken}>
        <span className="job-row__head">
          <span className="job-row__title" data-testid="row-title" title={title}>
            {title}
          </span>
          <span className="job-row__badges">
            {condition ? (
              <span className={`badge badge--${condition}`} data-testid="row-condition">
                {CONDITION_LABELS[condition]}
              </span>
            ) : null}
            <StatusBadge status={job.status} testId="row-status" />
          </span>
        </span>
        <span className="job-row__sub muted">
          <span className="job-row__kind" data-testid="row-kind">
            {kindLabel(job.kind)}
          </span>
          <span className="job-row__id" title={job.id}>
            {shortId(job.id)}
          </span>
        </span>
        <span className="job-row__progress">
          <ProgressBar
            value={job.progress}
            status={condition ?? job.status}
            size="small"
            label={`Progress of ${kindLabel(job.kind)} job ${summary ?? job.id}`}
          />
          <span className="job-row__percent" data-testid="row-percent">
            {formatPercent(job.progress)}
          </span>
        </span>
        <span className="job-row__meta muted">
          {step ? <span>step {step}</span> : null}
          {job.step_name ? <span className="job-row__step-name">{job.step_name}</span> : null}
          <time dateTime={job.created_at} data-testid="row-age">
            {formatAge(job.created_at, now)}
          </time>
        </span>
      </Link>
    </li>
  );
}

/** The caller's jobs, newest first. */
export function JobList({ jobs, filtered = false }: { jobs: readonly Job[]; filtered?: boolean }) {
  const now = useNow(1000);
  if (jobs.length === 0) {
    return (
      <div data-testid="job-list" className="job-list job-list--empty">
        <p className="muted">{filtered ? 'No jobs match these filters.' : 'No jobs yet. Start one with the form.'}</p>
      </div>
    );
  }
  return (
    <ul className="job-list" data-testid="job-list" aria-label="Jobs">
      {jobs.map((job) => (
        <JobRow key={job.id} job={job} now={now} />
      ))}
    </ul>
  );
}
