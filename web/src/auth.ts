/**
 * The sign-in state of the UI. In `jwt` mode the server answers 401 until a token is given; the
 * token is kept in sessionStorage (gone when the tab closes) and sent as `Authorization: Bearer`,
 * or as `?token=` where a header cannot go (a `<video src>`, an EventSource, a WebSocket).
 */

const KEY = 'jobstream.token';

type Listener = () => void;

export interface AuthSnapshot {
  token: string | null;
  /** A request was refused for want of a (valid) token. */
  needsSignIn: boolean;
  /** Bumped on every sign-in and sign-out, so live views reconnect with the new token. */
  version: number;
}

function readStoredToken(): string | null {
  try {
    return window.sessionStorage.getItem(KEY);
  } catch {
    return null; // storage disabled
  }
}

let snapshot: AuthSnapshot = { token: readStoredToken(), needsSignIn: false, version: 0 };
const listeners = new Set<Listener>();

function update(patch: Partial<AuthSnapshot>): void {
  snapshot = { ...snapshot, ...patch };
  for (const listener of [...listeners]) listener();
}

export const auth = {
  getSnapshot: (): AuthSnapshot => snapshot,
  subscribe(listener: Listener): () => void {
    listeners.add(listener);
    return () => listeners.delete(listener);
  },
  token: (): string | null => snapshot.token,
  requireSignIn(): void {
    if (!snapshot.needsSignIn) update({ needsSignIn: true });
  },
  signIn(token: string): void {
    const value = token.trim().replace(/^Bearer\s+/i, '');
    try {
      window.sessionStorage.setItem(KEY, value);
    } catch {
      // storage disabled: the token lives in memory for this page
    }
    update({ token: value, needsSignIn: false, version: snapshot.version + 1 });
  },
  signOut(): void {
    try {
      window.sessionStorage.removeItem(KEY);
    } catch {
      // nothing stored
    }
    update({ token: null, needsSignIn: false, version: snapshot.version + 1 });
  },
};
