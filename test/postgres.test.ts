/**
 * Postgres as the database (issue 15): the derived schema stays in step, nodes starting at once migrate
 * once, run seqs stay gapless and board seqs commit in order under concurrent writers on two Database
 * instances, and a whole server runs on it. Real Postgres from test/helpers/services.ts.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { derivePgSchema, PG_SCHEMA, SQLITE_SCHEMA } from '../scripts/pg-schema.js';
import type { BoardEventRecord } from '../src/orchestrator/board-log.js';
import { Database, type PostgresDatabase } from '../src/orchestrator/db.js';
import type { RunEvent } from '../src/orchestrator/event-log.js';
import { createLogs } from '../src/orchestrator/logs.js';
import { READ_EVENTS } from '../src/orchestrator/pg-logs.js';
import { migrateDatabase } from '../src/orchestrator/migrations.js';
import { PG_MIGRATIONS_DIR } from '../src/orchestrator/pg-migrations.js';
import { InMemoryPubSub } from '../src/orchestrator/pubsub.js';
import type { Topics } from '../src/orchestrator/index.js';
import { makeActiveRun, RUN_EVENT_FIELDS, withData, type TestRunEvent } from './helpers/events.js';
import { runEvents, startAgentTestBed, startRun, writeAndCommit, type AgentTestBed } from './helpers/runs.js';
import { startTestServer, type TestServer } from './helpers/server.js';
import { startServices, type Services } from './helpers/services.js';

let services: Services;
let databases = 0;
beforeAll(async () => {
  services = await startServices();
}, 30_000);
afterAll(() => services?.stop());

/** A fresh, empty database of the test cluster. */
const freshDatabase = () => services.createDatabase(`t${++databases}`);

/** Opens `url` as Postgres, with both logs on an in-memory bus of its own (one "node"). */
async function node(url: string) {
  const db = (await Database.open({ url })) as PostgresDatabase;
  expect(db.kind).toBe('postgres');
  const bus = new InMemoryPubSub<Topics>();
  return { db, bus, ...createLogs(db, bus) };
}

test('prisma/pg/schema.prisma is derived from prisma/schema.prisma (else run npm run generate)', () => {
  expect(readFileSync(PG_SCHEMA, 'utf8')).toBe(derivePgSchema(readFileSync(SQLITE_SCHEMA, 'utf8')));
});

test('three nodes opening a fresh database at once apply each migration once, with Prisma checksums', async () => {
  const url = await freshDatabase();
  const opened = await Promise.all([1, 2, 3].map(() => Database.open({ url })));
  try {
    const names = readdirSync(PG_MIGRATIONS_DIR, { withFileTypes: true }).filter((entry) => entry.isDirectory()).map((entry) => entry.name).sort();
    expect(names[0]).toBe('20261201060000_init');
    expect(opened.flatMap((db) => db.migrations.applied).sort()).toEqual(names);
    expect(opened.map((db) => db.migrations.total)).toEqual([names.length, names.length, names.length]);
    const rows = await opened[0]!.client.$queryRawUnsafe<{ migration_name: string; checksum: string; finished_at: Date | null }[]>(
      'SELECT migration_name, checksum, finished_at FROM "_prisma_migrations" ORDER BY migration_name',
    );
    expect(rows).toEqual(
      names.map((name) => ({ migration_name: name, checksum: createHash('sha256').update(readFileSync(path.join(PG_MIGRATIONS_DIR, name, 'migration.sql'), 'utf8')).digest('hex'), finished_at: expect.any(Date) })),
    );
  } finally {
    await Promise.all(opened.map((db) => db.close()));
  }
  const again = await Database.open({ url });
  expect(again.migrations.applied).toEqual([]);
  await again.close();
});

