/**
 * Prisma's query compiler for the bundle (dist/bundle/runboard.cjs), read as a .wasm file the build wrote under
 * dist/bundle/. The generated client would import it as a 2.5 MB base64 string module and decode it:
 * about 80 ms of every start on this machine, spent parsing text. scripts/bundle.ts points the generated
 * clients here; `node dist/cli.js` and tsx keep Prisma's own loader.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { PACKAGE_ROOT } from './package-root.js';

/** The build's file for `provider` ('sqlite' or 'postgresql'), named as Prisma names its runtime modules. */
export function queryCompilerWasmPath(provider: string): string {
  return path.join(PACKAGE_ROOT, 'dist', 'bundle', `query_compiler_bg.${provider}.wasm`);
}

/**
 * The compiled module; Prisma instantiates it once per provider and process. Compiled synchronously, as
 * Prisma does: a module from WebAssembly.compile made the first queries about 60 ms slower here.
 */
export async function loadQueryCompilerWasm(provider: string): Promise<WebAssembly.Module> {
  return new WebAssembly.Module(await readFile(queryCompilerWasmPath(provider)));
}
