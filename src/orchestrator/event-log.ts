/**
 * The run event log: every event of a run is persisted with the next per-run `seq` (1, 2, 3… no
 * gaps, no repeats) inside one transaction, and published only after that transaction commits.
 * It speaks SQL on its own connection (see db.ts): this is the hot path of every run.
 * Whatever writes an event (the agent, a merge, a playtest, a board change) goes through `append`.
 */
import { randomUUID } from 'node:crypto';
import type { Database } from './db.js';
import { NotFoundError } from './errors.js';
import type { PubSub } from './pubsub.js';
import type { RunStatus } from './run-status.js';

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
  worktreeMissing?: boolean;
  mergedSha?: string | null;
  playtestCommand?: string | null;
  playtestPid?: number | null;
  playtestStartedAt?: Date | null;
  playtestEndedAt?: Date | null;
  playtestExitCode?: number | null;
  playtestSignal?: string | null;
}

const RUN_COLUMNS: readonly (keyof RunChanges)[] = [
  'status', 'startedAt', 'endedAt', 'error', 'exitCode', 'exitSignal', 'agentPid', 'worktreeMissing', 'mergedSha',
  'playtestCommand', 'playtestPid', 'playtestStartedAt', 'playtestEndedAt', 'playtestExitCode', 'playtestSignal',
];

/** SQLite values as Prisma writes them: ISO dates with an explicit offset, booleans as 0/1. */
function sqlValue(value: RunChanges[keyof RunChanges]): string | number | null {
  if (value instanceof Date) return value.toISOString().replace('Z', '+00:00');
  if (typeof value === 'boolean') return value ? 1 : 0;
  return value ?? null;
}

export class EventLog {
  private readonly statements;

  constructor(
    private readonly db: Database,
    private readonly bus: PubSub<RunEventTopics>,
  ) {
    const sqlite = db.sqlite;
    this.statements = {
      status: sqlite.prepare<[string], { status: string }>('SELECT "status" FROM "Run" WHERE "id" = ?'),
      bumpSeq: sqlite.prepare<[number, string], { lastSeq: number }>('UPDATE "Run" SET "lastSeq" = "lastSeq" + ? WHERE "id" = ? RETURNING "lastSeq"'),
      insert: sqlite.prepare('INSERT INTO "RunEvent" ("id", "runId", "seq", "type", "data", "createdAt") VALUES (?, ?, ?, ?, ?, ?)'),
      read: sqlite.prepare<[string, number, number], { seq: number; type: string; data: string; createdAt: string }>(
        'SELECT "seq", "type", "data", "createdAt" FROM "RunEvent" WHERE "runId" = ? AND "seq" > ? ORDER BY "seq" LIMIT ?',
      ),
    };
  }

  /**
   * Persists `events` in order with the next seqs, applying `changes` to the run row in the same
   * transaction, then publishes them. Returns the stored records. NotFoundError for an unknown run.
   */
  async append(runId: string, events: readonly RunEventInput[], changes: RunChanges = {}): Promise<RunEventRecord[]> {
    const records = await this.db.writeSync(() => this.write(runId, events, changes));
    this.publish(runId, records);
    return records;
  }

  /**
   * Like `append`, but only if the run's status is still `expected` when the transaction runs;
   * null (nothing written) otherwise. For transitions another writer may race, such as stopping a
   * QUEUED run that the queue is just starting.
   */
  async appendIfStatus(runId: string, expected: RunStatus, events: readonly RunEventInput[], changes: RunChanges): Promise<RunEventRecord[] | null> {
    const records = await this.db.writeSync(() => (this.statements.status.get(runId)?.status === expected ? this.write(runId, events, changes) : null));
    if (records) this.publish(runId, records);
    return records;
  }

  /** The transaction body: run changes, then the events with the next seqs. */
  private write(runId: string, events: readonly RunEventInput[], changes: RunChanges): RunEventRecord[] {
    const columns = RUN_COLUMNS.filter((column) => column in changes);
    if (columns.length) {
      this.db.sqlite
        .prepare(`UPDATE "Run" SET ${columns.map((c) => `"${c}" = ?`).join(', ')} WHERE "id" = ?`)
        .run(...columns.map((c) => sqlValue(changes[c])), runId);
    }
    const bumped = this.statements.bumpSeq.get(events.length, runId);
    if (!bumped) throw new NotFoundError('Run', runId);
    const createdAt = new Date();
    const stamp = sqlValue(createdAt);
    return events.map((event, i) => {
      const record = { runId, seq: bumped.lastSeq - events.length + 1 + i, type: event.type, data: capData(event.data), createdAt };
      this.statements.insert.run(randomUUID(), runId, record.seq, record.type, JSON.stringify(record.data), stamp);
      return record;
    });
  }

  /** Published only after the transaction committed. */
  private publish(runId: string, records: readonly RunEventRecord[]): void {
    for (const record of records) this.bus.publish('run-events', runId, record);
  }

  /** Events with `seq > since`, oldest first, at most `limit` (capped at MAX_EVENTS_PER_READ). */
  async read(runId: string, since = 0, limit = MAX_EVENTS_PER_READ): Promise<RunEventRecord[]> {
    const rows = this.statements.read.all(runId, since, Math.max(0, Math.min(limit, MAX_EVENTS_PER_READ)));
    return rows.map((row) => ({ runId, seq: row.seq, type: row.type, data: JSON.parse(row.data) as Record<string, unknown>, createdAt: new Date(row.createdAt) }));
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
