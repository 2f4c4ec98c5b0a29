import { clampPercent, formatPercent } from '../format';

interface ProgressBarProps {
  value: number | null | undefined;
  label: string;
  status?: string | null;
  size?: 'large' | 'small';
  testId?: string;
}

/** A progress bar with the ARIA the spec asks for: role, value range and a spoken value. */
export function ProgressBar({ value, label, status, size = 'large', testId }: ProgressBarProps) {
  const percent = clampPercent(value);
  return (
    <div
      className={`progress progress--${size}`}
      role="progressbar"
      aria-label={label}
      aria-valuemin={0}
      aria-valuemax={100}
      aria-valuenow={Math.round(percent * 10) / 10}
      aria-valuetext={formatPercent(percent)}
      data-status={status ?? undefined}
      data-testid={testId}
    >
      <div className="progress__fill" style={{ width: `${percent}%` }} />
    </div>
  );
}
