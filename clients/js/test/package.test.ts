import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { describe, expect, it } from 'vitest';

import * as api from '../src/index.js';

const root = fileURLToPath(new URL('..', import.meta.url));

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sources(path) : path.endsWith('.ts') ? [path] : [];
  });
}

describe('the published shape', () => {
  it('is ESM only, side-effect free, with . and ./react, and no runtime dependencies', () => {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as Record<string, unknown>;
    expect(pkg['type']).toBe('module');
    expect(pkg['sideEffects']).toBe(false);
    expect(Object.keys(pkg['exports'] as object)).toEqual(['.', './react', './package.json']);
    expect(pkg['dependencies']).toBeUndefined();
    expect(Object.keys(pkg['peerDependencies'] as object)).toEqual(['react']);
  });

  it('uses no browser globals (window, document, storage) in the core', () => {
    for (const file of sources(join(root, 'src'))) {
      const code = readFileSync(file, 'utf8')
        .replace(/\/\*[\s\S]*?\*\//g, '')
        .replace(/\/\/.*$/gm, '');
      expect(code, file).not.toMatch(/\b(window|document|localStorage|sessionStorage|navigator)\b/);
    }
  });

  it('exports the documented API', () => {
    expect(Object.keys(api).sort()).toEqual(
      [
        'API_PREFIX',
        'DEFAULT_WATCH_CONFIG',
        'JOB_EVENT_TYPES',
        'JobStreamClient',
        'JobStreamError',
        'JobWatch',
        'JobsWatch',
        'TERMINAL_STATUSES',
        'applyEvent',
        'backoffDelay',
        'createSSEParser',
        'describeDetail',
        'isJob',
        'isJobEvent',
        'isTerminalEvent',
        'isTerminalStatus',
        'jobFromFirstEvent',
        'jobPath',
        'logEntryFromEvent',
        'mergeSnapshot',
        'parseEventStream',
      ].sort(),
    );
  });

  it('backs off exponentially with jitter, capped', () => {
    const options = { initialDelay: 100, maxDelay: 1000, random: () => 1 - Number.EPSILON };
    expect([0, 1, 2, 3, 4, 10].map((attempt) => api.backoffDelay(attempt, options))).toEqual([100, 200, 400, 800, 1000, 1000]);
    const low = { ...options, random: () => 0 };
    expect([0, 1, 2].map((attempt) => api.backoffDelay(attempt, low))).toEqual([50, 100, 200]);
  });
});
