/** plugin-prisma's query passing: a nested board query costs the same number of SQL statements for 2 cards or 12. */
import type { Prisma } from '../src/orchestrator/db.js';
import { startTestServer, type TestServer } from './helpers/server.js';

const BOARD = `{
  cards(first: 50) {
    edges { node {
      title tags agentPrompt
      references { kind target }
      comments(first: 10) { totalCount edges { node { author body } } }
      runs(first: 5) { edges { node { status branch card { title } } } }
    } }
  }
}`;

let t: TestServer;
let statements = 0;
beforeAll(async () => {
  t = await startTestServer({ logQueries: true });
  const client = t.server.orchestrator.db.client as unknown as { $on(event: 'query', cb: (e: Prisma.QueryEvent) => void): void };
  client.$on('query', () => statements++);
});
afterAll(() => t?.close());

async function addCards(count: number) {
  const db = t.server.orchestrator.db.client;
  for (let i = 0; i < count; i++) {
    const { createCard: card } = await t.ok(`mutation($t: String!) { createCard(input: { title: $t, tags: ["a", "b"] }) { id } }`, { t: `card ${i}` });
    await t.ok(`mutation($id: ID!) { addComment(cardId: $id, author: "x", body: "y") { id } addCardReference(cardId: $id, input: { kind: NOTE, target: "n" }) { id } }`, { id: card.id });
    const cardId = Buffer.from(card.id, 'base64').toString().split(':')[1];
    await db.run.create({ data: { cardId, prompt: 'p', status: 'SUCCEEDED' } });
  }
}

async function countBoardQuery(): Promise<number> {
  statements = 0;
  const data = await t.ok(BOARD);
  expect(data.cards.edges.length).toBeGreaterThan(0);
  return statements;
}

test('a nested board query costs a fixed number of SQL statements', async () => {
  await addCards(2);
  const small = await countBoardQuery();
  await addCards(10);
  const large = await countBoardQuery();
  expect(large).toBe(small);
  expect(small).toBeLessThanOrEqual(12);
});
