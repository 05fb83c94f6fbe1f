/** Board CRUD, ordering, validation and errors over real HTTP against the real server. */
import { startTestServer, type TestServer } from './helpers/server.js';

const CARD_FIELDS = 'id title description column position tags createdAt updatedAt';

let t: TestServer;
beforeAll(async () => {
  t = await startTestServer();
});
afterAll(() => t?.close());

async function createCard(input: Record<string, unknown>) {
  const data = await t.ok(`mutation($input: CreateCardInput!) { createCard(input: $input) { ${CARD_FIELDS} } }`, { input });
  return data.createCard;
}

async function column(name: string): Promise<{ title: string; position: number }[]> {
  const data = await t.ok(`query($c: CardColumn) { cards(column: $c, first: 100) { edges { node { title position } } } }`, { c: name });
  return data.cards.edges.map((e: any) => e.node);
}

function codes(result: { errors?: { extensions?: Record<string, unknown> }[] }) {
  return result.errors?.map((e) => e.extensions?.code);
}

describe('cards', () => {
  test('create appends to the column, or inserts at a position, keeping positions dense', async () => {
    const a = await createCard({ title: 'A', column: 'TODO' });
    const b = await createCard({ title: 'B', column: 'TODO' });
    const c = await createCard({ title: 'C', column: 'TODO', position: 0 });
    expect([a.position, b.position, c.position]).toEqual([0, 1, 0]);
    expect(await column('TODO')).toEqual([
      { title: 'C', position: 0 },
      { title: 'A', position: 1 },
      { title: 'B', position: 2 },
    ]);
    const d = await createCard({ title: 'D', column: 'TODO', position: 99 });
    expect(d.position).toBe(3);
  });

  test('move within a column and across columns renumbers both', async () => {
    const ids = {} as Record<string, string>;
    for (const title of ['m1', 'm2', 'm3']) ids[title] = (await createCard({ title, column: 'REVIEW' })).id;
    const move = `mutation($id: ID!, $c: CardColumn!, $p: Int) { moveCard(id: $id, column: $c, position: $p) { column position } }`;

    expect((await t.ok(move, { id: ids.m3, c: 'REVIEW', p: 0 })).moveCard).toEqual({ column: 'REVIEW', position: 0 });
    expect((await column('REVIEW')).map((c) => c.title)).toEqual(['m3', 'm1', 'm2']);

    expect((await t.ok(move, { id: ids.m1, c: 'DONE' })).moveCard).toEqual({ column: 'DONE', position: 0 });
    expect(await column('REVIEW')).toEqual([
      { title: 'm3', position: 0 },
      { title: 'm2', position: 1 },
    ]);
    await t.ok(move, { id: ids.m2, c: 'DONE', p: 0 });
    expect(await column('DONE')).toEqual([
      { title: 'm2', position: 0 },
      { title: 'm1', position: 1 },
    ]);
    expect(await column('REVIEW')).toEqual([{ title: 'm3', position: 0 }]);
  });

  test('update, tags, comments and references', async () => {
    const card = await createCard({ title: '  Fix the jump  ', tags: ['physics', 'physics', 'bug'] });
    expect(card).toMatchObject({ title: 'Fix the jump', column: 'BACKLOG', description: '', tags: ['bug', 'physics'] });

    const updated = await t.ok(`mutation($id: ID!) { updateCard(id: $id, input: { description: "Player clips through floors" }) { title description } }`, { id: card.id });
    expect(updated.updateCard).toEqual({ title: 'Fix the jump', description: 'Player clips through floors' });

    await t.ok(`mutation($id: ID!) { addCardTags(id: $id, tags: ["p1", "bug"]) { tags } }`, { id: card.id });
    const tagged = await t.ok(`mutation($id: ID!) { removeCardTags(id: $id, tags: ["physics"]) { tags } }`, { id: card.id });
    expect(tagged.removeCardTags.tags).toEqual(['bug', 'p1']);

    await t.ok(`mutation($id: ID!) { addComment(cardId: $id, author: "ana", body: "Repro: jump at the ledge") { id } }`, { id: card.id });
    const other = await createCard({ title: 'Ledge geometry' });
    const refs = [
      { kind: 'FILE', target: 'src/player.rs', note: 'jump code' },
      { kind: 'URL', target: 'https://example.com/issue/1' },
      { kind: 'CARD', target: other.id },
      { kind: 'NOTE', target: 'happens only at 144 Hz' },
    ];
    for (const input of refs) {
      await t.ok(`mutation($id: ID!, $input: ReferenceInput!) { addCardReference(cardId: $id, input: $input) { id } }`, { id: card.id, input });
    }

    const read = await t.ok(
      `query($id: ID!) { card(id: $id) { references { kind target note } comments { totalCount edges { node { author body } } } agentPrompt } }`,
      { id: card.id },
    );
    expect(read.card.references).toEqual([
      { kind: 'FILE', target: 'src/player.rs', note: 'jump code' },
      { kind: 'URL', target: 'https://example.com/issue/1', note: '' },
      { kind: 'CARD', target: other.id, note: '' },
      { kind: 'NOTE', target: 'happens only at 144 Hz', note: '' },
    ]);
    expect(read.card.comments.totalCount).toBe(1);
    expect(read.card.comments.edges[0].node).toEqual({ author: 'ana', body: 'Repro: jump at the ledge' });
    const prompt: string = read.card.agentPrompt;
    for (const text of ['# Fix the jump', 'Player clips through floors', 'Tags: bug, p1', 'src/player.rs (jump code)', 'https://example.com/issue/1', 'ana', 'Repro: jump at the ledge']) {
      expect(prompt).toContain(text);
    }
  });

  test('delete closes the gap and removes comments with the card', async () => {
    await createCard({ title: 'x', column: 'IN_PROGRESS' });
    const y = await createCard({ title: 'y', column: 'IN_PROGRESS' });
    await createCard({ title: 'z', column: 'IN_PROGRESS' });
    const comment = await t.ok(`mutation($id: ID!) { addComment(cardId: $id, author: "bo", body: "hi") { id } }`, { id: y.id });
    expect((await t.ok(`mutation($id: ID!) { deleteCard(id: $id) }`, { id: y.id })).deleteCard).toBe(y.id);
    expect(await column('IN_PROGRESS')).toEqual([
      { title: 'x', position: 0 },
      { title: 'z', position: 1 },
    ]);
    const gone = await t.gql(`query($id: ID!) { node(id: $id) { id } }`, { id: comment.addComment.id });
    expect(gone.data?.node).toBeNull();
    expect(codes(await t.gql(`query($id: ID!) { card(id: $id) { id } }`, { id: y.id }))).toEqual(['NOT_FOUND']);
  });

  test('delete is refused with CONFLICT while the card has an active run', async () => {
    const card = await createCard({ title: 'busy' });
    const cardId = Buffer.from(card.id, 'base64').toString().split(':')[1];
    const run = await t.server.orchestrator.db.client.run.create({ data: { cardId, prompt: 'p', status: 'RUNNING' } });
    const refused = await t.gql(`mutation($id: ID!) { deleteCard(id: $id) }`, { id: card.id });
    expect(codes(refused)).toEqual(['CONFLICT']);
    await t.server.orchestrator.db.client.run.update({ where: { id: run.id }, data: { status: 'SUCCEEDED' } });
    expect((await t.gql(`mutation($id: ID!) { deleteCard(id: $id) }`, { id: card.id })).errors).toBeUndefined();
  });
});

