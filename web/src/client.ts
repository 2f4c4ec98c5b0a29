/** The one client of the UI: the app's own server, signed in by the browser's cookie; a 401 opens
 * the sign-in. */

import { JobStreamClient } from '@jobstream/client';
import { useJobStreamClient } from '@jobstream/client/react';

import { auth } from './auth';

export function createClient(): JobStreamClient {
  return new JobStreamClient({
    // Absolute, so that the WebSocket transport can build ws:// URLs from it. No token: after
    // the sign-in the browser sends the HttpOnly cookie with every request and stream.
    baseUrl: window.location.origin,
    onUnauthorized: () => auth.requireSignIn(),
  });
}

export function useClient(): JobStreamClient {
  return useJobStreamClient();
}
