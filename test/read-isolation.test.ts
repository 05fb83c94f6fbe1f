/** Reads see only committed state: never another request's open transaction, and never a half-done renumbering. */
import { startTestServer, type TestServer } from './helpers/server.js';

let t: TestServer;
beforeAll(async () => {
  t = await startTestServer();
});
afterAll(() => t?.close());

const titles = async (column: string): Promise<string[]> => {
  const { cards } = await t.ok(`query($c: CardColumn) { cards(column: $c, first: 100) { edges { node { title } } } }`, { c: column });
  return cards.edges.map((e: any) => e.node.title);
};

test('a read made while a transaction is open never sees its rows, before or after the rollback', async () => {
  let opened!: () => void;
  let release!: () => void;
  const open = new Promise<void>((resolve) => (opened = resolve));
  const gate = new Promise<void>((resolve) => (release = resolve));
  const transaction = t.server.orchestrator.db.write(async (tx) => {
    await tx.card.create({ data: { title: 'uncommitted', column: 'DONE', position: 0 } });
    opened();
    await gate;
    throw new Error('rolled back on purpose');
  });
  await open;
  expect(await titles('DONE')).toEqual([]);
  release();
  await expect(transaction).rejects.toThrow('rolled back on purpose');
  expect(await titles('DONE')).toEqual([]);
});

test('20 clients moving cards while another reads: every read shows dense, unique positions', async () => {
  const ids: string[] = [];
  for (let i = 0; i < 12; i++) ids.push((await t.ok(`mutation($t: String!) { createCard(input: { title: $t, column: TODO }) { id } }`, { t: `card ${i}` })).createCard.id);
  const move = `mutation($id: ID!, $c: CardColumn!, $p: Int) { moveCard(id: $id, column: $c, position: $p) { id } }`;
  // The movers keep going until the reader has read enough times (a busy server answers it slowly), within a bound.
  const enoughReads = 6;
  const deadline = Date.now() + 30_000;
  let reads = 0;
  let moves = 0;
  const busy = () => reads < enoughReads && Date.now() < deadline;
  const movers = Array.from({ length: 20 }, async (_, client) => {
    for (let i = 0; busy(); i++) {
      const id = ids[(client * 7 + i) % ids.length];
      await t.ok(move, { id, c: (client + i) % 2 ? 'TODO' : 'IN_PROGRESS', p: (client + i) % 5 });
      moves += 1;
    }
  });
  const reader = (async () => {
    while (busy()) {
      const { cards } = await t.ok(`{ cards(first: 100) { edges { node { id column position } } } }`);
      const nodes: { id: string; column: string; position: number }[] = cards.edges.map((e: any) => e.node);
      expect(nodes).toHaveLength(ids.length);
      for (const column of ['TODO', 'IN_PROGRESS']) {
        const positions = nodes.filter((n) => n.column === column).map((n) => n.position).sort((a, b) => a - b);
        expect(positions).toEqual(positions.map((_, i) => i));
      }
      reads += 1;
    }
  })();
  await Promise.all([...movers, reader]);
  expect(reads).toBe(enoughReads);
  expect(moves).toBeGreaterThan(enoughReads * 20);
}, 60_000);
