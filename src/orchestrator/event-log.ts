/**
 * The run event log: every event of a run is persisted with the next per-run `seq` (1, 2, 3… no
 * gaps, no repeats) inside one transaction, and published only after that transaction commits.
 * It speaks SQL on its own connection (see db.ts): this is the hot path of every run. This file holds
 * the interface and the SQLite log; the Postgres one is in pg-logs.ts.
 * Whatever writes an event (the agent, a merge, a playtest) goes through `append`; a board change made by an
 * agent writes its `board_change` event with `appendTx`, inside the change's own transaction.
 */
import type { BoardEventInput, BoardEventRecord, SqliteBoardLog } from './board-log.js';
import type { SqliteDatabase, Tx } from './db.js';
import { NotFoundError } from './errors.js';
import { timeOrderedId } from './ids.js';
import type { PubSub } from './pubsub.js';
import { toRunEvent, type RunEvent, type RunEventInput } from './run-events.js';
import type { RunStatus } from './run-status.js';

export type { RunEvent, RunEventInput };

/** Largest `data` of one event, as JSON; larger payloads are replaced by a preview. @default 16_384 // bytes */
export const MAX_EVENT_DATA_BYTES = 16 * 1024;
/** Most events one `read` returns. @default 1_000 */
export const MAX_EVENTS_PER_READ = 1_000;

/** What the log publishes, by topic; keyed by run id. */
export interface RunEventTopics extends Record<string, unknown> {
  'run-events': RunEvent;
}

/**
 * Run columns that change together with an event (a status and its timestamps, say), so the row and
 * its `status` event commit in one transaction.
 */
export interface RunChanges {
  status?: RunStatus;
  startedAt?: Date | null;
  endedAt?: Date | null;
  error?: string | null;
  exitCode?: number | null;
  exitSignal?: string | null;
  agentPid?: number | null;
  /** The node whose worker claimed the run (cluster mode). */
  workerId?: string | null;
  /** sha256 of the agent's token: set when the run is claimed, cleared when it ends. */
  agentTokenHash?: string | null;
  worktreeMissing?: boolean;
  mergedSha?: string | null;
  playtestCommand?: string | null;
  playtestPid?: number | null;
  playtestStartedAt?: Date | null;
  playtestEndedAt?: Date | null;
  playtestExitCode?: number | null;
  playtestSignal?: string | null;
  playtestNodeId?: string | null;
}

/** The run columns a `RunChanges` may set, in the order they are written. */
export const RUN_COLUMNS: readonly (keyof RunChanges)[] = [
  'status', 'startedAt', 'endedAt', 'error', 'exitCode', 'exitSignal', 'agentPid', 'workerId', 'agentTokenHash', 'worktreeMissing', 'mergedSha',
  'playtestCommand', 'playtestPid', 'playtestStartedAt', 'playtestEndedAt', 'playtestExitCode', 'playtestSignal', 'playtestNodeId',
];

/** SQLite values as Prisma writes them: ISO dates with an explicit offset, booleans as 0/1. */
function sqlValue(value: RunChanges[keyof RunChanges]): string | number | null {
  if (value instanceof Date) return value.toISOString().replace('Z', '+00:00');
  if (typeof value === 'boolean') return value ? 1 : 0;
  return value ?? null;
}

/**
 * Advances a run's seq counter, setting `columns` of the row with it; LAST_SEQ then reads the counter in
 * the same transaction, which holds the write lock. Not one statement with RETURNING: SQLite makes a
 * temporary table for RETURNING on every call, which measured a fifth of a group commit's CPU per event
 * (17 -> 10 µs of statements per event).
 */
const bumpSeqSql = (columns: readonly string[] = []) => `UPDATE "Run" SET ${columns.map((c) => `"${c}" = ?, `).join('')}"lastSeq" = "lastSeq" + ? WHERE "id" = ?`;
const BUMP_SEQ = bumpSeqSql();
const LAST_SEQ = 'SELECT "lastSeq", "cardId" FROM "Run" WHERE "id" = ?';
const INSERT_EVENT = 'INSERT INTO "RunEvent" ("id", "runId", "seq", "type", "data", "createdAt") VALUES (?, ?, ?, ?, ?, ?)';

/** What one append wrote: its run events and the board log entries that came with them. */
interface Written {
  records: RunEvent[];
  board: BoardEventRecord[];
}

/** How one append of a group commit ended. */
type Outcome = { ok: true; written: Written | null } | { ok: false; error: unknown };

/** An append waiting for the next group commit. */
interface PendingAppend {
  readonly runId: string;
  /** The append's own writes, run in the group's transaction; null: nothing to write. */
  readonly body: () => Written | null;
  resolve(written: Written | null): void;
  reject(error: unknown): void;
}

/**
 * A run's event log, on either engine (the Postgres one is pg-logs.ts; logs.ts picks by `db.kind`).
 * Every event gets the next per-run seq, commits with the run changes that came with it, and is
 * published only after that commit.
 */
export abstract class EventLog {
  constructor(protected readonly bus: PubSub<RunEventTopics>) {}

