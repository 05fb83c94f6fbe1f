/**
 * The run event log and the board log on Postgres, with the same public methods and semantics as the
 * SQLite ones (event-log.ts, board-log.ts); logs.ts picks by `db.kind`.
 *
 * Seqs come from counter rows, never from MAX+1 (it collapses under contention, SCALEOUT.md §3):
 * - a run's events: `Run.lastSeq`, bumped by the statement that inserts them. The bump locks the run's
 *   row until commit, so writers of one run (on any node) get gapless seqs 1..n and commit in seq order.
 * - the board log: the one row of `BoardEventSeq` (prisma/pg/migrations), bumped last in each writing
 *   transaction and locked until commit, so board seqs also commit in order. (A SERIAL would let seq 7
 *   commit before seq 6, and a follower reading `seq > 6`… would skip 6 for good.)
 *
 * An append without board entries is one statement on the pool (autocommit); one with them (a status
 * change, a merge) is one short transaction. Appends of one run from this process run one at a time, in
 * call order, as on SQLite. Records are published after commit and in seq order: when a record's seq is
 * not the next one published here (another writer committed in between: an `appendTx`, another node),
 * the missing ones are read from the log first, since they are committed by then.
 */
import type pg from 'pg';
import { BoardLog, MAX_BOARD_EVENTS_PER_READ, type BoardEventInput, type BoardEventRecord, type BoardLogTopics } from './board-log.js';
import type { PostgresDatabase, Tx } from './db.js';
import { NotFoundError } from './errors.js';
import { timeOrderedId } from './ids.js';
import { boardEventsOf, capData, EventLog, MAX_EVENTS_PER_READ, RUN_COLUMNS, type RunChanges, type RunEventTopics } from './event-log.js';
import { KeyedMutex, Mutex } from './lock.js';
import type { PubSub } from './pubsub.js';
import { setMostRecent } from './recent.js';
import { toRunEvent, type RunEvent, type RunEventInput } from './run-events.js';
import type { RunStatus } from './run-status.js';

/** Runs whose last published seq this process remembers (least recently used dropped first). @default 10_000 */
export const MAX_TRACKED_RUNS = 10_000;

/** Entries read per page when catching up on what other writers committed. @default 500 */
const CATCH_UP_PAGE = 500;

/** Runs SQL with `$n` placeholders: on a pg connection, or inside a Prisma transaction. */
type Query = <Row>(sql: string, params: unknown[]) => Promise<Row[]>;

const onConnection =
  (connection: pg.ClientBase | pg.Pool): Query =>
  async <Row>(sql: string, params: unknown[]) =>
    (await connection.query(sql, params)).rows as Row[];
const inPrismaTx =
  (tx: Tx): Query =>
  <Row>(sql: string, params: unknown[]) =>
    tx.$queryRawUnsafe<Row[]>(sql, ...params);

/** Inserts a run's events with given seqs: $1 runId, $2 createdAt, then arrays of id, seq, type, data. */
const INSERT_EVENTS = `INSERT INTO "RunEvent" ("id", "runId", "seq", "type", "data", "createdAt")
  SELECT e."id", $1::text, e."seq", e."type", e."data", $2::timestamp(3)
  FROM unnest($3::text[], $4::int[], $5::text[], $6::text[]) AS e("id", "seq", "type", "data")`;

/** Bumps the board counter by $1 and inserts that many entries: $2 actorRunId, $3 createdAt, then arrays of type, cardId, runId, data. */
const APPEND_BOARD = `WITH "counter" AS (UPDATE "BoardEventSeq" SET "lastSeq" = "lastSeq" + $1::int WHERE "id" = 1 RETURNING "lastSeq")
  INSERT INTO "BoardEvent" ("seq", "type", "cardId", "runId", "actorRunId", "data", "createdAt")
  SELECT "counter"."lastSeq" - $1::int + e."ord", e."type", e."cardId", e."runId", $2::text, e."data", $3::timestamp(3)
  FROM "counter", unnest($4::text[], $5::text[], $6::text[], $7::text[]) WITH ORDINALITY AS e("type", "cardId", "runId", "data", "ord")
  RETURNING "seq"`;