describe('global ids', () => {
  test('a card id round-trips through node() and card()', async () => {
    const card = await createCard({ title: 'round trip' });
    expect(Buffer.from(card.id, 'base64').toString()).toMatch(/^Card:c[a-z0-9]+$/);
    const byNode = await t.ok(`query($id: ID!) { node(id: $id) { __typename id ... on Card { title } } }`, { id: card.id });
    expect(byNode.node).toEqual({ __typename: 'Card', id: card.id, title: 'round trip' });
    const byCard = await t.ok(`query($id: ID!) { card(id: $id) { id title } }`, { id: card.id });
    expect(byCard.card).toEqual({ id: card.id, title: 'round trip' });
  });

  test('paging with first/after walks every card once', async () => {
    for (let i = 0; i < 5; i++) await createCard({ title: `page ${i}`, column: 'DONE', position: 0 });
    const seen: string[] = [];
    let after: string | null = null;
    for (;;) {
      const data: any = await t.ok(`query($after: String) { cards(column: DONE, first: 2, after: $after) { pageInfo { hasNextPage endCursor } edges { node { title } } } }`, { after });
      seen.push(...data.cards.edges.map((e: any) => e.node.title));
      if (!data.cards.pageInfo.hasNextPage) break;
      after = data.cards.pageInfo.endCursor;
    }
    expect(seen).toEqual((await column('DONE')).map((c) => c.title));
    expect(new Set(seen).size).toBe(seen.length);
  });
});

