/**
 * The database on Postgres (scale-out): one bounded pg.Pool shared by the Prisma client (reads and
 * `write` transactions) and the event log's hot path (`pg`), plus a small pool whose connections hold
 * advisory locks for `withLock`. Loaded by `Database.open` only for a postgresql:// URL.
 *
 * Unlike SQLite there is no process-wide write mutex: Postgres takes row locks, and writers of one
 * run's events or of the board log serialize on their counter rows (pg-logs.ts), on any node.
 */
import { PrismaPg } from '@prisma/adapter-pg';
import pg from 'pg';
import { PrismaClient as PgPrismaClient } from '../generated/prisma-pg/client.js';
import type { DatabaseBase, DatabaseOptions, PrismaClient, Tx } from './db.js';
import type { MigrationOutcome } from './migrations.js';
import { migratePostgres } from './pg-migrations.js';

/** Most connections `withLock` holds at once (each waits on or holds one lock). @default 4 */
export const LOCK_POOL_SIZE = 4;
/** How long a `write` waits for a pooled connection before failing. @default 10_000 // ms */
export const WRITE_MAX_WAIT_MS = 10_000;
/** The first key of every `withLock` advisory lock (the second is the name's hash), apart from the migrator's. */
const LOCK_NAMESPACE = 0x72626c6b; // 'rblk'

export class PostgresDatabase implements DatabaseBase {
  readonly kind = 'postgres' as const;
  /** Prisma on the shared pool: reads outside any transaction see only committed state. */
  readonly client: PrismaClient;
  /** The shared pool, for hot paths that skip Prisma (the event log); bounded by `poolSize`. */
  readonly pg: pg.Pool;
  readonly migrations: MigrationOutcome;
  /** Connections that hold session advisory locks for `withLock`, apart so a held lock never starves queries. */
  private readonly locks: pg.Pool;

  private constructor(client: PrismaClient, pool: pg.Pool, locks: pg.Pool, migrations: MigrationOutcome) {
    this.client = client;
    this.pg = pool;
    this.locks = locks;
    this.migrations = migrations;
  }

  /** Applies pending migrations (under an advisory lock, so nodes may start at once), then connects. */
  static async open({ url, logQueries = false, poolSize = 10 }: DatabaseOptions): Promise<PostgresDatabase> {
    const migrator = new pg.Client({ connectionString: url });
    await migrator.connect();
    let migrations: MigrationOutcome;
    try {
      migrations = await migratePostgres(migrator);
    } finally {
      await migrator.end();
    }
    const pool = new pg.Pool({ connectionString: url, max: poolSize });
    const locks = new pg.Pool({ connectionString: url, max: LOCK_POOL_SIZE });
    // An idle connection the server drops emits 'error' on its pool, which would otherwise end the process;
    // the pool discards it and the next query opens another.
    for (const p of [pool, locks]) p.on('error', () => undefined);
    const prisma = new PgPrismaClient({ adapter: new PrismaPg(pool), log: logQueries ? [{ emit: 'event', level: 'query' }] : [] });
    // The app is typed against the SQLite client; both are generated from one models file (SCALEOUT.md §2a).
    const client = prisma as unknown as PrismaClient;
    try {
      await client.$connect();
    } catch (error) {
      await Promise.all([pool.end(), locks.end()]);
      throw error;
    }
    return new PostgresDatabase(client, pool, locks, migrations);
  }

  /** Runs `fn` in a Prisma transaction on a pooled connection (READ COMMITTED; rows it updates stay locked until commit). */
  write<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
    return this.client.$transaction(fn, { maxWait: WRITE_MAX_WAIT_MS });
  }

  /**
   * Holds the session advisory lock for `name` on a dedicated connection while `fn` runs, cluster-wide.
   * The lock is released in `finally`; a connection whose unlock fails is destroyed, which releases it too.
   */
  async withLock<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const connection = await this.locks.connect();
    let broken: Error | undefined;
    try {
      await connection.query('SELECT pg_advisory_lock($1, hashtext($2))', [LOCK_NAMESPACE, name]).catch((error: Error) => {
        broken = error;
        throw error;
      });
      try {
        return await fn();
      } finally {
        await connection.query('SELECT pg_advisory_unlock($1, hashtext($2))', [LOCK_NAMESPACE, name]).catch((error: Error) => void (broken = error));
      }
    } finally {
      connection.release(broken);
    }
  }

  async close(): Promise<void> {
    await this.client.$disconnect();
    await Promise.all([this.pg.end(), this.locks.end()]);
  }
}