test('appends to one run from two Database instances at once get gapless seqs, published in order', async () => {
  const url = await freshDatabase();
  const [a, b] = await Promise.all([node(url), node(url)]);
  try {
    const card = await a.db.client.card.create({ data: { title: 'busy', position: 0 } });
    const run = await a.db.client.run.create({ data: { cardId: card.id, prompt: 'p', status: 'RUNNING' } });
    const published = new Map([a, b].map((n) => [n, [] as number[]]));
    for (const n of [a, b]) n.bus.subscribe('run-events', run.id, (event) => published.get(n)!.push(event.seq));

    // 2 instances × 4 writers × 20 appends of 1-3 events; every 7th also changes the run (a board entry with it).
    const own = new Map([a, b].map((n) => [n, [] as number[]]));
    const writers = [a, b].flatMap((n) =>
      [0, 1, 2, 3].map(async (w) => {
        for (let i = 0; i < 20; i++) {
          const events = Array.from({ length: 1 + ((w + i) % 3) }, (_, k) => ({ type: 'assistant_text' as const, data: { text: `${w}-${i}-${k}` } }));
          const records = i % 7 === 0 ? await n.eventLog.append(run.id, events, { agentPid: w }) : await n.eventLog.append(run.id, events);
          own.get(n)!.push(...records.map((r) => r.seq));
        }
      }),
    );
    await Promise.all(writers);
    const returned = [...own.values()].flat();
    const n = returned.length;
    expect([...returned].sort((x, y) => x - y)).toEqual(Array.from({ length: n }, (_, i) => i + 1));

    const stored = await a.eventLog.read(run.id, 0, 1_000);
    expect(stored.map((e) => e.seq)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
    expect((await a.db.client.run.findUniqueOrThrow({ where: { id: run.id } })).lastSeq).toBe(n);
    // Each node publishes its own records in seq order, with what the other node committed in between read
    // from the log (what the other commits after its own last append reaches it through a shared bus, not here).
    for (const node of [a, b]) {
      const mine = own.get(node)!.sort((x, y) => x - y);
      await waitUntil(() => published.get(node)!.at(-1) === mine.at(-1));
      const seqs = published.get(node)!;
      expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => seqs[0]! + i));
      expect(seqs).toEqual(expect.arrayContaining(mine));
    }
  } finally {
    await Promise.all([a.db.close(), b.db.close()]);
  }
});

test('a page of a long run reads about a page of rows, even before Postgres has statistics for the run', async () => {
  const url = await freshDatabase();
  const a = await node(url);
  try {
    // No ANALYZE during the test: the planner knows nothing of the 20,000 events, as on a fresh or fast-grown table.
    await a.db.pg.query('ALTER TABLE "RunEvent" SET (autovacuum_enabled = false)');
    const card = await a.db.client.card.create({ data: { title: 'long', position: 0 } });
    const run = await a.db.client.run.create({ data: { cardId: card.id, prompt: 'p', status: 'RUNNING' } });
    for (let i = 0; i < 20; i++) await a.eventLog.append(run.id, Array.from({ length: 1_000 }, (_, k) => ({ type: 'assistant_text' as const, data: { text: `${i}-${k}` } })));
    expect((await a.eventLog.read(run.id, 10_000, 500)).map((event) => event.seq)).toEqual(Array.from({ length: 500 }, (_, i) => 10_001 + i));
    const { rows } = await a.db.pg.query<{ 'QUERY PLAN': [{ Plan: PlanNode }] }>(`EXPLAIN (ANALYZE, FORMAT JSON) ${READ_EVENTS}`, [run.id, 10_000, 500]);
    const nodes = (plan: PlanNode): PlanNode[] => [plan, ...(plan.Plans ?? []).flatMap(nodes)];
    // Every step of the plan handles at most the page: not the 10,000 events after it, sorted for the first 500.
    expect(Math.max(...nodes(rows[0]!['QUERY PLAN'][0].Plan).map((plan) => plan['Actual Rows']))).toBe(500);
  } finally {
    await a.db.close();
  }
});

/** A node of EXPLAIN's JSON plan. */
interface PlanNode {
  'Actual Rows': number;
  Plans?: PlanNode[];
}

test('board seqs become visible in order under concurrent writers: a follower reading seq > last skips none', async () => {
  const url = await freshDatabase();
  const [a, b] = await Promise.all([node(url), node(url)]);
  try {
    const card = await a.db.client.card.create({ data: { title: 'board', position: 0 } });
    const runs = await Promise.all([a, b].map((n) => n.db.client.run.create({ data: { cardId: card.id, prompt: 'p', status: 'QUEUED' } })));
    const seen: number[] = [];
    let writing = true;
    const follower = (async () => {
      while (writing || seen.length === 0 || seen.at(-1)! < (await a.boardLog.lastSeq())) {
        for (const record of await b.boardLog.read(seen.at(-1) ?? 0, 1_000)) seen.push(record.seq);
      }
    })();
    const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
    const boardWrite = (n: typeof a, i: number, holdMs: number) =>
      n.db.write(async (tx) => {
        const records = await n.boardLog.appendTx(tx, null, [{ type: 'card_updated', cardId: card.id, data: { fields: ['title'], title: `t${i}` } }]);
        await sleep(holdMs); // a slow transaction: nobody may commit a later seq before it does
        return records;
      });
    const work: Promise<unknown>[] = [];
    for (let i = 0; i < 30; i++) {
      const n = i % 2 ? a : b;
      work.push(boardWrite(n, i, i % 5 === 0 ? 50 : 0));
      // Status changes write their board entry in the event log's own transaction.
      work.push(n.eventLog.append(runs[i % 2]!.id, [{ type: 'status', data: { status: i % 4 < 2 ? 'STARTING' : 'RUNNING' } }], { status: i % 4 < 2 ? 'STARTING' : 'RUNNING' }));
    }
    await Promise.all(work);
    writing = false;
    await follower;
    const total = await a.boardLog.lastSeq();
    expect(total).toBe(60);
    expect(seen).toEqual(Array.from({ length: total }, (_, i) => i + 1));
  } finally {
    await Promise.all([a.db.close(), b.db.close()]);
  }
});

