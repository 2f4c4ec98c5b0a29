import type { Job } from '@jobstream/client';

import { SubmitForm } from '../components/SubmitForm';
import { jobHref, navigate } from '../router';

export function NewJobPage() {
  const onSubmitted = (job: Job): void => navigate(jobHref(job.id));
  return (
    <section className="card narrow" aria-labelledby="new-title">
      <h1 id="new-title" tabIndex={-1} className="page-title">
        New job
      </h1>
      <SubmitForm onSubmitted={onSubmitted} />
    </section>
  );
}
