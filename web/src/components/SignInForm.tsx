import { useId, useState, type FormEvent } from 'react';

import { auth } from '../auth';

/** Shown on a 401: asks for a token (a JWT from `jobstream token`, or your identity provider). */
export function SignInForm({ hadToken }: { hadToken: boolean }) {
  const [token, setToken] = useState('');
  const id = useId();
  const submit = (event: FormEvent<HTMLFormElement>): void => {
    event.preventDefault();
    if (token.trim()) auth.signIn(token);
  };
  return (
    <section className="card signin" aria-labelledby={`${id}-title`}>
      <h2 id={`${id}-title`}>Sign in</h2>
      <p className="muted">
        {hadToken ? 'The server refused the token: it may have expired.' : 'This server needs an access token.'} Paste a
        token (for example from <code>jobstream token</code>).
      </p>
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
        <button type="submit" className="button button--primary" data-testid="signin-button">
          Sign in
        </button>
      </form>
    </section>
  );
}
