/**
 * Bundles src/cli.ts into dist/bundle/runboard.cjs and writes V8's code cache for it; the installed
 * `runboard` command, dist/runboard.cjs (src/launcher.ts), runs the bundle through that cache
 * (`npm run build:bundle`).
 *
 * Why: started from dist/cli.js, Node resolves and compiles about 1,000 ESM files before the first
 * answer (issue 18); one file, its functions already compiled, starts in well under half the time.
 * One CommonJS file, because only a script takes a code cache. What stays outside it, loaded from
 * node_modules at run time:
 * - better-sqlite3: a native addon, found through its own `bindings` lookup.
 * - the GraphiQL renderer and pino-pretty: loaded on first use (src/plugins/graphiql.ts, src/log.ts).
 * - what only a cluster node needs (BullMQ, ioredis, pg): required when first used, so the embedded
 *   default neither reads nor compiles them at start. Our own modules that use them stay in the bundle,
 *   initialized only then, as is the ACP SDK (it has no CommonJS build to require).
 * Prisma's query compiler: the generated client imports it as a 2.5 MB base64 module; the bundle reads
 * it instead as the .wasm file this script writes to dist/bundle/ (src/bundled-query-compiler.ts),
 * which saves parsing and decoding the text at every start.
 * Paths to shipped files (migrations, the board page) come from src/package-root.ts, not the bundle's location.
 *
 * The code cache is what a start that answered a request left compiled: the built command is run once
 * on a throwaway repository with RUNBOARD_WRITE_CODE_CACHE=1, asked `{ __typename }`, and stopped. A
 * build that cannot do that warns and leaves no cache; the command then compiles as usual.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { build, type BuildOptions, type Plugin } from 'esbuild';
import { queryCompilerWasmPath } from '../src/bundled-query-compiler.js';
import { initRepo, startToFirstAnswer } from './first-answer.js';

const root = path.resolve(import.meta.dirname, '..');

const BUNDLE_DIR = path.join(root, 'dist', 'bundle');
const COMMAND = path.join(root, 'dist', 'runboard.cjs');
const BUNDLE = path.join(BUNDLE_DIR, 'runboard.cjs');
// An earlier build's files, and those of the ES module bundle this one replaced.
for (const stale of [BUNDLE_DIR, path.join(root, 'dist', 'runboard.mjs'), path.join(root, 'dist', 'runboard.mjs.map')]) rmSync(stale, { recursive: true, force: true });

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

/** Both outputs: one CommonJS script for Node 20, where modules that find their files from import.meta get the output's. */
const NODE_SCRIPT = {
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  define: { 'import.meta.url': 'importMetaUrl', 'import.meta.dirname': '__dirname' },
  inject: [path.join(root, 'scripts', 'import-meta-url.ts')],
  logLevel: 'warning',
} satisfies BuildOptions;

await build({
  ...NODE_SCRIPT,
  entryPoints: [path.join(root, 'src', 'cli.ts')],
  outfile: BUNDLE,
  external: ['better-sqlite3', '@graphql-yoga/render-graphiql', 'pino-pretty', 'bullmq', 'ioredis', 'pg'],
  // import() becomes require(): in a script given a code cache, Node 20 loses the callback that serves
  // import() (ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING). So every package the bundle loads late has a
  // CommonJS build, and the ACP SDK, which has none, is bundled (only its source is read at start).
  supported: { 'dynamic-import': false },
  // ASCII, so the launcher reads it as a one-byte string (non-ASCII is escaped; comments keep theirs, harmlessly).
  charset: 'ascii',
  // Packages' ES module builds first (graphql's among them): scope-hoisted and tree-shaken where the
  // CommonJS builds are kept whole behind require wrappers. 17% less to compile at every start.
  mainFields: ['module', 'main'],
  plugins: [queryCompilerFromFile],
  sourcemap: 'linked',
});
// The launcher wraps the bundle in a function: cli.ts's hashbang line must not stay a hashbang.
const bundled = readFileSync(BUNDLE, 'latin1').replace(/^#!/, '//');
// charset 'ascii' escapes code; only comments keep other characters, which latin1 reads as harmless noise.
for (const [index, line] of bundled.split('\n').entries()) {
  if (/[^\x00-\x7f]/.test(line) && !/^\s*(\*|\/\/|\/\*)/.test(line)) throw new Error(`${BUNDLE}:${index + 1}: a character beyond ASCII outside a comment`);
}
writeFileSync(BUNDLE, bundled, 'latin1');

await build({ ...NODE_SCRIPT, entryPoints: [path.join(root, 'src', 'launcher.ts')], outfile: COMMAND });

try {
  await writeCodeCache();
} catch (error) {
  console.warn(`build:bundle: no code cache written, runboard will start slower: ${(error as Error).message}`);
}

/** Runs the command once to a first answer with RUNBOARD_WRITE_CODE_CACHE=1, so that it writes the cache as it exits. */
async function writeCodeCache(): Promise<void> {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'runboard-code-cache-'));
  try {
    const repo = path.join(tmp, 'repo');
    await initRepo(repo);
    await startToFirstAnswer(COMMAND, ['--repo', repo, '--data-dir', path.join(tmp, 'data'), '--port', '0'], {
      // Not the build's own environment: a DATABASE_URL, REDIS_URL, HOST or token there must not shape this start.
      PATH: process.env.PATH,
      HOME: tmp,
      LOG_LEVEL: 'info',
      RUNBOARD_WRITE_CODE_CACHE: '1',
      ...(process.env.NODE_OPTIONS ? { NODE_OPTIONS: process.env.NODE_OPTIONS } : {}),
    });
    if (!existsSync(`${BUNDLE}.code-cache`)) throw new Error('the command exited without writing it');
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}
