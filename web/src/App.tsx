import { useEffect, useRef, useSyncExternalStore } from 'react';

import { auth } from './auth';
import { useClient } from './client';
import { SignInForm } from './components/SignInForm';
import { HomePage } from './pages/HomePage';
import { JobPage } from './pages/JobPage';
import { NewJobPage } from './pages/NewJobPage';
import { NotFoundPage } from './pages/NotFoundPage';
import { Link, matchRoute, usePath } from './router';

function useAuth() {
  return useSyncExternalStore(auth.subscribe, auth.getSnapshot);
}

export function App() {
  const path = usePath();
  const route = matchRoute(path);
  const signIn = useAuth();
  const client = useClient();
  const mainRef = useRef<HTMLElement>(null);
  const firstRender = useRef(true);

  // After a client-side navigation, move focus to the new page's heading (as a page load would).
  useEffect(() => {
    if (firstRender.current) {
      firstRender.current = false;
      return;
    }
    mainRef.current?.querySelector<HTMLElement>('h1')?.focus();
    window.scrollTo(0, 0);
  }, [path]);

  let page;
  if (route.name === 'home') page = <HomePage />;
  else if (route.name === 'new') page = <NewJobPage />;
  else if (route.name === 'job') page = <JobPage key={route.id} id={route.id} />;
  else page = <NotFoundPage />;

  return (
    <>
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <div className="topbar__inner">
          <Link to="/" className="brand" aria-label="jobstream, all jobs">
            <span className="brand__dot" aria-hidden="true" />
            jobstream
          </Link>
          <nav aria-label="Main" className="topbar__nav">
            <Link to="/" className="nav-link" aria-current={route.name === 'home' ? 'page' : undefined}>
              Jobs
            </Link>
            <Link to="/new" className="nav-link" aria-current={route.name === 'new' ? 'page' : undefined}>
              New job
            </Link>
            {signIn.session?.auth === 'jwt' ? (
              <>
                <span className="topbar__user" data-testid="session-user" title={`Signed in as ${signIn.session.sub}`}>
                  <span className="topbar__as">Signed in as </span>
                  <strong>{signIn.session.sub}</strong>
                </span>
                <button
                  type="button"
                  className="button button--ghost"
                  onClick={() => void auth.signOut(client)}
                  data-testid="signout-button"
                >
                  Sign out
                </button>
              </>
            ) : signIn.session?.auth === 'none' ? (
              <span className="topbar__user muted" data-testid="session-none" title="The server runs without sign-in (auth none)">
                No sign-in (local)
              </span>
            ) : null}
          </nav>
        </div>
      </header>
      <main id="main" ref={mainRef} className="container" tabIndex={-1}>
        {signIn.needsSignIn ? <SignInForm problem={signIn.problem} busy={signIn.busy} /> : null}
        {/* Keyed on the sign-in, so every live view reconnects with the new cookie. */}
        <div key={signIn.version} hidden={signIn.needsSignIn}>
          {page}
        </div>
      </main>
    </>
  );
}
