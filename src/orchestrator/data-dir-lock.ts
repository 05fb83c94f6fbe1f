/**
 * One server per data dir (embedded mode): a second one would run its start-up recovery against the
 * first one's live runs. The lock is SQLite's own exclusive file lock on `runboard.lock` in the data
 * dir, held by a connection for the server's lifetime. The operating system releases it when the
 * holder exits in any way, SIGKILL included, so a lock is never stale and needs no pid check.
 * (Scale-out replaces this with leases.)
 */
import path from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { DataDirInUseError } from './errors.js';

/** The lock file's name inside the data dir. */
export const LOCK_FILE = 'runboard.lock';

/** A held data dir lock. */
export interface DataDirLock {
  /** Lets another server take the data dir. Idempotent. */
  release(): void;
}

/** Takes the data dir's lock at once, or throws DataDirInUseError. The directory must exist. */
export function lockDataDir(dataDir: string): DataDirLock {
  const connection = new BetterSqlite3(path.join(dataDir, LOCK_FILE), { timeout: 0 });
  try {
    // In exclusive locking mode SQLite keeps the lock of its first write until the connection closes.
    connection.pragma('locking_mode = EXCLUSIVE');
    // The holder's pid is for people, not durable state: no fsync, which cost 15–200 ms of every start on
    // this machine's disk. The journal stays, so a process killed mid-write leaves the file readable.
    connection.pragma('synchronous = OFF');
    connection.exec('CREATE TABLE IF NOT EXISTS "holder" ("pid" INTEGER NOT NULL)');
    connection.transaction(() => {
      connection.exec('DELETE FROM "holder"');
      connection.prepare('INSERT INTO "holder" ("pid") VALUES (?)').run(process.pid);
    })();
  } catch (error) {
    connection.close();
    if ((error as { code?: string }).code?.startsWith('SQLITE_BUSY')) throw new DataDirInUseError(dataDir);
    throw error;
  }
  return { release: () => connection.open && connection.close() };
}
