/**
 * The run event log: every event of a run is persisted with the next per-run `seq` (1, 2, 3… no
 * gaps, no repeats) inside one transaction, and published only after that transaction commits.
 * Whatever writes an event (the agent, a merge, a playtest, a board change) goes through `append`.
 */
import type { Database, Tx } from './db.js';
import type { PubSub } from './pubsub.js';

/** Largest `data` of one event, as JSON; larger payloads are replaced by a preview. @default 16_384 // bytes */
export const MAX_EVENT_DATA_BYTES = 16 * 1024;
/** Most events one `read` returns. @default 1_000 */
export const MAX_EVENTS_PER_READ = 1_000;

export interface RunEventInput {
  /** snake_case, e.g. `status`, `assistant_text`, `tool_end`. */
  readonly type: string;
  readonly data: Record<string, unknown>;
}

export interface RunEventRecord {
  readonly runId: string;
  readonly seq: number;
  readonly type: string;
  readonly data: Record<string, unknown>;
  readonly createdAt: Date;
}

/** What the log publishes, by topic; keyed by run id. */
export interface RunEventTopics extends Record<string, unknown> {
  'run-events': RunEventRecord;
}

export class EventLog {
  constructor(
    private readonly db: Database,
    private readonly bus: PubSub<RunEventTopics>,
  ) {}

  /**
   * Persists `events` in order with the next seqs, running `alsoInTx` (a status update, say) in the
   * same transaction, then publishes them. Returns the stored records.
   */
  async append(runId: string, events: readonly RunEventInput[], alsoInTx?: (tx: Tx) => Promise<unknown>): Promise<RunEventRecord[]> {
    if (events.length === 0 && !alsoInTx) return [];
    const records = await this.db.write(async (tx) => {
      if (alsoInTx) await alsoInTx(tx);
      if (events.length === 0) return [];
      const run = await tx.run.update({ where: { id: runId }, data: { lastSeq: { increment: events.length } }, select: { lastSeq: true } });
      const first = run.lastSeq - events.length + 1;
      const createdAt = new Date();
      const rows = events.map((event, i) => ({ runId, seq: first + i, type: event.type, data: capData(event.data), createdAt }));
      await tx.runEvent.createMany({ data: rows.map((row) => ({ ...row, data: JSON.stringify(row.data) })) });
      return rows;
    });
    for (const record of records) this.bus.publish('run-events', runId, record);
    return records;
  }

  /** Events with `seq > since`, oldest first, at most `limit` (capped at MAX_EVENTS_PER_READ). */
  async read(runId: string, since = 0, limit = MAX_EVENTS_PER_READ): Promise<RunEventRecord[]> {
    const rows = await this.db.client.runEvent.findMany({
      where: { runId, seq: { gt: since } },
      orderBy: { seq: 'asc' },
      take: Math.max(0, Math.min(limit, MAX_EVENTS_PER_READ)),
      select: { seq: true, type: true, data: true, createdAt: true },
    });
    return rows.map((row) => ({ runId, seq: row.seq, type: row.type, data: JSON.parse(row.data) as Record<string, unknown>, createdAt: row.createdAt }));
  }
}

/** Keeps an event's JSON under MAX_EVENT_DATA_BYTES, replacing an oversized payload with a preview. */
export function capData(data: Record<string, unknown>): Record<string, unknown> {
  const json = JSON.stringify(data);
  if (Buffer.byteLength(json) <= MAX_EVENT_DATA_BYTES) return data;
  return { truncated: true, originalBytes: Buffer.byteLength(json), preview: truncateText(json, MAX_EVENT_DATA_BYTES / 4) };
}

/** At most `maxChars` characters of `text`, marked with an ellipsis when cut. */
export function truncateText(text: string, maxChars: number): string {
  return text.length <= maxChars ? text : `${text.slice(0, maxChars)}…`;
}

/** The last `maxChars` characters of `text`, marked when cut. */
export function tailText(text: string, maxChars: number): string {
  return text.length <= maxChars ? text : `…${text.slice(-maxChars)}`;
}
