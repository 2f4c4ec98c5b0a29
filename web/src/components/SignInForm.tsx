import { useId, useState, type FormEvent } from 'react';

import { auth } from '../auth';
import { useClient } from '../client';

/** Shown on a 401: asks for a token (a JWT from `jobstream token`, or your identity provider) and
 * signs the browser in with it (`POST /api/v1/session`, which sets the cookie). */
export function SignInForm({ problem, busy }: { problem: string | null; busy: boolean }) {
  const client = useClient();
  const [token, setToken] = useState('');
  const id = useId();
  const submit = (event: FormEvent<HTMLFormElement>): void => {
    event.preventDefault();
    if (token.trim() && !busy) void auth.signIn(client, token);
  };
  return (
    <section className="card signin" aria-labelledby={`${id}-title`}>
      <h2 id={`${id}-title`}>Sign in</h2>
      <p className="muted">
        This server needs an access token. Paste a token (for example from <code>jobstream token</code>); the browser
        keeps your sign-in until the token expires or you sign out.
      </p>
      {problem ? (
        <p className="alert alert--error" role="alert" data-testid="signin-problem">
          {problem}
        </p>
      ) : null}
      <form onSubmit={submit} data-testid="signin-form" className="form">
        <div className="field">
          <label htmlFor={`${id}-token`}>Access token</label>
          <input
            id={`${id}-token`}
            name="token"
            type="password"
            autoComplete="off"
            spellCheck={false}
            required
            value={token}
            onChange={(event) => setToken(event.target.value)}
            data-testid="token-input"
          />
        </div>
        <button type="submit" className="button button--primary" data-testid="signin-button" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </section>
  );
}
