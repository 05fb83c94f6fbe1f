/** The run event log and the board log for a database, on its engine. */
import { SqliteBoardLog, type BoardLog, type BoardLogTopics } from './board-log.js';
import type { Database } from './db.js';
import { SqliteEventLog, type EventLog, type RunEventTopics } from './event-log.js';
import { PostgresBoardLog, PostgresEventLog } from './pg-logs.js';
import type { PubSub } from './pubsub.js';

/** Both logs on `db`'s engine, publishing on `bus` after commit; the event log records status changes and merges in the board log. */
export function createLogs(db: Database, bus: PubSub<RunEventTopics & BoardLogTopics>): { eventLog: EventLog; boardLog: BoardLog } {
  if (db.kind === 'sqlite') {
    const boardLog = new SqliteBoardLog(db, bus);
    return { boardLog, eventLog: new SqliteEventLog(db, bus, boardLog) };
  }
  const boardLog = new PostgresBoardLog(db, bus);
  return { boardLog, eventLog: new PostgresEventLog(db, bus, boardLog) };
}
