/**
 * Readiness: whether this process can do its work right now. The database answers (on a fresh
 * connection too, so a deleted or corrupt file is noticed even though the open handles still
 * work), every migration shipped with this version is applied, and the repository is readable; on a
 * cluster node, also Redis and the run queue.
 */
import BetterSqlite3 from 'better-sqlite3';
import type { Database } from './db.js';
import { openRepository } from './git.js';
import { pendingMigrations } from './migrations.js';
import { pendingPgMigrations } from './pg-migrations.js';

/** One check's outcome; `error` says why it failed, in one line. */
export interface CheckResult {
  ok: boolean;
  error?: string;
}

export interface Readiness {
  ready: boolean;
  /** Names of the checks that failed. */
  failed: string[];
  checks: { database: CheckResult; migrations: CheckResult; repository: CheckResult } & Record<string, CheckResult>;
  /** Server faults masked as internal errors since start (the server adds it; it does not affect readiness). */
  internalErrors?: number;
}

export interface ReadinessOptions {
  db: Database;
  repositoryRoot: string;
  /** How the repository is checked. @default opening `repositoryRoot` as a git checkout */
  checkRepository?: () => Promise<unknown>;
  /** More checks by name, each passing unless it rejects (a cluster node's Redis and run queue). @default none */
  more?: Readonly<Record<string, () => Promise<unknown>>>;
  /** @default MIGRATIONS_DIR on SQLite, PG_MIGRATIONS_DIR on Postgres */
  migrationsDir?: string;
  /** Each check fails if it takes longer. @default 5_000 // ms */
  timeoutMs?: number;
}

/** Runs the checks (database and repository at once); never throws. */
export async function checkReadiness({ db, repositoryRoot, checkRepository = () => openRepository(repositoryRoot), more = {}, migrationsDir, timeoutMs = 5_000 }: ReadinessOptions): Promise<Readiness> {
  const [pending, repository, ...others] = await Promise.all([
    attempt(within(timeoutMs, readPendingMigrations(db, migrationsDir))),
    attempt(within(timeoutMs, checkRepository())),
    ...Object.values(more).map((check) => attempt(within(timeoutMs, check()))),
  ]);
  const checks = {
    database: pending.result,
    migrations: !pending.value ? { ok: false, error: 'not checked: the database did not answer' } : pending.value.length ? { ok: false, error: `not applied: ${pending.value.join(', ')}` } : { ok: true },
    repository: repository.result,
    ...Object.fromEntries(Object.keys(more).map((name, i) => [name, others[i]!.result])),
  };
  const failed = Object.entries(checks).filter(([, check]) => !check.ok).map(([name]) => name);
  return { ready: failed.length === 0, failed, checks };
}

/**
 * Asks the server's own connection, then lists what is not applied: on SQLite by opening the file afresh
 * (read-only), on Postgres on a pooled connection (`SELECT 1` first, so a dead server fails as the database).
 */
async function readPendingMigrations(db: Database, migrationsDir: string | undefined): Promise<string[]> {
  await db.client.$queryRawUnsafe('SELECT 1');
  if (db.kind === 'postgres') {
    const connection = await db.pg.connect();
    try {
      await connection.query('SELECT 1');
      return await pendingPgMigrations(connection, migrationsDir);
    } finally {
      connection.release();
    }
  }
  const fresh = new BetterSqlite3(db.sqlite.name, { readonly: true, fileMustExist: true, timeout: 1_000 });
  try {
    return pendingMigrations(fresh, migrationsDir);
  } finally {
    fresh.close();
  }
}

async function attempt<T>(check: Promise<T>): Promise<{ result: CheckResult; value?: T }> {
  try {
    return { result: { ok: true }, value: await check };
  } catch (error) {
    return { result: { ok: false, error: (error as Error).message.split('\n')[0] } };
  }
}

function within<T>(ms: number, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
