import type { LogEntry } from '@jobstream/client';
import { useEffect, useRef } from 'react';

const RECENT = 5;

function LogLine({ entry }: { entry: LogEntry }) {
  return (
    <li className={`log__line log__line--${entry.level}`} data-seq={entry.seq}>
      {entry.step !== null ? <span className="log__step">[{entry.step}]</span> : null}
      <span className="log__message">{entry.message}</span>
    </li>
  );
}

/** The latest five lines, then the whole log in a scrollable box that follows new lines while
 * it is scrolled to the bottom. */
export function LogView({ logs }: { logs: readonly LogEntry[] }) {
  const recent = logs.slice(-RECENT);
  const fullRef = useRef<HTMLDivElement>(null);
  const pinned = useRef(true);

  useEffect(() => {
    const box = fullRef.current;
    if (box && pinned.current) box.scrollTop = box.scrollHeight;
  }, [logs.length]);

  return (
    <div className="logs">
      <h2 className="section-title" id="log-heading">
        Latest log lines
      </h2>
      {recent.length === 0 ? (
        <p className="muted" data-testid="log-empty">
          No log lines yet.
        </p>
      ) : null}
      <ol className="log log--recent" data-testid="log-lines" aria-labelledby="log-heading">
        {recent.map((entry) => (
          <LogLine key={entry.seq} entry={entry} />
        ))}
      </ol>
      {logs.length > 0 ? (
        <>
          <h3 className="section-subtitle" id="full-log-heading">
            Full log <span className="muted">({logs.length} {logs.length === 1 ? 'line' : 'lines'})</span>
          </h3>
          <div
            ref={fullRef}
            className="log-scroll"
            role="log"
            tabIndex={0}
            aria-labelledby="full-log-heading"
            data-testid="log-full"
            onScroll={(event) => {
              const box = event.currentTarget;
              pinned.current = box.scrollHeight - box.scrollTop - box.clientHeight < 24;
            }}
          >
            <ol className="log">
              {logs.map((entry) => (
                <LogLine key={entry.seq} entry={entry} />
              ))}
            </ol>
          </div>
        </>
      ) : null}
    </div>
  );
}