test('the Postgres migrations give the same tables and columns as the SQLite ones (add one to prisma/pg/migrations too)', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'runboard-sqlite-'));
  const file = path.join(dir, 'schema.db');
  migrateDatabase(file);
  const sqlite = new BetterSqlite3(file, { readonly: true });
  const db = (await Database.open({ url: await freshDatabase() })) as PostgresDatabase;
  try {
    const tables = sqlite.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> '_prisma_migrations'`).all() as { name: string }[];
    const inSqlite = tables.flatMap(({ name }) => (sqlite.pragma(`table_info("${name}")`) as { name: string; notnull: number; pk: number }[]).map((c) => `${name}.${c.name} ${c.notnull || c.pk ? 'NOT NULL' : 'NULL'}`));
    const { rows: columns } = await db.pg.query<{ table_name: string; column_name: string; is_nullable: string }>(
      `SELECT table_name, column_name, is_nullable FROM information_schema.columns WHERE table_schema = 'public' AND table_name NOT IN ('_prisma_migrations', 'BoardEventSeq')`,
    );
    const inPostgres = columns.map((c) => `${c.table_name}.${c.column_name} ${c.is_nullable === 'YES' ? 'NULL' : 'NOT NULL'}`);
    expect(inPostgres.sort()).toEqual(inSqlite.sort());
  } finally {
    sqlite.close();
    await db.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('withLock excludes holders of the same name across Database instances, and releases on failure', async () => {
  const url = await freshDatabase();
  const [a, b] = await Promise.all([Database.open({ url }), Database.open({ url })]);
  try {
    const log: string[] = [];
    const hold = (db: Database, who: string) =>
      db.withLock('merge', async () => {
        log.push(`${who} in`);
        await new Promise((resolve) => setTimeout(resolve, 30));
        log.push(`${who} out`);
      });
    await Promise.all([hold(a, 'a1'), hold(b, 'b1'), hold(a, 'a2'), hold(b, 'b2')]);
    for (let i = 0; i < log.length; i += 2) expect(log[i + 1]).toBe(log[i]!.replace(' in', ' out'));
    await expect(a.withLock('merge', async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(await b.withLock('merge', async () => 'free again')).toBe('free again');
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
});

describe('a server on Postgres', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({ databaseUrl: await freshDatabase() });
  }, 30_000);
  afterAll(() => t?.close());

  test('is ready, and a board mutation leaves its board event', async () => {
    expect(t.server.orchestrator.db.kind).toBe('postgres');
    const ready = await (await fetch(new URL('/readyz', t.url))).json();
    expect(ready).toMatchObject({ ready: true, failed: [] });
    const published: BoardEventRecord[] = [];
    const stop = t.server.orchestrator.bus.subscribe('board-events', '*', (record) => published.push(record));
    try {
      const { createCard } = await t.ok(`mutation { createCard(input: { title: "On Postgres", column: TODO }) { id title column position } }`);
      expect(createCard).toMatchObject({ title: 'On Postgres', column: 'TODO', position: 0 });
      const { moveCard } = await t.ok(`mutation($id: ID!) { moveCard(id: $id, column: REVIEW) { column } }`, { id: createCard.id });
      expect(moveCard.column).toBe('REVIEW');
      const logged = await t.server.orchestrator.boardLog.read(0, 100);
      expect(logged.map((e) => [e.seq, e.type])).toEqual([
        [1, 'card_created'],
        [2, 'card_moved'],
      ]);
      await waitUntil(() => published.length === 2);
      expect(published.map((e) => e.seq)).toEqual([1, 2]);
    } finally {
      stop();
    }
  });

  test('concurrent card creations in one column get distinct, dense positions', async () => {
    const created = await Promise.all(Array.from({ length: 8 }, (_, i) => t.ok(`mutation($title: String!) { createCard(input: { title: $title, column: DONE }) { id } }`, { title: `c${i}` })));
    expect(created).toHaveLength(8);
    const cards = await t.server.orchestrator.db.client.card.findMany({ where: { column: 'DONE' }, select: { position: true } });
    expect(cards.map((c) => c.position).sort((x, y) => x - y)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
  });

  test('a runEvents subscription replays the stored events, then goes live until the run settles', async () => {
    const { eventLog } = t.server.orchestrator;
    const run = await makeActiveRun(t, 'replayed');
    await eventLog.append(run.id, [{ type: 'assistant_text', data: { text: 'one ' } }, { type: 'assistant_text', data: { text: 'two' } }]);
    const client = createClient({ url: t.url.replace(/^http/, 'ws'), webSocketImpl: WebSocket, retryAttempts: 0 });
    try {
      const events: TestRunEvent[] = [];
      const done = new Promise<void>((resolve, reject) => {
        client.subscribe(
          { query: `subscription($id: ID!) { runEvents(runId: $id, since: 0, untilSettled: true) { ...RunEventFields } } ${RUN_EVENT_FIELDS}`, variables: { id: run.globalId } },
          { next: (result) => (result.errors ? reject(new Error(JSON.stringify(result.errors))) : events.push(withData((result.data as any).runEvents))), error: reject, complete: resolve },
        );
      });
      await waitUntil(() => events.length === 2);
      const live: RunEvent[] = await eventLog.append(run.id, [{ type: 'status', data: { status: 'SUCCEEDED' } }], { status: 'SUCCEEDED', endedAt: new Date() });
      await done;
      expect(events.map((e) => [e.seq, e.typename])).toEqual([
        [1, 'AssistantTextEvent'],
        [2, 'AssistantTextEvent'],
        [3, 'StatusChangedEvent'],
      ]);
      expect(live.map((e) => e.seq)).toEqual([3]);
      const { run: stored } = await t.ok(`query($id: ID!) { run(id: $id) { status lastSeq endedAt } }`, { id: run.globalId });
      expect(stored).toMatchObject({ status: 'SUCCEEDED', lastSeq: 3, endedAt: expect.any(String) });
      // The status change is on the board log too, committed with the event.
      expect((await t.server.orchestrator.boardLog.read(0, 100)).filter((e) => e.runId === run.id).map((e) => e.type)).toEqual(['run_status_changed']);
    } finally {
      await client.dispose();
    }
  });
});

describe('an agent run on Postgres', () => {
  let bed: AgentTestBed;
  beforeAll(async () => {
    bed = await startAgentTestBed(writeAndCommit, {}, await freshDatabase());
  }, 30_000);
  afterAll(() => bed?.close());

  test('streams its events live, gapless, to the terminal status, and they match what is stored', async () => {
    const { t } = bed;
    const runId = await startRun(t, 'Agent on Postgres');
    const client = createClient({ url: t.url.replace(/^http/, 'ws'), webSocketImpl: WebSocket, retryAttempts: 0 });
    try {
      const streamed: TestRunEvent[] = [];
      await new Promise<void>((resolve, reject) => {
        client.subscribe(
          { query: `subscription($id: ID!) { runEvents(runId: $id, untilSettled: true) { ...RunEventFields } } ${RUN_EVENT_FIELDS}`, variables: { id: runId } },
          { next: (result) => (result.errors ? reject(new Error(JSON.stringify(result.errors))) : streamed.push(withData((result.data as any).runEvents))), error: reject, complete: resolve },
        );
      });
      expect(streamed.map((e) => e.seq)).toEqual(streamed.map((_, i) => i + 1));
      expect(streamed.filter((e) => e.typename === 'StatusChangedEvent').map((e) => e.data.status)).toEqual(['QUEUED', 'STARTING', 'RUNNING', 'SUCCEEDED']);
      expect(streamed.filter((e) => e.typename === 'ToolStartedEvent').map((e) => e.data.tool)).toEqual(['write', 'bash']);
      expect(streamed).toEqual(await runEvents(t, runId));
      const { run } = await t.ok(`query($id: ID!) { run(id: $id) { status commits { subject } } }`, { id: runId });
      expect(run).toMatchObject({ status: 'SUCCEEDED', commits: [{ subject: 'agent: add hello' }] });
    } finally {
      await client.dispose();
    }
  });
});

/** Polls `check` until true; fails after 10 s. */
async function waitUntil(check: () => boolean | Promise<boolean>): Promise<void> {
  for (const deadline = Date.now() + 10_000; !(await check()); ) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

