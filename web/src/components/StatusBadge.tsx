interface StatusBadgeProps {
  status: string | null | undefined;
  testId?: string;
}

export function StatusBadge({ status, testId }: StatusBadgeProps) {
  const value = status ?? 'unknown';
  return (
    <span className={`badge badge--${value}`} data-testid={testId}>
      {value}
    </span>
  );
}
