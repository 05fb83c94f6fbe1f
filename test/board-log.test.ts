/** The board log: each board change through the real server leaves exactly its event, with increasing seqs, published after commit; a rolled-back change leaves none. */
import { encodeGlobalID } from '@pothos/plugin-relay';
import type { BoardEventRecord } from '../src/orchestrator/board-log.js';
import { sqliteOf, startTestServer, type TestServer } from './helpers/server.js';

let t: TestServer;
let published: BoardEventRecord[];
beforeAll(async () => {
  t = await startTestServer();
  published = [];
  t.server.orchestrator.bus.subscribe('board-events', '*', (record) => published.push(record));
});
afterAll(() => t?.close());

const rawId = (globalId: string) => Buffer.from(globalId, 'base64').toString().split(':')[1];

/** Runs `action`, then returns the board events it added (read back from the log) after `since`. */
async function eventsOf(action: () => Promise<unknown>) {
  const since = await t.server.orchestrator.boardLog.lastSeq();
  await action();
  return t.server.orchestrator.boardLog.read(since, 100);
}

test('each board mutation leaves exactly its board event, in seq order, and it is published once', async () => {
  const start = await t.server.orchestrator.boardLog.lastSeq();
  let card = '';
  const created = await eventsOf(async () => (card = (await t.ok(`mutation { createCard(input: { title: "Logged", column: TODO }) { id } }`)).createCard.id));
  const id = rawId(card);
  expect(created).toEqual([expect.objectContaining({ type: 'card_created', cardId: id, runId: null, actorRunId: null, data: { title: 'Logged', column: 'TODO', position: 0 } })]);

  const updated = await eventsOf(() => t.ok(`mutation($id: ID!) { updateCard(id: $id, input: { title: "Logged 2", description: "d" }) { id } }`, { id: card }));
  expect(updated.map((e) => [e.type, e.data])).toEqual([['card_updated', { fields: ['title', 'description'], title: 'Logged 2' }]]);

  const moved = await eventsOf(() => t.ok(`mutation($id: ID!) { moveCard(id: $id, column: REVIEW) { id } }`, { id: card }));
  expect(moved.map((e) => [e.type, e.data])).toEqual([['card_moved', { fromColumn: 'TODO', fromPosition: 0, column: 'REVIEW', position: 0 }]]);

  const tagged = await eventsOf(() => t.ok(`mutation($id: ID!) { addCardTags(id: $id, tags: ["b", "a"]) { id } }`, { id: card }));
  expect(tagged.map((e) => [e.type, e.data])).toEqual([['card_tags_changed', { tags: ['a', 'b'] }]]);
  const untagged = await eventsOf(() => t.ok(`mutation($id: ID!) { removeCardTags(id: $id, tags: ["a"]) { id } }`, { id: card }));
  expect(untagged.map((e) => [e.type, e.data])).toEqual([['card_tags_changed', { tags: ['b'] }]]);

  let referenceId = '';
  const referenced = await eventsOf(async () => (referenceId = (await t.ok(`mutation($id: ID!) { addCardReference(cardId: $id, input: { kind: FILE, target: "src/a.rs" }) { id } }`, { id: card })).addCardReference.id));
  expect(referenced.map((e) => [e.type, e.data])).toEqual([['reference_added', { referenceId: rawId(referenceId), kind: 'FILE', target: 'src/a.rs' }]]);
  const unreferenced = await eventsOf(() => t.ok(`mutation($id: ID!) { removeCardReference(id: $id) { id } }`, { id: referenceId }));
  expect(unreferenced.map((e) => [e.type, e.data])).toEqual([['reference_removed', { referenceId: rawId(referenceId) }]]);

  let commentId = '';
  const commented = await eventsOf(async () => (commentId = (await t.ok(`mutation($id: ID!) { addComment(cardId: $id, author: "me", body: "hi") { id } }`, { id: card })).addComment.id));
  expect(commented.map((e) => [e.type, e.data])).toEqual([['comment_added', { commentId: rawId(commentId), author: 'me' }]]);
  const uncommented = await eventsOf(() => t.ok(`mutation($id: ID!) { deleteComment(id: $id) { id } }`, { id: commentId }));
  expect(uncommented.map((e) => [e.type, e.data])).toEqual([['comment_deleted', { commentId: rawId(commentId) }]]);

  const deleted = await eventsOf(() => t.ok(`mutation($id: ID!) { deleteCard(id: $id) }`, { id: card }));
  expect(deleted.map((e) => [e.type, e.cardId, e.data])).toEqual([['card_deleted', id, { column: 'REVIEW', position: 0 }]]);

  const all = await t.server.orchestrator.boardLog.read(start, 100);
  expect(all.map((e) => e.type)).toEqual([
    'card_created', 'card_updated', 'card_moved', 'card_tags_changed', 'card_tags_changed', 'reference_added', 'reference_removed', 'comment_added', 'comment_deleted', 'card_deleted',
  ]);
  expect(all.map((e) => e.seq)).toEqual(all.map((_, i) => start + 1 + i));
  expect(all.every((e) => e.createdAt instanceof Date && !Number.isNaN(e.createdAt.getTime()))).toBe(true);
  expect(published.filter((e) => e.seq > start).map((e) => e.seq)).toEqual(all.map((e) => e.seq));
  expect(await t.server.orchestrator.boardLog.lastSeq()).toBe(all.at(-1)!.seq);
});

