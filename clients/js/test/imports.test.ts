/**
 * Types flow down: the modules of `src/` import each other without a circle (type-only imports
 * count), with `types.ts` at the bottom importing nothing. The transports once imported their
 * types back from `client.ts`, which imports the watches that import the transports.
 */

import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const src = fileURLToPath(new URL('../src', import.meta.url));

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sources(path);
    return /\.tsx?$/.test(name) ? [path] : [];
  });
}

/** The modules of `src/` a file imports (`import`, `import type`, `export … from`, `import()`). */
function importsOf(file: string): string[] {
  const info = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
  return info.importedFiles
    .map((entry) => entry.fileName)
    .filter((specifier) => specifier.startsWith('.'))
    .map((specifier) => {
      const base = resolve(dirname(file), specifier).replace(/\.js$/, '');
      const candidates = [`${base}.ts`, `${base}.tsx`, join(base, 'index.ts')];
      const found = candidates.find((candidate) => existsSync(candidate));
      if (!found) throw new Error(`${relative(src, file)}: cannot resolve ${specifier}`);
      return found;
    });
}

type Graph = Map<string, string[]>;

/** One import circle of the graph (its modules in order, the first repeated at the end), or null. */
function findCycle(graph: Graph): string[] | null {
  const state = new Map<string, 'visiting' | 'done'>();
  const stack: string[] = [];
  const visit = (node: string): string[] | null => {
    state.set(node, 'visiting');
    stack.push(node);
    for (const next of graph.get(node) ?? []) {
      if (state.get(next) === 'visiting') return [...stack.slice(stack.indexOf(next)), next];
      if (state.get(next) === undefined) {
        const found = visit(next);
        if (found) return found;
      }
    }
    stack.pop();
    state.set(node, 'done');
    return null;
  };
  for (const node of [...graph.keys()].sort()) {
    if (state.get(node) === undefined) {
      const found = visit(node);
      if (found) return found;
    }
  }
  return null;
}

function graphOfSources(): Graph {
  const graph: Graph = new Map();
  for (const file of sources(src)) graph.set(relative(src, file), importsOf(file).map((target) => relative(src, target)));
  return graph;
}

describe('the import graph of src/', () => {
  it('has no circle', () => {
    const graph = graphOfSources();
    expect(graph.size).toBeGreaterThan(10);
    const cycle = findCycle(graph);
    expect(cycle && cycle.join(' -> '), 'an import circle').toBeNull();
  });

  it('has types.ts at the bottom, and no module below the client imports it', () => {
    const graph = graphOfSources();
    expect(graph.get('types.ts')).toEqual([]);
    const importers = [...graph].filter(([, targets]) => targets.includes('client.ts')).map(([file]) => file);
    expect(importers.sort()).toEqual(['index.ts', 'react/index.ts']);
  });

  it('finds a circle when there is one (the check can fail)', () => {
    const circular: Graph = new Map([
      ['client.ts', ['watch.ts', 'types.ts']],
      ['watch.ts', ['transports/websocket.ts']],
      ['transports/websocket.ts', ['client.ts']],
      ['types.ts', []],
    ]);
    expect(findCycle(circular)).toEqual(['client.ts', 'watch.ts', 'transports/websocket.ts', 'client.ts']);
    circular.set('transports/websocket.ts', ['types.ts']);
    expect(findCycle(circular)).toBeNull();
  });
});
