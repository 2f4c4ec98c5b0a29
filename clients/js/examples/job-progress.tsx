import { useJob } from '@jobstream/client/react';

export function JobProgress({ id }: { id: string }) {
  const { status, progress, step, eta, logs, error, connection, cancel } = useJob(id);
  const active = status === 'queued' || status === 'running';
  return (
    <section>
      <progress value={progress} max={100} aria-label="Job progress" /> {Math.round(progress)}%
      <p>
        Step {step.current}/{step.total} {step.name} · ETA {eta === null ? '—' : `${Math.round(eta)} s`} ·{' '}
        {connection === 'open' ? '🟢 live' : connection === 'closed' ? status : '🟠 reconnecting…'}
      </p>
      <ul>{logs.slice(-5).map((line) => <li key={line.seq}>{line.message}</li>)}</ul>
      {status === 'failed' ? <p role="alert">{error}</p> : null}
      {active ? <button onClick={() => void cancel()}>Cancel</button> : null}
    </section>
  );
}
