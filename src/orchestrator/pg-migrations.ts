/**
 * Applies prisma/pg/migrations to a Postgres database at start-up, in process, like migrations.ts does
 * for SQLite: Prisma's own `_prisma_migrations` table and checksums, so `prisma migrate status` agrees.
 * (`prisma migrate deploy` is broken with adapter-pg 6.19.3, prisma/orm#27403; SCALEOUT.md §2.)
 *
 * Several nodes may start at once: the whole check-and-apply runs under a session advisory lock, so
 * each migration is applied exactly once and a node that waited sees it recorded.
 */
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import type pg from 'pg';
import { PACKAGE_ROOT } from '../package-root.js';
import { availableMigrations, isApplied, readMigration, type AppliedMigration, type MigrationOutcome } from './migrations.js';

/** prisma/pg/migrations of the installed package. */
export const PG_MIGRATIONS_DIR = path.join(PACKAGE_ROOT, 'prisma', 'pg', 'migrations');

/** The advisory lock key migrators take (two int4 keys: runboard's namespace, then "migrations"). */
export const MIGRATION_LOCK: readonly [number, number] = [0x72626472, 1]; // 'rbdr'

/** Prisma's table, as its Postgres migrator creates it. */
const CREATE_MIGRATIONS_TABLE = `CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
    "id"                    VARCHAR(36) PRIMARY KEY NOT NULL,
    "checksum"              VARCHAR(64) NOT NULL,
    "finished_at"           TIMESTAMPTZ,
    "migration_name"        VARCHAR(255) NOT NULL,
    "logs"                  TEXT,
    "rolled_back_at"        TIMESTAMPTZ,
    "started_at"            TIMESTAMPTZ NOT NULL DEFAULT now(),
    "applied_steps_count"   INTEGER NOT NULL DEFAULT 0
)`;

/** Migrations recorded and not rolled back, by name; an empty map before the table exists. */
export async function appliedPgMigrations(client: pg.ClientBase): Promise<Map<string, AppliedMigration>> {
  const { rows: [exists] } = await client.query<{ table: string | null }>(`SELECT to_regclass('"_prisma_migrations"')::text AS "table"`);
  if (!exists?.table) return new Map();
  const { rows } = await client.query<AppliedMigration>(
    'SELECT migration_name AS name, checksum, finished_at AS "finishedAt" FROM "_prisma_migrations" WHERE rolled_back_at IS NULL',
  );
  return new Map(rows.map((row) => [row.name, row]));
}

/** Names of the shipped migrations the database has not finished applying (readiness). */
export async function pendingPgMigrations(client: pg.ClientBase, dir = PG_MIGRATIONS_DIR): Promise<string[]> {
  const known = await appliedPgMigrations(client);
  return availableMigrations(dir).filter((name) => known.get(name)?.finishedAt == null);
}

/**
 * Brings the database `client` is connected to up to date, under the migration advisory lock. Each
 * migration (one multi-statement file, sent as a simple query) commits with its `_prisma_migrations`
 * row, so a failure leaves the database at the previous migration.
 */
export async function migratePostgres(client: pg.ClientBase, dir = PG_MIGRATIONS_DIR): Promise<MigrationOutcome> {
  await client.query('SELECT pg_advisory_lock($1, $2)', [...MIGRATION_LOCK]);
  try {
    await client.query(CREATE_MIGRATIONS_TABLE);
    const known = await appliedPgMigrations(client);
    const applied: string[] = [];
    for (const name of availableMigrations(dir)) {
      const { sql, checksum } = readMigration(dir, name);
      if (isApplied(name, known.get(name), checksum)) continue;
      const startedAt = new Date();
      await client.query('BEGIN');
      try {
        await client.query(sql);
        await client.query(
          'INSERT INTO "_prisma_migrations" (id, checksum, finished_at, migration_name, started_at, applied_steps_count) VALUES ($1, $2, now(), $3, $4, 1)',
          [randomUUID(), checksum, name, startedAt],
        );
        await client.query('COMMIT');
      } catch (error) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw error;
      }
      applied.push(name);
    }
    return { applied, total: known.size + applied.length };
  } finally {
    await client.query('SELECT pg_advisory_unlock($1, $2)', [...MIGRATION_LOCK]).catch(() => undefined);
  }
}