/**
 * A page of a run's events. The upper bound holds the same rows (seqs are gapless), and keeps every plan
 * to one page: without statistics for the run (a fresh table, or a run grown since the last ANALYZE)
 * Postgres chose a bitmap scan of every event after `since` and a top-N sort, 25 ms a page halfway
 * through 100,000 events (0.5 ms bounded), which made a replay quadratic.
 */
export const READ_EVENTS = `SELECT "seq", "type", "data", "createdAt" AT TIME ZONE 'UTC' AS "createdAt"
  FROM "RunEvent" WHERE "runId" = $1 AND "seq" > $2 AND "seq" <= $2::bigint + $3 ORDER BY "seq" LIMIT $3`;

/** Postgres values for `RunChanges`: dates as UTC text (the columns are `timestamp(3)`, as Prisma writes them). */
function pgValue(value: RunChanges[keyof RunChanges]): unknown {
  return value instanceof Date ? value.toISOString() : (value ?? null);
}

/**
 * `UPDATE "Run"` applying `changes` and bumping `lastSeq` by `count`, only while the status is `expected`
 * (when given); returns its SQL and parameters ($1 run id, $2 count). RETURNING "lastSeq", "cardId".
 */
function bumpRun(runId: string, count: number, changes: RunChanges, expected: RunStatus | null): { sql: string; params: unknown[] } {
  const params: unknown[] = [runId, count];
  const sets = RUN_COLUMNS.filter((column) => column in changes).map((column) => `"${column}" = $${params.push(pgValue(changes[column]))}`);
  const where = expected === null ? '' : ` AND "status" = $${params.push(expected)}`;
  return {
    sql: `UPDATE "Run" SET ${[...sets, '"lastSeq" = "lastSeq" + $2::int'].join(', ')} WHERE "id" = $1::text${where} RETURNING "lastSeq", "cardId"`,
    params,
  };
}

/** Events ready to insert: ids, capped data, one timestamp; their seqs are known once the counter is bumped. */
function prepareEvents(events: readonly RunEventInput[]) {
  const createdAt = new Date();
  const rows = events.map((event) => ({ id: timeOrderedId(), type: event.type, ...capData(event.data) }));
  const seqs = (lastSeq: number) => rows.map((_, i) => lastSeq - rows.length + 1 + i);
  const columns = [createdAt.toISOString(), rows.map((row) => row.id), rows.map((row) => row.type), rows.map((row) => row.json)] as const;
  return {
    /** createdAt, then the arrays of ids, types and data. */
    columns,
    /** INSERT_EVENTS's parameters once the counter is at `lastSeq` (the last event's seq). */
    insertParams: (runId: string, lastSeq: number): unknown[] => [runId, columns[0], columns[1], seqs(lastSeq), columns[2], columns[3]],
    /** The records once the counter is at `lastSeq`. */
    records: (runId: string, lastSeq: number): RunEvent[] => seqs(lastSeq).map((seq, i) => toRunEvent(runId, seq, rows[i]!.type, rows[i]!.data, createdAt)),
  };
}

/** The hot path's one statement: `bump` (its RETURNING feeds the seqs) and the inserts; RETURNING "seq" (none: run unknown or not in status). */
function bumpAndInsert(bump: { sql: string; params: unknown[] }, prepared: ReturnType<typeof prepareEvents>): { sql: string; params: unknown[] } {
  const at = (i: number) => `$${bump.params.length + i}`;
  return {
    sql: `WITH "bumped" AS (${bump.sql})
      INSERT INTO "RunEvent" ("id", "runId", "seq", "type", "data", "createdAt")
      SELECT e."id", $1::text, "bumped"."lastSeq" - $2::int + e."ord", e."type", e."data", ${at(1)}::timestamp(3)
      FROM "bumped", unnest(${at(2)}::text[], ${at(3)}::text[], ${at(4)}::text[]) WITH ORDINALITY AS e("id", "type", "data", "ord")
      RETURNING "seq"`,
    params: [...bump.params, ...prepared.columns],
  };
}

