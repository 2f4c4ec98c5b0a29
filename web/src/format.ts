/** Display helpers: percentages, durations, ages. */

export function clampPercent(value: number | null | undefined): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) return 0;
  return Math.min(100, Math.max(0, value));
}

/** `42%`, `42.5%`: one decimal only when there is one. */
export function formatPercent(value: number | null | undefined): string {
  const percent = Math.round(clampPercent(value) * 10) / 10;
  return `${Number.isInteger(percent) ? percent.toFixed(0) : percent.toFixed(1)}%`;
}

/** `45s`, `2m 05s`, `1h 20m`. */
export function formatDuration(totalSeconds: number): string {
  const seconds = Math.max(0, Math.round(totalSeconds));
  if (seconds < 60) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m ${String(seconds % 60).padStart(2, '0')}s`;
  const hours = Math.floor(minutes / 60);
  return `${hours}h ${String(minutes % 60).padStart(2, '0')}m`;
}

export function formatEta(eta: number | null | undefined): string {
  if (typeof eta !== 'number' || !Number.isFinite(eta)) return '—';
  if (eta < 1) return 'under 1s';
  return `about ${formatDuration(eta)}`;
}

/** `just now`, `12s ago`, `5m ago`, `3h ago`, `2d ago`. */
export function formatAge(iso: string | null | undefined, now: number): string {
  if (!iso) return '';
  const then = Date.parse(iso);
  if (!Number.isFinite(then)) return '';
  const seconds = Math.max(0, Math.floor((now - then) / 1000));
  if (seconds < 5) return 'just now';
  if (seconds < 60) return `${seconds}s ago`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m ago`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours}h ago`;
  return `${Math.floor(hours / 24)}d ago`;
}

export function formatTime(iso: string | null | undefined): string {
  if (!iso) return '';
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? '' : date.toLocaleString();
}

export function shortId(id: string): string {
  return id.length > 10 ? `${id.slice(0, 8)}…` : id;
}

export function humanize(name: string): string {
  const words = name.replace(/[_-]+/g, ' ').trim();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

const KIND_LABELS: Record<string, string> = { pdf: 'PDF' };

/** A job kind for display: `Video`, `PDF`, `My kind`. */
export function kindLabel(kind: string): string {
  return KIND_LABELS[kind] ?? humanize(kind);
}

function text(value: unknown): string | null {
  return typeof value === 'string' && value.trim() ? value.trim() : null;
}

/** The last part of a path or URL: `talk.mp3` for `https://example.com/a/talk.mp3?x=1`. */
function fileName(value: string): string {
  const path = value.split(/[?#]/, 1)[0] ?? value;
  const last = path.replace(/\/+$/, '').split('/').pop();
  return last && last.length > 0 ? last : value;
}

/** What a job is, in a few words from its params: the prompt, the name, the file; `null` when
 * the params say nothing a person would recognise it by. */
export function jobSummary(job: { kind: string; params: Record<string, unknown> | null }): string | null {
  const params = job.params ?? {};
  const prompt = text(params.prompt) ?? text(params.title) ?? text(params.name);
  if (prompt) {
    const kind = text(params.media_type);
    return kind && job.kind === 'media' ? `${prompt} (${kind})` : prompt;
  }
  const file = text(params.file) ?? text(params.filename) ?? text(params.source_url) ?? text(params.url);
  if (file) return fileName(file);
  if (typeof params.pages === 'number') return `${params.pages} ${params.pages === 1 ? 'page' : 'pages'}`;
  if (job.kind === 'pdf') return '12 pages';
  if (job.kind === 'task') return 'sample recording';
  return null;
}

/** A condition a job's status alone does not show: its worker went quiet (`stalled`), or it was
 * sent back to the queue after it had started (`requeued`). */
export type JobCondition = 'stalled' | 'requeued' | null;

export function jobCondition(job: { status: string; state: string | null; started_at: string | null }): JobCondition {
  if (job.status === 'running' && job.state === 'stalled') return 'stalled';
  if (job.status === 'queued' && job.started_at) return 'requeued';
  return null;
}

export const CONDITION_LABELS: Record<'stalled' | 'requeued', string> = {
  stalled: 'Stalled',
  requeued: 'Re-queued',
};