test('a refused or rolled-back change leaves no board event', async () => {
  const since = await t.server.orchestrator.boardLog.lastSeq();
  const refused = await t.gql(`mutation { createCard(input: { title: "" }) { id } }`);
  expect(refused.errors?.[0].extensions?.code).toBe('BAD_USER_INPUT');
  const missing = await t.gql(`mutation($id: ID!) { moveCard(id: $id, column: DONE) { id } }`, { id: encodeGlobalID('Card', 'nope') });
  expect(missing.errors?.[0].extensions?.code).toBe('NOT_FOUND');
  // A change that fails inside its transaction, after its board event was written: the tag limit.
  const { createCard } = await t.ok(`mutation { createCard(input: { title: "Tags", tags: ["t0"] }) { id } }`);
  const afterCreate = await t.server.orchestrator.boardLog.lastSeq();
  const tooMany = await t.gql(`mutation($id: ID!, $tags: [String!]!) { addCardTags(id: $id, tags: $tags) { id } }`, { id: createCard.id, tags: Array.from({ length: 20 }, (_, i) => `n${i}`) });
  expect(tooMany.errors?.[0].extensions?.code).toBe('BAD_USER_INPUT');
  expect((await t.server.orchestrator.boardLog.read(since, 100)).map((e) => e.type)).toEqual(['card_created']);
  expect(await t.server.orchestrator.boardLog.lastSeq()).toBe(afterCreate);

  // The board log's own write fails, for real, after the move was made in the same transaction.
  const sqlite = sqliteOf(t.server);
  sqlite.exec(`CREATE TRIGGER refuse_card_moved BEFORE INSERT ON "BoardEvent" WHEN NEW."type" = 'card_moved' BEGIN SELECT RAISE(ABORT, 'board log refused'); END`);
  try {
    const failed = await t.gql(`mutation($id: ID!) { moveCard(id: $id, column: DONE) { id } }`, { id: createCard.id });
    expect(failed.errors?.[0].extensions?.code).toBe('INTERNAL_SERVER_ERROR');
  } finally {
    sqlite.exec('DROP TRIGGER refuse_card_moved');
  }
  const { card } = await t.ok(`query($id: ID!) { card(id: $id) { column position } }`, { id: createCard.id });
  expect(card).toEqual({ column: 'BACKLOG', position: expect.any(Number) });
  expect(await t.server.orchestrator.boardLog.lastSeq()).toBe(afterCreate);
  expect(published.filter((e) => e.seq > afterCreate)).toEqual([]);
});

test('a run\'s status change and its merge are board events written with them', async () => {
  const { createCard } = await t.ok(`mutation { createCard(input: { title: "Run log" }) { id } }`);
  const cardId = rawId(createCard.id);
  const run = await t.server.orchestrator.db.client.run.create({ data: { cardId, prompt: 'p', status: 'RUNNING' } });
  const since = await t.server.orchestrator.boardLog.lastSeq();
  await t.server.orchestrator.eventLog.append(run.id, [{ type: 'status', data: { status: 'SUCCEEDED' } }], { status: 'SUCCEEDED' });
  await t.server.orchestrator.eventLog.append(run.id, [{ type: 'merge', data: { ok: false, sha: null, strategy: 'MERGE', conflictingPaths: ['a'], message: 'conflict' } }]);
  await t.server.orchestrator.eventLog.append(run.id, [{ type: 'merge', data: { ok: true, sha: 'abc123', strategy: 'SQUASH', conflictingPaths: [], message: 'merged' } }]);
  const events = await t.server.orchestrator.boardLog.read(since, 100);
  expect(events.map((e) => [e.type, e.cardId, e.runId, e.data])).toEqual([
    ['run_status_changed', cardId, run.id, { runId: run.id, status: 'SUCCEEDED' }],
    ['run_merged', cardId, run.id, { runId: run.id, sha: 'abc123', strategy: 'SQUASH' }],
  ]);
  expect(published.filter((e) => e.seq > since).map((e) => e.type)).toEqual(['run_status_changed', 'run_merged']);
});
