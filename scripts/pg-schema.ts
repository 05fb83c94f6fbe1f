/**
 * Derives prisma/pg/schema.prisma (the Postgres client's schema) from prisma/schema.prisma, the one
 * models file: same models, provider postgresql, its own client output, no Pothos generator (the app
 * and its Pothos types are typed against the SQLite client; SCALEOUT.md §2a). `npm run generate` runs
 * it before generating both clients; test/postgres.test.ts fails when the committed file is stale.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const root = path.resolve(import.meta.dirname, '..');
/** The models file, and the schema derived from it. */
export const SQLITE_SCHEMA = path.join(root, 'prisma', 'schema.prisma');
export const PG_SCHEMA = path.join(root, 'prisma', 'pg', 'schema.prisma');

const HEADER = '// GENERATED from prisma/schema.prisma by scripts/pg-schema.ts (npm run generate). Do not edit: edit that file.\n';

/** The Postgres schema text for the SQLite schema `text`; throws if a part it rewrites is not found. */
export function derivePgSchema(text: string): string {
  const steps: [RegExp, string][] = [
    // The client, next to the SQLite one; paths are relative to prisma/pg/.
    [/(generator client \{[^}]*output\s*=\s*)"\.\.\/src\/generated\/prisma"/, '$1"../../src/generated/prisma-pg"'],
    [/\ngenerator pothos \{[^}]*\}\n/, '\n'],
    [/(datasource db \{[^}]*provider\s*=\s*)"sqlite"/, '$1"postgresql"'],
  ];
  let out = text;
  for (const [pattern, replacement] of steps) {
    if (!pattern.test(out)) throw new Error(`prisma/schema.prisma: ${pattern} not found; update scripts/pg-schema.ts`);
    out = out.replace(pattern, replacement);
  }
  return HEADER + out;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  writeFileSync(PG_SCHEMA, derivePgSchema(readFileSync(SQLITE_SCHEMA, 'utf8')));
}