/** Runs `fn` in a transaction on a connection of `pool`; a connection that fails to roll back is discarded. */
async function transaction<T>(pool: pg.Pool, fn: (query: Query) => Promise<T>): Promise<T> {
  const connection = await pool.connect();
  let broken: Error | undefined;
  try {
    await connection.query('BEGIN');
    try {
      const result = await fn(onConnection(connection));
      await connection.query('COMMIT');
      return result;
    } catch (error) {
      await connection.query('ROLLBACK').catch((rollback: Error) => void (broken = rollback));
      throw error;
    }
  } finally {
    connection.release(broken);
  }
}

/**
 * Publishes `records` (committed, ascending) with `emit` after `since`, the last seq published. When they do
 * not follow it, the committed entries in between are read and published first, a page at a time. Returns
 * the new last published seq.
 */
async function publishInOrder<Entry extends { readonly seq: number }>(
  since: number,
  records: readonly Entry[],
  read: (since: number, limit: number) => Promise<Entry[]>,
  emit: (entry: Entry) => void,
): Promise<number> {
  let last = since;
  const publish = (entries: readonly Entry[]) => {
    for (const entry of entries) {
      if (entry.seq <= last) continue;
      emit(entry);
      last = entry.seq;
    }
  };
  const end = records[records.length - 1]!.seq;
  try {
    while (last < records[0]!.seq - 1) {
      const page = await read(last, Math.min(end - last, CATCH_UP_PAGE));
      if (page.length === 0) break;
      publish(page);
    }
  } catch {
    // The database failed just after a commit: publish what we have. Followers here skip the hole (they
    // drop nothing they can see); one that resubscribes with its `since` gets it from the log.
  }
  publish(records);
  return last;
}

/** What one append wrote. */
interface Written {
  records: RunEvent[];
  board: BoardEventRecord[];
}

export class PostgresEventLog extends EventLog {
  /** One append (and publish) of a run at a time in this process, in call order. */
  private readonly turns = new KeyedMutex();
  /** The last seq published here, by run, for the most recently published runs. */
  private readonly published = new Map<string, number>();

  constructor(
    private readonly db: PostgresDatabase,
    bus: PubSub<RunEventTopics>,
    private readonly boardLog: PostgresBoardLog,
  ) {
    super(bus);
  }

  async append(runId: string, events: readonly RunEventInput[], changes: RunChanges = {}): Promise<RunEvent[]> {
    const written = await this.turns.run(runId, () => this.writeAndPublish(runId, null, events, changes));
    if (!written) throw new NotFoundError('Run', runId);
    return written.records;
  }

  async appendIfStatus(runId: string, expected: RunStatus, events: readonly RunEventInput[], changes: RunChanges): Promise<RunEvent[] | null> {
    const written = await this.turns.run(runId, () => this.writeAndPublish(runId, expected, events, changes));
    return written?.records ?? null;
  }

  async appendTx(tx: Tx, runId: string, events: readonly RunEventInput[]): Promise<RunEvent[]> {
    const query = inPrismaTx(tx);
    const prepared = prepareEvents(events);
    const bump = bumpRun(runId, events.length, {}, null);
    const [bumped] = await query<{ lastSeq: number }>(bump.sql, bump.params);
    if (!bumped) throw new NotFoundError('Run', runId);
    if (events.length) await query(INSERT_EVENTS, prepared.insertParams(runId, bumped.lastSeq));
    return prepared.records(runId, bumped.lastSeq);
  }

  /** After commit; published in this run's turn, after what it has already published. */
  override publish(runId: string, records: readonly RunEvent[]): void {
    if (records.length) void this.turns.run(runId, () => this.publishInOrder(runId, records));
  }

  async read(runId: string, since = 0, limit = MAX_EVENTS_PER_READ): Promise<RunEvent[]> {
    // Rows as arrays, not objects, as in the SQLite log.
    const { rows } = await this.db.pg.query<[seq: number, type: string, data: string, createdAt: Date]>({
      text: READ_EVENTS,
      values: [runId, since, Math.max(0, Math.min(limit, MAX_EVENTS_PER_READ))],
      rowMode: 'array',
    });
    return rows.map(([seq, type, data, createdAt]) => toRunEvent(runId, seq, type, JSON.parse(data) as Record<string, unknown>, createdAt));
  }

