import { fileURLToPath } from 'node:url';

import { defineConfig } from 'vite';

const here = (path: string): string => fileURLToPath(new URL(path, import.meta.url));

// The UI imports the client package from its source, so one build needs no prior step; React is
// deduplicated so the hooks and the app share one copy. JSX goes through esbuild (no Babel).
// `base: './'`: the build refers to its assets relative to the page's <base href>, which the
// server sets to the app's root (`/`, or its mount prefix such as `/progress/`).
export default defineConfig({
  base: './',
  resolve: {
    alias: [
      { find: /^@jobstream\/client\/react$/, replacement: here('../clients/js/src/react/index.ts') },
      { find: /^@jobstream\/client$/, replacement: here('../clients/js/src/index.ts') },
    ],
    dedupe: ['react', 'react-dom'],
  },
  esbuild: { jsx: 'automatic', legalComments: 'none' },
  build: {
    outDir: here('../src/jobstream/web'),
    emptyOutDir: true,
    assetsDir: 'assets',
    sourcemap: false,
    target: 'es2020',
    reportCompressedSize: false,
    chunkSizeWarningLimit: 600,
  },
  server: {
    proxy: {
      '/api': { target: 'http://127.0.0.1:8000', ws: true },
      '/healthz': 'http://127.0.0.1:8000',
    },
  },
});
