import { useJobs } from '@jobstream/client/react';

export function MyJobs() {
  const { jobs, connection } = useJobs(); // the signed-in user's jobs, newest first
  if (connection === 'connecting' && jobs.length === 0) return <p>Loading…</p>;
  return (
    <ul>
      {jobs.map((job) => (
        <li key={job.id}>
          <a href={`/jobs/${job.id}`}>{job.kind}</a> {job.status}{' '}
          <progress value={job.progress} max={100} aria-label={`Progress of ${job.id}`} />
        </li>
      ))}
    </ul>
  );
}
