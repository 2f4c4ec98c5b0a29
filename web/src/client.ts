/** The one client of the UI: the app's own server, signed in by the browser's cookie; a 401 opens
 * the sign-in. */

import { JobStreamClient } from '@jobstream/client';
import { useJobStreamClient } from '@jobstream/client/react';

import { auth } from './auth';

export function createClient(): JobStreamClient {
  return new JobStreamClient({
    // The app's root as the page's <base href> has it (the server sets it to its mount prefix,
    // or /), absolute, so that the WebSocket transport can build ws:// URLs from it. No token:
    // after the sign-in the browser sends the HttpOnly cookie with every request and stream.
    baseUrl: new URL('.', document.baseURI).href,
    onUnauthorized: () => auth.requireSignIn(),
  });
}

export function useClient(): JobStreamClient {
  return useJobStreamClient();
}
