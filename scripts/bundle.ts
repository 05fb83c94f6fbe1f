/**
 * Bundles src/cli.ts into dist/runboard.mjs, the installed `runboard` command (`npm run build:bundle`).
 *
 * Why: started from dist/cli.js, Node resolves and compiles about 1,000 ESM files before the first
 * answer (issue 18); one file starts in about half the time. What stays outside the bundle, loaded
 * from node_modules at run time:
 * - better-sqlite3: a native addon, found through its own `bindings` lookup.
 * - Prisma's query compiler: the generated client imports it as a 2.5 MB base64 module; the bundle
 *   reads it instead as the .wasm file this script writes to dist/bundle/ (src/bundled-query-compiler.ts),
 *   which saves parsing and decoding the text at every start. Only its small JS glue is imported.
 * - the GraphiQL renderer and pino-pretty: loaded on first use (src/plugins/graphiql.ts, src/log.ts).
 * Paths to shipped files (migrations, the board page) come from src/package-root.ts, not the bundle's location.
 *
 * Split: what the server imports dynamically (the cluster's BullMQ, ioredis and pg; the ACP SDK) goes
 * to chunks under dist/bundle/, read only when a cluster node or an ACP run needs them, so the
 * embedded default neither reads nor compiles them at start.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { build, type Plugin } from 'esbuild';
import { queryCompilerWasmPath } from '../src/bundled-query-compiler.js';

const root = path.resolve(import.meta.dirname, '..');

const CHUNKS = 'bundle';
rmSync(path.join(root, 'dist', CHUNKS), { recursive: true, force: true }); // chunks of an earlier build

/** What each generated client (src/generated/prisma, src/generated/prisma-pg) says to load its query compiler. */
const GENERATED_LOADER = /getQueryCompilerWasmModule: async \(\) => \{\s*const \{ wasm \} = await import\("(@prisma\/client\/runtime\/query_compiler_bg\.(\w+)\.wasm-base64\.mjs)"\)\s*return await decodeBase64AsWasm\(wasm\)\s*\}/;

/**
 * Points each generated client's query compiler at the .wasm file written here from Prisma's base64
 * module. A generated client without the expected loader fails the build: a Prisma upgrade that changes
 * it must be looked at, not bundled with the slow path.
 */
const queryCompilerFromFile: Plugin = {
  name: 'query-compiler-from-file',
  setup(plugin) {
    plugin.onLoad({ filter: /[\\/]generated[\\/][^\\/]+[\\/]internal[\\/]class\.ts$/ }, async (args) => {
      const source = readFileSync(args.path, 'utf8');
      const found = GENERATED_LOADER.exec(source);
      if (!found) throw new Error(`${args.path}: Prisma's query compiler loader is not the expected one; update scripts/bundle.ts`);
      const [, base64Module, provider] = found;
      // The very module the generated client would import (external to the bundle, so Node resolves it from the package).
      const { wasm: base64 } = (await import(base64Module!)) as { wasm: string };
      const wasm = queryCompilerWasmPath(provider!);
      mkdirSync(path.dirname(wasm), { recursive: true });
      writeFileSync(wasm, Buffer.from(base64, 'base64'));
      const loader = JSON.stringify(path.join(root, 'src', 'bundled-query-compiler.ts'));
      return {
        contents: `import { loadQueryCompilerWasm } from ${loader};\n${source.replace(GENERATED_LOADER, `getQueryCompilerWasmModule: () => loadQueryCompilerWasm(${JSON.stringify(provider)})`)}`,
        loader: 'ts',
      };
    });
  },
};

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
  // Packages' ES module builds first (graphql's among them): scope-hoisted and tree-shaken where the
  // CommonJS builds are kept whole behind require wrappers. 17% less to compile at every start.
  mainFields: ['module', 'main'],
  plugins: [queryCompilerFromFile],
  sourcemap: 'linked',
  logLevel: 'warning',
});
