/**
 * The database, on one of two engines chosen by URL (`Database.open`): SQLite for the embedded default
 * (`file:`), Postgres for scale-out (`postgresql://`, pg-database.ts). Both give `kind`, `client` (Prisma,
 * for reads), `write` (a Prisma transaction), `withLock` (mutual exclusion by name: in this process on
 * SQLite, cluster-wide on Postgres) and `close`. The app is typed against the SQLite Prisma client; the
 * Postgres one is generated from the same models and cast where it is built (SCALEOUT.md §2a).
 *
 * SQLite (in WAL mode) goes through three connections with one job each.
 * - `client`, for reads: a Prisma client on its own connection, outside every transaction, so a read
 *   sees only committed state, never another request's open transaction.
 * - the writer: a second Prisma client, used only inside `write`.
 * - `sqlite`: a plain better-sqlite3 connection for the event log's hot path (a Prisma query costs
 *   about 0.6 ms; a prepared statement, microseconds), used inside `writeSync` and for its reads.
 *
 * A Prisma client shares its connection between everything, and only transactions take its lock, so a
 * plain write on the writer while another request's transaction is open would join that transaction.
 * Writes therefore happen only in transactions, and every transaction, on either writing connection,
 * runs behind one process-wide mutex (`write`, `writeSync`), so the two never contend.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { PrismaBetterSQLite3 } from '@prisma/adapter-better-sqlite3';
import BetterSqlite3 from 'better-sqlite3';
import { PrismaClient, Prisma } from '../generated/prisma/client.js';
import { migrateDatabase, type MigrationOutcome } from './migrations.js';
import { KeyedMutex, Mutex } from './lock.js';
import type { PostgresDatabase } from './pg-database.js';

export { Prisma, PrismaClient };
export type Tx = Prisma.TransactionClient;
export type { PostgresDatabase };

export interface DatabaseOptions {
  /** A SQLite `file:` URL with an absolute path, or a `postgresql://` (or `postgres://`) URL. */
  url: string;
  /** Emit Prisma `query` events (tests count SQL statements with them). @default false */
  logQueries?: boolean;
  /** Postgres only: most connections of the pool shared by Prisma and the event log's hot path. @default 10 */
  poolSize?: number;
}

/** What both engines offer; callers that need one engine's extras narrow on `kind`. */
export interface DatabaseBase {
  readonly kind: 'sqlite' | 'postgres';
  /** For reads (and tests' setup writes); sees only committed state. */
  readonly client: PrismaClient;
  /** What `open` applied. */
  readonly migrations: MigrationOutcome;
  /** Runs `fn` in a Prisma transaction. */
  write<T>(fn: (tx: Tx) => Promise<T>): Promise<T>;
  /**
   * Runs `fn` while holding the lock `name`: nobody else holding it meanwhile (in this process on SQLite,
   * on any node on Postgres). `fn` must not take a lock itself: a nested `withLock` of the same name waits
   * forever, and on Postgres the connections another one needs may all be held by callers waiting for this one.
   */
  withLock<T>(name: string, fn: () => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** A database on either engine; narrow on `kind` for `sqlite`/`writeSync` or `pg`. */
export type Database = SqliteDatabase | PostgresDatabase;

/** Opens a database by URL: SQLite for `file:`, Postgres for `postgresql://` (both apply pending migrations first). */
export const Database = {
  async open(options: DatabaseOptions): Promise<Database> {
    if (isPostgresUrl(options.url)) {
      // Loaded only when used, so the embedded default never loads pg or the second Prisma client.
      const { PostgresDatabase } = await import('./pg-database.js');
      return PostgresDatabase.open(options);
    }
    return SqliteDatabase.open(options);
  },
};

/** True for a Postgres URL (`postgresql://` or `postgres://`). */
export function isPostgresUrl(url: string): boolean {
  return /^postgres(ql)?:\/\//.test(url);
}

export class SqliteDatabase implements DatabaseBase {
  readonly kind = 'sqlite' as const;
  /** For reads (and tests' setup writes): its own connection, so it sees only committed state. */
  readonly client: PrismaClient;
  /** The Prisma connection that `write` runs transactions on; nothing else uses it. */
  private readonly writer: PrismaClient;
  /** For the event log only: synchronous statements, used inside `writeSync` or for reads. */
  readonly sqlite: BetterSqlite3.Database;
  readonly migrations: MigrationOutcome;
  private readonly writes = new Mutex();
  /**
   * Runs `fn` atomically on `sqlite`: in a transaction, or in a savepoint of the open one (better-sqlite3
   * picks at each call), so that a throw undoes its writes alone. Made once: better-sqlite3 builds four
   * wrappers per `transaction()`.
   */
  readonly atomically: <T>(fn: () => T) => T;
  private readonly locks = new KeyedMutex();

  private constructor(client: PrismaClient, writer: PrismaClient, sqlite: BetterSqlite3.Database, migrations: MigrationOutcome) {
    this.client = client;
    this.writer = writer;
    this.sqlite = sqlite;
    this.migrations = migrations;
    this.atomically = sqlite.transaction((fn: () => unknown) => fn()) as <T>(fn: () => T) => T;
  }

  /** Creates the file's directory, applies pending migrations, then connects. */
  static async open({ url, logQueries = false }: DatabaseOptions): Promise<SqliteDatabase> {
    if (!url.startsWith('file:')) throw new Error(`not a SQLite file: URL: ${url}`);
    const file = url.slice('file:'.length);
    mkdirSync(path.dirname(file), { recursive: true });
    const migrations = migrateDatabase(file);
    const connect = async () => {
      const prisma = new PrismaClient({
        adapter: new PrismaBetterSQLite3({ url, timeout: 5_000 }),
        log: logQueries ? [{ emit: 'event', level: 'query' }] : [],
      });
      await prisma.$connect();
      return prisma;
    };
    const [client, writer] = [await connect(), await connect()];
    const sqlite = new BetterSqlite3(file, { timeout: 5_000 });
    sqlite.pragma('foreign_keys = ON');
    return new SqliteDatabase(client, writer, sqlite, migrations);
  }

  /** Runs `fn` in a transaction, after every earlier write has finished. */
  write<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
    return this.writes.run(() => this.writer.$transaction(fn));
  }

  /**
   * Runs `fn` as one transaction on the `sqlite` connection, after every earlier write has finished.
   * If it throws and there is a `retry`, its writes are rolled back and `retry` runs as the next
   * transaction, before any other write.
   */
  writeSync<T>(fn: () => T, retry?: () => T): Promise<T> {
    return this.writes.run(async () => {
      try {
        return this.atomically(fn);
      } catch (error) {
        if (!retry) throw error;
        return this.atomically(retry);
      }
    });
  }

  /** One process owns a SQLite file (data-dir-lock.ts), so an in-process mutex per name is enough. */
  withLock<T>(name: string, fn: () => Promise<T>): Promise<T> {
    return this.locks.run(name, fn);
  }

  async close(): Promise<void> {
    await this.writes.run(async () => {
      await Promise.all([this.client.$disconnect(), this.writer.$disconnect()]);
      this.sqlite.close();
    });
  }
}