  /**
   * Persists `events` in order with the next seqs, applying `changes` to the run row in the same
   * transaction, then publishes them. Returns the stored records. NotFoundError for an unknown run.
   */
  abstract append(runId: string, events: readonly RunEventInput[], changes?: RunChanges): Promise<RunEvent[]>;

  /**
   * Like `append`, but only if the run's status is still `expected` when the transaction runs;
   * null (nothing written) otherwise. For transitions another writer may race, such as stopping a
   * QUEUED run that the queue is just starting.
   */
  abstract appendIfStatus(runId: string, expected: RunStatus, events: readonly RunEventInput[], changes: RunChanges): Promise<RunEvent[] | null>;

  /**
   * Appends inside the caller's Prisma transaction (`Database.write`), in the same format as `append`,
   * so a change and its record commit together. The caller publishes the result after the commit.
   */
  abstract appendTx(tx: Tx, runId: string, events: readonly RunEventInput[]): Promise<RunEvent[]>;

  /** Events with `seq > since`, oldest first, at most `limit` (capped at MAX_EVENTS_PER_READ). */
  abstract read(runId: string, since?: number, limit?: number): Promise<RunEvent[]>;

  /** Publishes committed records; call it only after their transaction committed. */
  publish(runId: string, records: readonly RunEvent[]): void {
    for (const record of records) this.bus.publish('run-events', runId, record);
  }
}

/** The log on SQLite: prepared statements on `db.sqlite`, appends of one event-loop turn committed together. */
export class SqliteEventLog extends EventLog {
  private readonly statements;
  /** Appends made in this turn of the event loop, committed together (see `groupCommit`). */
  private pending: PendingAppend[] = [];

  constructor(
    private readonly db: SqliteDatabase,
    bus: PubSub<RunEventTopics>,
    /** Where a run's status changes and merges are also recorded, in the same transaction. */
    private readonly boardLog: SqliteBoardLog,
  ) {
    super(bus);
    const sqlite = db.sqlite;
    this.statements = {
      status: sqlite.prepare<[string], { status: string }>('SELECT "status" FROM "Run" WHERE "id" = ?'),
      bumpSeq: sqlite.prepare<[number, string]>(BUMP_SEQ),
      lastSeq: sqlite.prepare<[string], { lastSeq: number; cardId: string }>(LAST_SEQ),
      insert: sqlite.prepare(INSERT_EVENT),
      // Rows as arrays, not objects: 0.6 µs less per event of a replay (2.0 -> 1.4 µs a row here).
      read: sqlite
        .prepare<[string, number, number], [seq: number, type: string, data: string, createdAt: string]>(
          'SELECT "seq", "type", "data", "createdAt" FROM "RunEvent" WHERE "runId" = ? AND "seq" > ? ORDER BY "seq" LIMIT ?',
        )
        .raw(true),
    };
  }

  async append(runId: string, events: readonly RunEventInput[], changes: RunChanges = {}): Promise<RunEvent[]> {
    const written = await this.enqueue(runId, () => this.write(runId, events, changes));
    return written!.records;
  }

  async appendIfStatus(runId: string, expected: RunStatus, events: readonly RunEventInput[], changes: RunChanges): Promise<RunEvent[] | null> {
    const written = await this.enqueue(runId, () => (this.statements.status.get(runId)?.status === expected ? this.write(runId, events, changes) : null));
    return written?.records ?? null;
  }

  /**
   * Group commit: appends made in the same turn of the event loop (many runs' agents writing at once)
   * share one transaction, so they share one WAL sync. Each resolves only after the commit, and is
   * published then, in the order the appends were made. One that fails (an unknown run) fails alone:
   * the group's transaction is rolled back and the group made again in the next one, each append in a
   * savepoint of its own, before any later group can take seqs. Only then: a savepoint costs two
   * statements per append, and SQLite copies every page it changes into a journal of its own (with a
   * group's pages, a temporary file), which measured a third of a group commit's SQLite time.
   */
  private enqueue(runId: string, body: () => Written | null): Promise<Written | null> {
    return new Promise((resolve, reject) => {
      this.pending.push({ runId, body, resolve, reject });
      if (this.pending.length === 1) setImmediate(() => void this.groupCommit());
    });
  }

  private async groupCommit(): Promise<void> {
    const batch = this.pending;
    this.pending = [];
    let outcomes: Outcome[];
    try {
      outcomes = await this.db.writeSync(
        () => batch.map((entry): Outcome => ({ ok: true, written: entry.body() })),
        // One append failed (an unknown run, say): the group again, each append in a savepoint of its own.
        () => batch.map((entry) => this.attempt(entry)),
      );
    } catch (error) {
      for (const entry of batch) entry.reject(error); // the commit itself failed: nothing of the group is stored
      return;
    }
    for (const [i, entry] of batch.entries()) {
      const outcome = outcomes[i]!;
      if (!outcome.ok) {
        entry.reject(outcome.error);
        continue;
      }
      if (outcome.written) {
        this.publish(entry.runId, outcome.written.records);
        this.boardLog.publish(outcome.written.board);
      }
      entry.resolve(outcome.written);
    }
  }

