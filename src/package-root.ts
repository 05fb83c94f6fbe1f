/**
 * The installed package's root: the nearest directory above this module holding package.json.
 * Found by walking up rather than by a fixed "../.." so the same answer holds from src/ (tsx),
 * from dist/ (tsc output, one file per module) and from dist/bundle/runboard.cjs (the bundle, two levels up).
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

function findPackageRoot(start: string): string {
  for (let dir = start; ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'package.json'))) return dir;
    if (path.dirname(dir) === dir) throw new Error(`no package.json above ${start}`);
  }
}

/** Absolute path of runboard's package root (where package.json, prisma/ and dist/ live). */
export const PACKAGE_ROOT = findPackageRoot(path.dirname(fileURLToPath(import.meta.url)));