describe('errors', () => {
  test('invalid input is BAD_USER_INPUT with the field', async () => {
    const cases: Record<string, unknown>[] = [{ title: '   ' }, { title: 'x'.repeat(201) }, { title: 'ok', tags: ['t'.repeat(41)] }, { title: 'ok', position: -1 }];
    for (const input of cases) {
      const result = await t.gql(`mutation($input: CreateCardInput!) { createCard(input: $input) { id } }`, { input });
      expect(codes(result)).toEqual(['BAD_USER_INPUT']);
    }
    const card = await createCard({ title: 'refs' });
    for (const input of [
      { kind: 'URL', target: 'javascript:alert(1)' },
      { kind: 'FILE', target: '../../etc/passwd' },
      { kind: 'FILE', target: '/etc/passwd' },
      { kind: 'CARD', target: 'not-an-id' },
    ]) {
      const result = await t.gql(`mutation($id: ID!, $input: ReferenceInput!) { addCardReference(cardId: $id, input: $input) { id } }`, { id: card.id, input });
      expect(codes(result)).toEqual(['BAD_USER_INPUT']);
      expect(result.errors![0].extensions!.field).toBe('target');
    }
  });

  test('an enum value or id of the wrong type is refused before anything runs', async () => {
    const badEnum = await t.gql(`mutation { createCard(input: { title: "x", column: SIDEWAYS }) { id } }`);
    expect(badEnum.errors?.[0].extensions?.code).toBe('GRAPHQL_VALIDATION_FAILED');
    const badVariable = await t.gql(`mutation($c: CardColumn!) { createCard(input: { title: "x", column: $c }) { id } }`, { c: 'SIDEWAYS' });
    expect(badVariable.errors?.[0].message).toMatch(/SIDEWAYS/);
    expect(codes(badVariable)).toEqual(['BAD_USER_INPUT']);
    expect(badVariable.data ?? null).toBeNull();

    const card = await createCard({ title: 'typed ids' });
    const comment = await t.ok(`mutation($id: ID!) { addComment(cardId: $id, author: "a", body: "b") { id } }`, { id: card.id });
    for (const id of [comment.addComment.id, 'garbage', '']) {
      const result = await t.gql(`query($id: ID!) { card(id: $id) { id } }`, { id });
      expect(codes(result)).toEqual(['BAD_USER_INPUT']);
    }
  });

  test('unknown ids are NOT_FOUND', async () => {
    const card = await createCard({ title: 'doomed' });
    await t.ok(`mutation($id: ID!) { deleteCard(id: $id) }`, { id: card.id });
    for (const query of [
      `query($id: ID!) { card(id: $id) { id } }`,
      `mutation($id: ID!) { updateCard(id: $id, input: { title: "x" }) { id } }`,
      `mutation($id: ID!) { moveCard(id: $id, column: DONE) { id } }`,
      `mutation($id: ID!) { deleteCard(id: $id) }`,
      `mutation($id: ID!) { addComment(cardId: $id, author: "a", body: "b") { id } }`,
    ]) {
      const result = await t.gql(query, { id: card.id });
      expect(codes(result)).toEqual(['NOT_FOUND']);
      expect(result.errors![0].message).toMatch(/Card .* not found/);
      expect(JSON.stringify(result)).not.toMatch(/at .*\.(ts|js):\d+/);
    }
  });
});
