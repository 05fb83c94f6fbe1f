// Prisma CLI configuration for the Postgres schema (prisma/pg/schema.prisma, derived by scripts/pg-schema.ts):
// `generate` of the Postgres client, and `migrate diff` to author prisma/pg/migrations against a throwaway
// Postgres (DATABASE_URL_PG). runboard applies those migrations itself (src/orchestrator/pg-migrations.ts):
// `prisma migrate deploy` is broken with adapter-pg 6.19.3 (prisma/orm#27403). See ../shared/SCALEOUT.md §2.
import { defineConfig } from 'prisma/config';
import { PrismaPg } from '@prisma/adapter-pg';

const url = process.env.DATABASE_URL_PG ?? 'postgresql://postgres@127.0.0.1:25432/postgres';
// The datasource's env("DATABASE_URL") must resolve, and to a postgresql URL, even for `generate`.
if (!process.env.DATABASE_URL?.startsWith('postgres')) process.env.DATABASE_URL = url;

export default defineConfig({
  experimental: { adapter: true },
  engine: 'js',
  schema: 'prisma/pg/schema.prisma',
  // pg.Pool's default idleTimeoutMillis (10 s) would keep every CLI command alive that long after it is done.
  adapter: async () => new PrismaPg({ connectionString: url, idleTimeoutMillis: 50 }),
});
