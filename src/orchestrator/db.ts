/**
 * The database: SQLite (in WAL mode) through three connections with one job each.
 * - `client`, for reads: a Prisma client on its own connection, outside every transaction, so a read
 *   sees only committed state, never another request's open transaction. (On Postgres, the pool.)
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
  /** For reads (and tests' setup writes): its own connection, so it sees only committed state. */
  readonly client: PrismaClient;
  /** The Prisma connection that `write` runs transactions on; nothing else uses it. */
  private readonly writer: PrismaClient;
  /** For the event log only: synchronous statements, used inside `writeSync` or for reads. */
  readonly sqlite: BetterSqlite3.Database;
  readonly migrations: MigrationOutcome;
  private readonly writes = new Mutex();

  private constructor(client: PrismaClient, writer: PrismaClient, sqlite: BetterSqlite3.Database, migrations: MigrationOutcome) {
    this.client = client;
    this.writer = writer;
    this.sqlite = sqlite;
    this.migrations = migrations;
  }

  /** Creates the file's directory, applies pending migrations, then connects. */
  static async open({ url, logQueries = false }: DatabaseOptions): Promise<Database> {
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
    return new Database(client, writer, sqlite, migrations);
  }

  /** Runs `fn` in a transaction, after every earlier write has finished. */
  write<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
    return this.writes.run(() => this.writer.$transaction(fn));
  }

  /** Runs `fn` as one transaction on the `sqlite` connection, after every earlier write has finished. */
  writeSync<T>(fn: () => T): Promise<T> {
    return this.writes.run(async () => this.sqlite.transaction(fn)());
  }

  async close(): Promise<void> {
    await this.writes.run(async () => {
      await Promise.all([this.client.$disconnect(), this.writer.$disconnect()]);
      this.sqlite.close();
    });
  }
}
