import type { Job } from '@jobstream/client';
import { useJobs } from '@jobstream/client/react';

import { ConnectionIndicator } from '../components/ConnectionIndicator';
import { JobList } from '../components/JobList';
import { SubmitForm } from '../components/SubmitForm';
import { jobHref, navigate } from '../router';

export function HomePage() {
  const live = useJobs();
  const onSubmitted = (job: Job): void => {
    live.upsert(job);
    navigate(jobHref(job.id));
  };
  return (
    <div className="home">
      <h1 className="visually-hidden" tabIndex={-1}>
        jobstream
      </h1>
      <section className="card home__form" aria-labelledby="submit-heading">
        <h2 className="section-title" id="submit-heading">
          New job
        </h2>
        <SubmitForm onSubmitted={onSubmitted} />
      </section>
      <section className="card home__list" aria-labelledby="jobs-heading">
        <div className="card__header">
          <h2 className="section-title" id="jobs-heading">
            Jobs
          </h2>
          <ConnectionIndicator connection={live.connection} transport={live.transport} testId="list-connection" />
        </div>
        {live.error && live.error.code !== 'unauthorized' ? (
          <p className="alert alert--error" role="alert">
            Live updates stopped: {live.error.message}
          </p>
        ) : null}
        <JobList jobs={live.jobs} />
      </section>
    </div>
  );
}
