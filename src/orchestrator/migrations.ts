/**
 * Applies prisma/migrations at start-up, in process and offline.
 *
 * Spawning `prisma migrate deploy` costs about 0.7 s on every start (TOOLCHAIN.md); applying the
 * pending folders here costs milliseconds. The bookkeeping is Prisma's own `_prisma_migrations`
 * table with the same checksums, so the Prisma CLI and this module agree on what is applied.
 */
import { createHash, randomUUID } from 'node:crypto';
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { PACKAGE_ROOT } from '../package-root.js';
import { RunboardError } from './errors.js';

/** prisma/migrations of the installed package, wherever the running module (source, tsc output or bundle) lives. */
export const MIGRATIONS_DIR = path.join(PACKAGE_ROOT, 'prisma', 'migrations');

const CREATE_MIGRATIONS_TABLE = `CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
    "id"                    TEXT PRIMARY KEY NOT NULL,
    "checksum"              TEXT NOT NULL,
    "finished_at"           DATETIME,
    "migration_name"        TEXT NOT NULL,
    "logs"                  TEXT,
    "rolled_back_at"        DATETIME,
    "started_at"            DATETIME NOT NULL DEFAULT current_timestamp,
    "applied_steps_count"   INTEGER UNSIGNED NOT NULL DEFAULT 0
)`;

/** A migration folder whose applied checksum differs from the file, or one that failed before. */
export class MigrationError extends RunboardError {
  readonly category = 'internal';
}

export interface MigrationOutcome {
  /** Names of the migrations applied by this call, oldest first. */
  applied: string[];
  /** Names of every migration known to the database after the call. */
  total: number;
}

/** Names of the migration folders shipped with this version, oldest first. */
export function availableMigrations(dir = MIGRATIONS_DIR): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && existsSync(path.join(dir, entry.name, 'migration.sql')))
    .map((entry) => entry.name)
    .sort();
}

/** One row of `_prisma_migrations`, as both engines' migrators read it. */
export interface AppliedMigration {
  name: string;
  checksum: string;
  finishedAt: string | Date | null;
}

/** Migrations recorded in `_prisma_migrations` and not rolled back, by name (finished or not). */
export function appliedMigrations(db: Database.Database): Map<string, AppliedMigration> {
  const rows = db
    .prepare(`SELECT migration_name AS name, checksum, finished_at AS finishedAt FROM _prisma_migrations WHERE rolled_back_at IS NULL`)
    .all() as AppliedMigration[];
  return new Map(rows.map((row) => [row.name, row]));
}

/** A migration folder's SQL and its checksum as Prisma computes it (sha256 of the file, hex). */
export function readMigration(dir: string, name: string): { sql: string; checksum: string } {
  const sql = readFileSync(path.join(dir, name, 'migration.sql'), 'utf8');
  return { sql, checksum: createHash('sha256').update(sql).digest('hex') };
}

/** Whether `name` is applied already (`row` from `_prisma_migrations`); MigrationError if it failed earlier or its file changed since. */
export function isApplied(name: string, row: AppliedMigration | undefined, checksum: string): boolean {
  if (!row) return false;
  if (row.finishedAt == null) throw new MigrationError(`migration ${name} failed earlier; repair the database before starting`);
  if (row.checksum !== checksum) throw new MigrationError(`migration ${name} was changed after it was applied`);
  return true;
}

/** Names of the shipped migrations the database has not finished applying. */
export function pendingMigrations(db: Database.Database, dir = MIGRATIONS_DIR): string[] {
  const known = appliedMigrations(db);
  return availableMigrations(dir).filter((name) => known.get(name)?.finishedAt == null);
}

/**
 * Brings the SQLite database at `file` up to date. Each migration runs in its own transaction, so a
 * failure leaves the database at the previous migration. Also turns on WAL, which persists in the file
 * and lets readers proceed while the event log writes.
 */
export function migrateDatabase(file: string, dir = MIGRATIONS_DIR): MigrationOutcome {
  const db = new Database(file);
  try {
    db.pragma('journal_mode = WAL');
    db.exec(CREATE_MIGRATIONS_TABLE);
    const known = appliedMigrations(db);
    const applied: string[] = [];

    for (const name of availableMigrations(dir)) {
      const { sql, checksum } = readMigration(dir, name);
      if (isApplied(name, known.get(name), checksum)) continue;
      const startedAt = new Date().toISOString();
      db.transaction(() => {
        db.exec(sql);
        db.prepare(
          `INSERT INTO _prisma_migrations (id, checksum, finished_at, migration_name, started_at, applied_steps_count) VALUES (?, ?, ?, ?, ?, 1)`,
        ).run(randomUUID(), checksum, new Date().toISOString(), name, startedAt);
      })();
      applied.push(name);
    }
    return { applied, total: known.size + applied.length };
  } finally {
    db.close();
  }
}
