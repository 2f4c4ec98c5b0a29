import type { Job } from '@jobstream/client';
import type { UseJobsResult } from '@jobstream/client/react';

import { formatAge, formatPercent, kindLabel, shortId } from '../format';
import { useNow } from '../hooks';
import { Link, jobHref } from '../router';
import { ProgressBar } from './ProgressBar';
import { StatusBadge } from './StatusBadge';

function JobRow({ job, now }: { job: Job; now: number }) {
  const step =
    job.current_step !== null && job.total_steps !== null ? `${job.current_step}/${job.total_steps}` : null;
  return (
    <li className="job-row" data-testid={`job-row-${job.id}`} data-status={job.status}>
      <Link to={jobHref(job.id)} className="job-row__link" aria-label={`${job.kind} job ${job.id}, ${job.status}, ${formatPercent(job.progress)}`}>
        <span className="job-row__head">
          <span className="job-row__kind">{kindLabel(job.kind)}</span>
          <StatusBadge status={job.status} testId="row-status" />
        </span>
        <span className="job-row__id muted" title={job.id}>
          {shortId(job.id)}
        </span>
        <span className="job-row__progress">
          <ProgressBar value={job.progress} status={job.status} size="small" label={`Progress of ${job.kind} job ${job.id}`} />
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

/** The live list of the caller's jobs, newest first. */
export function JobList({ jobs }: { jobs: UseJobsResult['jobs'] }) {
  const now = useNow(1000);
  if (jobs.length === 0) {
    return (
      <div data-testid="job-list" className="job-list job-list--empty">
        <p className="muted">No jobs yet. Start one with the form.</p>
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
