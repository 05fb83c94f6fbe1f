/**
 * The database: a Prisma client over SQLite through the better-sqlite3 driver adapter, plus one
 * plain better-sqlite3 connection for the event log's hot path (a Prisma query costs about 0.6 ms;
 * a prepared statement, microseconds).
 *
 * The adapter shares one connection between everything, and only transactions take its lock, so a
 * plain write issued while another request's transaction is open would join that transaction and be
 * lost if it rolled back. Every transaction, on either connection, therefore runs behind one
 * process-wide mutex (`write`, `writeSync`), which also means the two connections never contend.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { PrismaBetterSQLite3 } from '@prisma/adapter-better-sqlite3';
import BetterSqlite3 from 'better-sqlite3';
import { PrismaClient, Prisma } from '../generated/prisma/client.js';
import { migrateDatabase, type MigrationOutcome } from './migrations.js';
import { Mutex } from './lock.js';

export { Prisma, PrismaClient };
export type Tx = Prisma.TransactionClient;

export interface DatabaseOptions {
  /** A SQLite `file:` URL with an absolute path. */
  url: string;
  /** Emit Prisma `query` events (tests count SQL statements with them). @default false */
  logQueries?: boolean;
}

export class Database {
  readonly client: PrismaClient;
  /** For the event log only: synchronous statements, used inside `writeSync` or for reads. */
  readonly sqlite: BetterSqlite3.Database;
  readonly migrations: MigrationOutcome;
  private readonly writes = new Mutex();

  private constructor(client: PrismaClient, sqlite: BetterSqlite3.Database, migrations: MigrationOutcome) {
    this.client = client;
    this.sqlite = sqlite;
    this.migrations = migrations;
  }

  /** Creates the file's directory, applies pending migrations, then connects. */
  static async open({ url, logQueries = false }: DatabaseOptions): Promise<Database> {
    const file = url.slice('file:'.length);
    mkdirSync(path.dirname(file), { recursive: true });
    const migrations = migrateDatabase(file);
    const client = new PrismaClient({
      adapter: new PrismaBetterSQLite3({ url, timeout: 5_000 }),
      log: logQueries ? [{ emit: 'event', level: 'query' }] : [],
    });
    await client.$connect();
    const sqlite = new BetterSqlite3(file, { timeout: 5_000 });
    sqlite.pragma('foreign_keys = ON');
    return new Database(client, sqlite, migrations);
  }

  /** Runs `fn` in a transaction, after every earlier write has finished. */
  write<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
    return this.writes.run(() => this.client.$transaction(fn));
  }

  /** Runs `fn` as one transaction on the `sqlite` connection, after every earlier write has finished. */
  writeSync<T>(fn: () => T): Promise<T> {
    return this.writes.run(async () => this.sqlite.transaction(fn)());
  }

  async close(): Promise<void> {
    await this.writes.run(async () => {
      await this.client.$disconnect();
      this.sqlite.close();
    });
  }
}
