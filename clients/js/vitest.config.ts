import { fileURLToPath } from 'node:url';

import { defineConfig } from 'vitest/config';

const here = (path: string): string => fileURLToPath(new URL(path, import.meta.url));

export default defineConfig({
  // The examples (docs/client.md) import the package by its published name.
  resolve: {
    alias: [
      { find: /^@jobstream\/client\/react$/, replacement: here('./src/react/index.ts') },
      { find: /^@jobstream\/client$/, replacement: here('./src/index.ts') },
    ],
  },
  test: {
    include: ['test/**/*.test.ts', 'test/**/*.test.tsx'],
    environment: 'node',
    testTimeout: 15000,
    restoreMocks: true,
  },
});