  private async writeAndPublish(runId: string, expected: RunStatus | null, events: readonly RunEventInput[], changes: RunChanges): Promise<Written | null> {
    const written = await this.write(runId, expected, events, changes);
    if (written) {
      await this.publishInOrder(runId, written.records);
      this.boardLog.publish(written.board);
    }
    return written;
  }

  /**
   * Run changes, the events with the next seqs and, for a status change or a merge, the board log's
   * entries, committed together. Null when the run is unknown or (with `expected`) not in that status.
   */
  private async write(runId: string, expected: RunStatus | null, events: readonly RunEventInput[], changes: RunChanges): Promise<Written | null> {
    const prepared = prepareEvents(events);
    const bump = bumpRun(runId, events.length, changes, expected);
    if (events.length && boardEventsOf(runId, '', events, changes).length === 0) {
      // The hot path: one statement, so one round trip and one commit.
      const statement = bumpAndInsert(bump, prepared);
      const { rows } = await this.db.pg.query<{ seq: number }>(statement.sql, statement.params);
      if (!rows.length) return null;
      return { records: prepared.records(runId, Math.max(...rows.map((row) => row.seq))), board: [] };
    }
    return transaction(this.db.pg, async (query) => {
      const [bumped] = await query<{ lastSeq: number; cardId: string }>(bump.sql, bump.params);
      if (!bumped) return null;
      if (events.length) await query(INSERT_EVENTS, prepared.insertParams(runId, bumped.lastSeq));
      const board = await this.boardLog.appendWith(query, null, boardEventsOf(runId, bumped.cardId, events, changes));
      return { records: prepared.records(runId, bumped.lastSeq), board };
    });
  }

  /** Publishes `records` (committed), first reading any committed seqs between them and what was published here. */
  private async publishInOrder(runId: string, records: readonly RunEvent[]): Promise<void> {
    if (!records.length) return;
    const since = this.published.get(runId) ?? records[0]!.seq - 1;
    const last = await publishInOrder(since, records, (from, limit) => this.read(runId, from, limit), (record) => this.bus.publish('run-events', runId, record));
    setMostRecent(this.published, runId, last, MAX_TRACKED_RUNS);
  }
}

export class PostgresBoardLog extends BoardLog {
  /** Publishes one batch at a time, in seq order. */
  private readonly publishing = new Mutex();
  /** The last seq published here; read once at start (null: that failed, so the first batch sets it). */
  private published: Promise<number | null>;

  constructor(db: PostgresDatabase, bus: PubSub<BoardLogTopics>) {
    super(db, bus);
    this.published = this.lastSeq().catch(() => null);
  }

  async appendTx(tx: Tx, actorRunId: string | null, events: readonly BoardEventInput[]): Promise<BoardEventRecord[]> {
    return this.appendWith(inPrismaTx(tx), actorRunId, events);
  }

  /**
   * Appends with `query`, inside the caller's transaction, which should do nothing else after it:
   * the counter row stays locked until commit, and every board writer waits for it.
   */
  async appendWith(query: Query, actorRunId: string | null, events: readonly BoardEventInput[]): Promise<BoardEventRecord[]> {
    if (!events.length) return [];
    const createdAt = new Date();
    const rows = await query<{ seq: number }>(APPEND_BOARD, [
      events.length,
      actorRunId,
      createdAt.toISOString(),
      events.map((event) => event.type),
      events.map((event) => event.cardId),
      events.map((event) => event.runId ?? null),
      events.map((event) => JSON.stringify(event.data)),
    ]);
    const first = Math.min(...rows.map((row) => row.seq));
    return events.map((event, i) => ({ seq: first + i, type: event.type, cardId: event.cardId, runId: event.runId ?? null, actorRunId, data: event.data, createdAt }) as BoardEventRecord);
  }

  /** After commit; in seq order with everything published here before (missing committed entries are read first). */
  override publish(records: readonly BoardEventRecord[]): void {
    if (!records.length) return;
    void this.publishing.run(async () => {
      const since = (await this.published) ?? records[0]!.seq - 1;
      const last = await publishInOrder(since, records, (from, limit) => this.read(from, Math.min(limit, MAX_BOARD_EVENTS_PER_READ)), (record) =>
        this.bus.publish('board-events', record.cardId ?? '-', record),
      );
      this.published = Promise.resolve(last);
    });
  }
}
