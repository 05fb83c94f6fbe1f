/**
 * Bundles src/cli.ts into dist/runboard.mjs, the installed `runboard` command (`npm run build:bundle`).
 *
 * Why: started from dist/cli.js, Node resolves and compiles about 1,000 ESM files before the first
 * answer (issue 18); one file starts in about half the time. What stays outside the bundle, loaded
 * from node_modules at run time:
 * - better-sqlite3: a native addon, found through its own `bindings` lookup.
 * - Prisma's query compiler (wasm as base64, a few MB): imported by the generated client only when
 *   the first query runs, so it is not parsed at every start.
 * - the GraphiQL renderer and pino-pretty: loaded on first use (src/plugins/graphiql.ts, src/log.ts).
 * Paths to shipped files (migrations, the board page) come from src/package-root.ts, not the bundle's location.
 *
 * Split: what the server imports dynamically (the cluster's BullMQ, ioredis and pg; the ACP SDK) goes
 * to chunks under dist/bundle/, read only when a cluster node or an ACP run needs them, so the
 * embedded default neither reads nor compiles them at start.
 */
import { rmSync } from 'node:fs';
import path from 'node:path';
import { build } from 'esbuild';

const root = path.resolve(import.meta.dirname, '..');

const CHUNKS = 'bundle';
rmSync(path.join(root, 'dist', CHUNKS), { recursive: true, force: true }); // chunks of an earlier build

await build({
  entryPoints: { runboard: path.join(root, 'src', 'cli.ts') },
  outdir: path.join(root, 'dist'),
  outExtension: { '.js': '.mjs' },
  splitting: true,
  chunkNames: `${CHUNKS}/[name]-[hash]`,
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external: ['better-sqlite3', '@prisma/client/runtime/query_compiler_bg.*', '@graphql-yoga/render-graphiql', 'pino-pretty'],
  // Bundled CommonJS packages call require() for Node's built-ins; an ES module has none of its own.
  banner: { js: "import { createRequire as __runboardCreateRequire } from 'node:module'; const require = __runboardCreateRequire(import.meta.url);" },
  sourcemap: 'linked',
  logLevel: 'warning',
});
