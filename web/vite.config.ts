/**
 * Builds the board UI (web/) into dist/web, which src/plugins/use-web-app.ts serves at `/`.
 * Run by `npm run build`. Preact's JSX through Vite's own transform: no framework plugin needed.
 */
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const here = (relative: string) => fileURLToPath(new URL(relative, import.meta.url));

export default defineConfig({
  root: here('.'),
  base: '/',
  // The SDK falls back to the `ws` package on Node; in the browser the page passes WebSocket itself.
  resolve: { alias: { ws: here('src/no-ws.ts') } },
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: here('../dist/web'),
    emptyOutDir: true,
    target: 'es2022',
    reportCompressedSize: true,
    chunkSizeWarningLimit: 400,
  },
  logLevel: 'warn',
});
