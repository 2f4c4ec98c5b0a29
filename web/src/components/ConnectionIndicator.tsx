import type { ConnectionState, TransportName } from '@jobstream/client';

const TRANSPORT_NAMES: Record<TransportName, string> = {
  sse: 'SSE',
  eventsource: 'EventSource',
  websocket: 'WebSocket',
  poll: 'polling',
};

interface ConnectionIndicatorProps {
  connection: ConnectionState;
  transport: TransportName | null;
  /** The job is finished, so a closed stream is expected. */
  done?: boolean;
  testId?: string;
}

export function connectionText(connection: ConnectionState, done = false): string {
  switch (connection) {
    case 'open':
      return 'Connected';
    case 'connecting':
      return 'Connecting…';
    case 'reconnecting':
      return 'Reconnecting…';
    default:
      return done ? 'Finished' : 'Disconnected';
  }
}

/** The connection dot: green and pulsing while connected, amber while (re)connecting. The element
 * with `testId` holds the dot and exactly the state text ("Connected"); the transport is beside it. */
export function ConnectionIndicator({ connection, transport, done = false, testId = 'connection-dot' }: ConnectionIndicatorProps) {
  const text = connectionText(connection, done);
  const via = transport && connection === 'open' ? TRANSPORT_NAMES[transport] : null;
  return (
    <span className={`connection connection--${connection}${done ? ' connection--done' : ''}`}>
      <span className="connection__state" role="status" data-testid={testId} data-state={connection}>
        <span className="connection__dot" aria-hidden="true" />
        <span className="connection__text">{text}</span>
      </span>
      {via ? (
        <span className="connection__via" data-testid={`${testId}-transport`}>
          via {via}
        </span>
      ) : null}
    </span>
  );
}
