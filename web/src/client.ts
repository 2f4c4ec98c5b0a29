/** The one client of the UI: same origin, the token from the sign-in, 401s open the sign-in. */

import { JobStreamClient } from '@jobstream/client';
import { useJobStreamClient } from '@jobstream/client/react';

import { auth } from './auth';

export function createClient(): JobStreamClient {
  return new JobStreamClient({
    // Absolute, so that the WebSocket transport can build ws:// URLs from it.
    baseUrl: window.location.origin,
    token: () => auth.token(),
    onUnauthorized: () => auth.requireSignIn(),
  });
}

export function useClient(): JobStreamClient {
  return useJobStreamClient();
}
