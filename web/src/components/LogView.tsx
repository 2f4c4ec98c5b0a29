import type { LogEntry } from '@jobstream/client';
import { useEffect, useRef, useState } from 'react';

const RECENT = 5;

function LogLine({ entry }: { entry: LogEntry }) {
  return (
    <li className={`log__line log__line--${entry.level}`} data-seq={entry.seq}>
      {entry.step !== null ? <span className="log__step">[{entry.step}]</span> : null}
      <span className="log__message">{entry.message}</span>
    </li>
  );
}

/** One log panel: the latest five lines, or (expanded) the whole log in a scrollable box that
 * follows new lines while it is scrolled to the bottom. */
export function LogView({ logs }: { logs: readonly LogEntry[] }) {
  const [expanded, setExpanded] = useState(false);
  const fullRef = useRef<HTMLDivElement>(null);
  const pinned = useRef(true);
  const hidden = Math.max(0, logs.length - RECENT);

  useEffect(() => {
    const box = fullRef.current;
    if (box && pinned.current) box.scrollTop = box.scrollHeight;
  }, [logs.length, expanded]);

  return (
    <div className="logs">
      <div className="logs__header">
        <h2 className="section-title" id="log-heading">
          Log{' '}
          <span className="muted" data-testid="log-count">
            ({logs.length} {logs.length === 1 ? 'line' : 'lines'})
          </span>
        </h2>
        {hidden > 0 || expanded ? (
          <button
            type="button"
            className="button button--ghost"
            data-testid="log-expand"
            aria-expanded={expanded}
            aria-controls="log-panel"
            onClick={() => {
              pinned.current = true;
              setExpanded(!expanded);
            }}
          >
            {expanded ? 'Show the latest lines' : `Show all ${logs.length} lines`}
          </button>
        ) : null}
      </div>
      <div id="log-panel">
        {logs.length === 0 ? (
          <p className="muted" data-testid="log-empty">
            No log lines yet.
          </p>
        ) : expanded ? (
          <div
            ref={fullRef}
            className="log-scroll"
            role="log"
            tabIndex={0}
            aria-labelledby="log-heading"
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
        ) : (
          <>
            {hidden > 0 ? (
              <p className="log__more muted" data-testid="log-hidden">
                {hidden} earlier {hidden === 1 ? 'line' : 'lines'} above
              </p>
            ) : null}
            <ol className="log log--recent" data-testid="log-lines" aria-labelledby="log-heading" role="log">
              {logs.slice(-RECENT).map((entry) => (
                <LogLine key={entry.seq} entry={entry} />
              ))}
            </ol>
          </>
        )}
      </div>
    </div>
  );
}
