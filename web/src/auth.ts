/**
 * The sign-in state of the UI. Under `jwt` the server answers 401 until the browser is signed in:
 * the sign-in form posts the token to `POST /api/v1/session`, which sets the HttpOnly
 * `jobstream_token` cookie. From then on the browser sends the cookie by itself with every
 * request, EventSource, WebSocket and `<video src>` of the app, so no token is kept by the page's
 * scripts or put in a URL. `GET /api/v1/session` says who is signed in (with auth `none`, the
 * local admin, and nothing to sign in to); `DELETE /api/v1/session` signs out.
 */

import { JobStreamError, type JobStreamClient } from '@jobstream/client';

const SESSION = '/api/v1/session';

/** `GET /api/v1/session`. */
export interface Session {
  sub: string;
  roles: string[];
  expires_at: string | null;
  auth: 'none' | 'jwt';
}

type Listener = () => void;

export interface AuthSnapshot {
  /** Who is signed in; null until known, and while nobody is. */
  session: Session | null;
  /** A request was refused for want of a (valid) sign-in. */
  needsSignIn: boolean;
  /** Why the last sign-in failed, or why the session ended, for the form to say. */
  problem: string | null;
  /** A sign-in is on its way to the server. */
  busy: boolean;
  /** Bumped on every sign-in and sign-out, so live views reconnect with the new cookie. */
  version: number;
}

let snapshot: AuthSnapshot = { session: null, needsSignIn: false, problem: null, busy: false, version: 0 };
const listeners = new Set<Listener>();

function update(patch: Partial<AuthSnapshot>): void {
  snapshot = { ...snapshot, ...patch };
  for (const listener of [...listeners]) listener();
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export const auth = {
  getSnapshot: (): AuthSnapshot => snapshot,
  subscribe(listener: Listener): () => void {
    listeners.add(listener);
    return () => listeners.delete(listener);
  },

  /** A request was refused with 401: the session (if any) is over. */
  requireSignIn(): void {
    if (snapshot.needsSignIn) return;
    update({
      needsSignIn: true,
      session: null,
      problem: snapshot.session ? 'Your session has ended (the token may have expired): sign in again.' : snapshot.problem,
    });
  },

  /** Asks the server who the browser is signed in as. */
  async load(client: JobStreamClient): Promise<void> {
    try {
      const session = await client.json<Session>('GET', SESSION);
      update({ session });
    } catch (error) {
      // A 401 has already opened the sign-in (onUnauthorized); anything else leaves the header
      // without a name, and the pages say what is wrong.
      if (!(error instanceof JobStreamError && error.code === 'unauthorized')) update({ session: null });
    }
  },

  /** Hands the token to the server, which keeps it in the cookie. */
  async signIn(client: JobStreamClient, token: string): Promise<void> {
    const value = token.trim().replace(/^Bearer\s+/i, '');
    update({ busy: true });
    try {
      const session = await client.json<Session>('POST', SESSION, { body: { token: value } });
      update({ session, needsSignIn: false, problem: null, busy: false, version: snapshot.version + 1 });
    } catch (error) {
      update({ busy: false, problem: `The server refused the token: ${message(error)}` });
    }
  },

  /** Removes the cookie; the pages then ask for a sign-in again. */
  async signOut(client: JobStreamClient): Promise<void> {
    try {
      await client.request('DELETE', SESSION);
    } catch (error) {
      update({ problem: `Signing out failed: ${message(error)}` });
      return;
    }
    update({ session: null, needsSignIn: true, problem: null, version: snapshot.version + 1 });
  },
};
