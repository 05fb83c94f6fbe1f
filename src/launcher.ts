#!/usr/bin/env node
/**
 * The installed `runboard` command (dist/runboard.cjs, built by scripts/bundle.ts): runs the bundle,
 * dist/bundle/runboard.cjs, through V8's code cache the build wrote next to it.
 *
 * Why: most of a start was V8 parsing and compiling the bundle's functions, the same ones every time.
 * The cache holds them compiled, as a start that answered a request left them, so a start deserializes
 * them instead (measured: 0.42–0.44× the unbundled start, where the bundle alone was 0.52–0.54×). Node 20 has no
 * compile cache of its own (module.enableCompileCache came in Node 22). A cache V8 rejects (another
 * Node version, other V8 flags) is ignored and the bundle compiles as usual, only slower.
 *
 * The bundle is one CommonJS file, since only a script can be given a code cache; it is read as latin1:
 * the build writes ASCII outside comments (esbuild's charset), so that is a one-byte string with no
 * UTF-8 decoding (measured: 27 ms less at every start).
 * With RUNBOARD_WRITE_CODE_CACHE set (the build, once) the cache is written when the process exits.
 */
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import Module, { createRequire } from 'node:module';
import path from 'node:path';
import vm from 'node:vm';

const bundle = path.join(import.meta.dirname, 'bundle', 'runboard.cjs');
const codeCache = `${bundle}.code-cache`;

const writeCache = process.env.RUNBOARD_WRITE_CODE_CACHE === '1';
delete process.env.RUNBOARD_WRITE_CODE_CACHE; // not passed on to agents and playtests
let cachedData: Buffer | undefined;
try {
  // V8 checks a cache against the source's length only: a bundle changed since its cache was written goes without.
  if (!writeCache && statSync(codeCache).mtimeMs >= statSync(bundle).mtimeMs) cachedData = readFileSync(codeCache);
} catch {
  // No cache (a build that could not write one): compile as usual.
}
// No import() in the bundle (scripts/bundle.ts): Node 20 cannot serve one from a script with a code cache.
const script = new vm.Script(Module.wrap(readFileSync(bundle, 'latin1')), { filename: bundle, cachedData });
if (writeCache) process.once('exit', () => writeFileSync(codeCache, script.createCachedData()));

const bundleModule = new Module(bundle);
bundleModule.filename = bundle;
const run = script.runInThisContext() as (exports: unknown, require: NodeJS.Require, module: Module, filename: string, dirname: string) => void;
run.call(bundleModule.exports, bundleModule.exports, createRequire(bundle), bundleModule, bundle, path.dirname(bundle));