  /** One append of a group in a savepoint: what it wrote, or why it failed (its writes rolled back). */
  private attempt(entry: PendingAppend): Outcome {
    try {
      return { ok: true, written: this.db.atomically(entry.body) };
    } catch (error) {
      return { ok: false, error };
    }
  }

  async appendTx(tx: Tx, runId: string, events: readonly RunEventInput[]): Promise<RunEvent[]> {
    if ((await tx.$executeRawUnsafe(BUMP_SEQ, events.length, runId)) === 0) throw new NotFoundError('Run', runId);
    const [bumped] = await tx.$queryRawUnsafe<{ lastSeq: number | bigint }[]>(LAST_SEQ, runId);
    const rows = eventRows(runId, Number(bumped.lastSeq), events);
    for (const row of rows) await tx.$executeRawUnsafe(INSERT_EVENT, ...row.params);
    return rows.map((row) => row.record);
  }

  /**
   * The transaction body: run changes, then the events with the next seqs, then the board log's
   * entries for a status change (every one goes through here, with its `status` event) or a merge.
   */
  private write(runId: string, events: readonly RunEventInput[], changes: RunChanges): Written {
    // The run's changes and its seq counter in one UPDATE, as the Postgres log does.
    const columns = RUN_COLUMNS.filter((column) => column in changes);
    const bump = columns.length ? this.db.sqlite.prepare(bumpSeqSql(columns)) : this.statements.bumpSeq;
    if (bump.run(...columns.map((c) => sqlValue(changes[c])), events.length, runId).changes === 0) throw new NotFoundError('Run', runId);
    const bumped = this.statements.lastSeq.get(runId)!;
    const records = eventRows(runId, bumped.lastSeq, events).map((row) => {
      this.statements.insert.run(...row.params);
      return row.record;
    });
    const board = this.boardLog.appendSync(null, boardEventsOf(runId, bumped.cardId, events, changes));
    return { records, board };
  }

  async read(runId: string, since = 0, limit = MAX_EVENTS_PER_READ): Promise<RunEvent[]> {
    const rows = this.statements.read.all(runId, since, Math.max(0, Math.min(limit, MAX_EVENTS_PER_READ)));
    return rows.map(([seq, type, data, createdAt]) => toRunEvent(runId, seq, type, JSON.parse(data) as Record<string, unknown>, new Date(createdAt)));
  }
}

/** The board log's entries for a write: the run's status change, and a merge that happened. */
export function boardEventsOf(runId: string, cardId: string, events: readonly RunEventInput[], changes: RunChanges): BoardEventInput[] {
  const board: BoardEventInput[] = [];
  if (changes.status) board.push({ type: 'run_status_changed', cardId, runId, data: { runId, status: changes.status } });
  for (const event of events) {
    if (event.type === 'merge' && event.data.ok === true) board.push({ type: 'run_merged', cardId, runId, data: { runId, sha: String(event.data.sha), strategy: String(event.data.strategy) } });
  }
  return board;
}

/**
 * The rows of `events` once the run's counter is at `lastSeq` (the last of them): each one's insert
 * parameters (INSERT_EVENT, as Prisma writes them) and the record it reads back as. Both writers use it.
 */
function eventRows(runId: string, lastSeq: number, events: readonly RunEventInput[]) {
  const createdAt = new Date();
  const stamp = sqlValue(createdAt);
  return events.map((event, i) => {
    const seq = lastSeq - events.length + 1 + i;
    const { data, json } = capData(event.data);
    return { params: [timeOrderedId(), runId, seq, event.type, json, stamp] as const, record: toRunEvent(runId, seq, event.type, data, createdAt) };
  });
}

/** Keeps an event's JSON under MAX_EVENT_DATA_BYTES, replacing an oversized payload with a preview; answers the data kept and its JSON, made once. */
export function capData(data: object): { data: Record<string, unknown>; json: string } {
  const json = JSON.stringify(data);
  // Fewer characters than the limit's bytes/3 cannot be over it (UTF-16 units encode to at most 3 bytes).
  const bytes = json.length * 3 <= MAX_EVENT_DATA_BYTES ? json.length : Buffer.byteLength(json);
  if (bytes <= MAX_EVENT_DATA_BYTES) return { data: data as Record<string, unknown>, json };
  const preview = { truncated: true, originalBytes: bytes, preview: truncateText(json, MAX_EVENT_DATA_BYTES / 4) };
  return { data: preview, json: JSON.stringify(preview) };
}

/** At most `maxChars` characters of `text`, marked with an ellipsis when cut. */
export function truncateText(text: string, maxChars: number): string {
  return text.length <= maxChars ? text : `${text.slice(0, maxChars)}…`;
}

/** The last `maxChars` characters of `text`, marked when cut. */
export function tailText(text: string, maxChars: number): string {
  return text.length <= maxChars ? text : `…${text.slice(-maxChars)}`;
}
