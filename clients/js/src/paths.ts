/** Where the canonical API lives on a server, relative to the client's `baseUrl`. */

export const API_PREFIX = '/api/v1';

/** `/api/v1/jobs/{id}`, the id escaped. */
export function jobPath(id: string): string {
  return `${API_PREFIX}/jobs/${encodeURIComponent(id)}`;
}
