/**
 * The board log: every change to the board (cards, tags, references, comments, and a run's status
 * or merge) with one global `seq`, appended in the same transaction as the change and published on
 * the bus only after that transaction commits. A UI replays it from a seq and then follows it live.
 * Entries name cards and runs by id without foreign keys, so they outlive what they describe.
 */
import type BetterSqlite3 from 'better-sqlite3';
import type { CardColumn, ReferenceKind } from '../generated/prisma/client.js';
import type { Database, SqliteDatabase, Tx } from './db.js';
import type { PubSub } from './pubsub.js';
import type { RunStatus } from './run-status.js';

/** Every board event type, in one place. */
export const BOARD_EVENT_TYPES = [
  'card_created',
  'card_updated',
  'card_moved',
  'card_deleted',
  'card_tags_changed',
  'reference_added',
  'reference_removed',
  'comment_added',
  'comment_deleted',
  'run_status_changed',
  'run_merged',
] as const;

export type BoardEventType = (typeof BOARD_EVENT_TYPES)[number];

/** Each type's `data`. */
export interface BoardEventData {
  card_created: { title: string; column: CardColumn; position: number };
  /** `fields`: the names of the fields the change set; `title` is the card's title after it. */
  card_updated: { fields: string[]; title: string };
  card_moved: { fromColumn: CardColumn; fromPosition: number; column: CardColumn; position: number };
  card_deleted: { column: CardColumn; position: number };
  /** `tags`: the card's tags after the change. */
  card_tags_changed: { tags: string[] };
  reference_added: { referenceId: string; kind: ReferenceKind; target: string };
  reference_removed: { referenceId: string };
  comment_added: { commentId: string; author: string };
  comment_deleted: { commentId: string };
  run_status_changed: { runId: string; status: RunStatus };
  run_merged: { runId: string; sha: string; strategy: string };
}

/** What a writer appends; seq, actor and time are added by the log. */
export type BoardEventInput = { [T in BoardEventType]: { type: T; cardId: string | null; runId?: string | null; data: BoardEventData[T] } }[BoardEventType];

/** One stored board event, discriminated by `type`. */
export type BoardEventRecord = {
  [T in BoardEventType]: {
    seq: number;
    type: T;
    cardId: string | null;
    runId: string | null;
    /** The run whose agent made the change; null when the operator (or runboard itself) did. */
    actorRunId: string | null;
    data: BoardEventData[T];
    createdAt: Date;
  };
}[BoardEventType];

/** What the log publishes: every record on topic 'board-events', keyed by its card id ('-' for none); subscribe with key '*'. */
export interface BoardLogTopics extends Record<string, unknown> {
  'board-events': BoardEventRecord;
}

/** Most events one `read` returns. @default 1_000 */
export const MAX_BOARD_EVENTS_PER_READ = 1_000;

interface BoardEventRow {
  seq: number;
  type: string;
  cardId: string | null;
  runId: string | null;
  actorRunId: string | null;
  data: string;
  createdAt: string | Date;
}

/**
 * The board log on either engine (the Postgres one is pg-logs.ts; logs.ts picks by `db.kind`): reads go
 * through Prisma on both; appending differs, since the seq must be in commit order.
 */
export abstract class BoardLog {
  constructor(
    protected readonly db: Database,
    protected readonly bus: PubSub<BoardLogTopics>,
  ) {}

  /** Events with `seq > since`, oldest first, at most `limit` (capped at MAX_BOARD_EVENTS_PER_READ); committed ones only. */
  async read(since: number, limit: number): Promise<BoardEventRecord[]> {
    const rows = await this.db.client.boardEvent.findMany({
      where: { seq: { gt: since } },
      orderBy: { seq: 'asc' },
      take: Math.max(0, Math.min(limit, MAX_BOARD_EVENTS_PER_READ)),
    });
    return rows.map(toRecord);
  }

  /** The highest committed seq; 0 before the first event. */
  async lastSeq(): Promise<number> {
    const last = await this.db.client.boardEvent.findFirst({ orderBy: { seq: 'desc' }, select: { seq: true } });
    return last?.seq ?? 0;
  }

  /** Appends inside the caller's Prisma transaction (`Database.write`); publish the result after it commits. */
  abstract appendTx(tx: Tx, actorRunId: string | null, events: readonly BoardEventInput[]): Promise<BoardEventRecord[]>;

  /** Publishes committed records, in seq order. */
  publish(records: readonly BoardEventRecord[]): void {
    for (const record of records) this.bus.publish('board-events', record.cardId ?? '-', record);
  }
}

/** The board log on SQLite: one writer at a time (db.ts), so AUTOINCREMENT seqs commit in order. */
export class SqliteBoardLog extends BoardLog {
  private readonly insertStatement: BetterSqlite3.Statement<[string, string | null, string | null, string | null, string, string], { seq: number }>;

  constructor(db: SqliteDatabase, bus: PubSub<BoardLogTopics>) {
    super(db, bus);
    this.insertStatement = db.sqlite.prepare(
      'INSERT INTO "BoardEvent" ("type", "cardId", "runId", "actorRunId", "data", "createdAt") VALUES (?, ?, ?, ?, ?, ?) RETURNING "seq"',
    );
  }

  async appendTx(tx: Tx, actorRunId: string | null, events: readonly BoardEventInput[]): Promise<BoardEventRecord[]> {
    const records: BoardEventRecord[] = [];
    for (const event of events) {
      const row = await tx.boardEvent.create({ data: { type: event.type, cardId: event.cardId, runId: event.runId ?? null, actorRunId, data: JSON.stringify(event.data) } });
      records.push(toRecord(row));
    }
    return records;
  }

  /** Appends on the `sqlite` connection, inside the caller's `Database.writeSync` transaction; publish after it commits. */
  appendSync(actorRunId: string | null, events: readonly BoardEventInput[]): BoardEventRecord[] {
    const createdAt = new Date();
    // The text Prisma writes for a DateTime, so both writers' rows read back alike.
    const stamp = createdAt.toISOString().replace('Z', '+00:00');
    return events.map((event) => {
      const runId = event.runId ?? null;
      const { seq } = this.insertStatement.get(event.type, event.cardId, runId, actorRunId, JSON.stringify(event.data), stamp)!;
      return { seq, type: event.type, cardId: event.cardId, runId, actorRunId, data: event.data, createdAt } as BoardEventRecord;
    });
  }
}

function toRecord(row: BoardEventRow): BoardEventRecord {
  return {
    seq: row.seq,
    type: row.type,
    cardId: row.cardId,
    runId: row.runId,
    actorRunId: row.actorRunId,
    data: JSON.parse(row.data) as unknown,
    createdAt: new Date(row.createdAt),
  } as BoardEventRecord;
}
