/**
 * A small history-API router: the UI has two pages (`/` and `/jobs/:id`), which does not justify
 * a routing library. The server answers every client route with index.html (SPA fallback).
 */

import { useSyncExternalStore, type AnchorHTMLAttributes, type MouseEvent } from 'react';

const NAVIGATE = 'jobstream:navigate';

function subscribe(listener: () => void): () => void {
  window.addEventListener('popstate', listener);
  window.addEventListener(NAVIGATE, listener);
  return () => {
    window.removeEventListener('popstate', listener);
    window.removeEventListener(NAVIGATE, listener);
  };
}

export function usePath(): string {
  return useSyncExternalStore(subscribe, () => window.location.pathname);
}

export function navigate(path: string, options: { replace?: boolean } = {}): void {
  if (path === window.location.pathname) return;
  if (options.replace) window.history.replaceState(null, '', path);
  else window.history.pushState(null, '', path);
  window.dispatchEvent(new Event(NAVIGATE));
}

export type Route = { name: 'home' } | { name: 'new' } | { name: 'job'; id: string } | { name: 'not-found' };

export function matchRoute(path: string): Route {
  if (path === '/' || path === '/index.html' || path === '/jobs' || path === '/jobs/') return { name: 'home' };
  if (path === '/new' || path === '/new/') return { name: 'new' };
  const job = /^\/jobs\/([^/]+)\/?$/.exec(path);
  if (job?.[1]) return { name: 'job', id: decodeURIComponent(job[1]) };
  return { name: 'not-found' };
}

export function jobHref(id: string): string {
  return `/jobs/${encodeURIComponent(id)}`;
}

type LinkProps = AnchorHTMLAttributes<HTMLAnchorElement> & { to: string };

/** An `<a>` that navigates without a reload (a modified click still opens a new tab). */
export function Link({ to, onClick, ...rest }: LinkProps) {
  const handleClick = (event: MouseEvent<HTMLAnchorElement>): void => {
    onClick?.(event);
    if (
      event.defaultPrevented ||
      event.button !== 0 ||
      event.metaKey ||
      event.ctrlKey ||
      event.shiftKey ||
      event.altKey ||
      (rest.target && rest.target !== '_self')
    ) {
      return;
    }
    event.preventDefault();
    navigate(to);
  };
  return <a href={to} onClick={handleClick} {...rest} />;
}
