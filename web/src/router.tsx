/**
 * A small history-API router: the UI has three pages (`/`, `/new` and `/jobs/:id`), which does not
 * justify a routing library. The server answers every client route with index.html (SPA fallback).
 *
 * Routes are paths inside the app, below its base: the page's `<base href>`, which the server sets
 * to the app's root (`/`, or the prefix it is mounted under, e.g. `/progress/`). `/jobs/abc` is
 * then `/progress/jobs/abc` in the address bar.
 */

import { useSyncExternalStore, type AnchorHTMLAttributes, type MouseEvent } from 'react';

const NAVIGATE = 'jobstream:navigate';

/** The app's root path without its trailing slash: `''`, or e.g. `/progress`. */
export const BASE_PATH = new URL(document.baseURI).pathname.replace(/\/+$/, '');

/** The address-bar path of a route (`/jobs/abc` → `/progress/jobs/abc`). */
export function href(route: string): string {
  return `${BASE_PATH}${route}`;
}

/** The route of an address-bar path (`/progress/jobs/abc` → `/jobs/abc`); a path outside the base
 * stays as it is (and matches no route). */
export function routeOf(pathname: string): string {
  if (!BASE_PATH) return pathname;
  if (pathname === BASE_PATH) return '/';
  return pathname.startsWith(`${BASE_PATH}/`) ? pathname.slice(BASE_PATH.length) : pathname;
}

function subscribe(listener: () => void): () => void {
  window.addEventListener('popstate', listener);
  window.addEventListener(NAVIGATE, listener);
  return () => {
    window.removeEventListener('popstate', listener);
    window.removeEventListener(NAVIGATE, listener);
  };
}

/** The current route. */
export function usePath(): string {
  return useSyncExternalStore(subscribe, () => routeOf(window.location.pathname));
}

/** Goes to a route without a reload. */
export function navigate(route: string, options: { replace?: boolean } = {}): void {
  const target = href(route);
  if (target === window.location.pathname) return;
  if (options.replace) window.history.replaceState(null, '', target);
  else window.history.pushState(null, '', target);
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

/** An `<a>` to a route that navigates without a reload (a modified click still opens a new tab). */
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
  return <a href={href(to)} onClick={handleClick} {...rest} />;
}
