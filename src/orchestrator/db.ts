/**
 * The database: a Prisma client over SQLite through the better-sqlite3 driver adapter.
 *
 * The adapter shares one connection between everything, and only transactions take its lock, so a
 * plain write issued while another request's transaction is open would join that transaction and be
 * lost if it rolled back. `write()` therefore serializes every write behind one process-wide mutex.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { PrismaBetterSQLite3 } from '@prisma/adapter-better-sqlite3';
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
  readonly migrations: MigrationOutcome;
  private readonly writes = new Mutex();

  private constructor(client: PrismaClient, migrations: MigrationOutcome) {
    this.client = client;
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
    return new Database(client, migrations);
  }

  /** Runs `fn` in a transaction, after every earlier write has finished. */
  write<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
    return this.writes.run(() => this.client.$transaction(fn));
  }

  async close(): Promise<void> {
    await this.writes.run(() => this.client.$disconnect());
  }
}
