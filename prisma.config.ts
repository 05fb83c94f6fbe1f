// Prisma CLI configuration: JavaScript engine with the better-sqlite3 driver adapter, so every
// command (generate, migrate deploy) works offline. See ../shared/TOOLCHAIN.md.
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { defineConfig } from 'prisma/config';
import { PrismaBetterSQLite3 } from '@prisma/adapter-better-sqlite3';

// The CLI needs a resolvable url even for `generate`; the server always passes its own.
process.env.DATABASE_URL ??= 'file:./.runboard/dev.db';
const url = process.env.DATABASE_URL;
if (url.startsWith('file:')) mkdirSync(path.dirname(path.resolve(url.slice('file:'.length))), { recursive: true });

export default defineConfig({
  experimental: { adapter: true },
  engine: 'js',
  schema: 'prisma/schema.prisma',
  adapter: async () => new PrismaBetterSQLite3({ url }),
});
