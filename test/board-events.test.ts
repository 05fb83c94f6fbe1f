/**
 * boardEvents through the real server and a real graphql-ws client: board changes in order, a drop
 * and resubscribe that loses and repeats nothing, and a change the real pi makes with its run token.
 * Also `cards` in board order.
 */
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { startAgentTestBed, startRun, waitFor, waitForStatus, type AgentTestBed } from './helpers/runs.js';
import { sdkFragment } from './helpers/events.js';

/** The SDK's BoardEventFields fragment, so the test selects what a client would. */
const BOARD_EVENT_FIELDS = sdkFragment('BoardEventFields');
const FOLLOW = `subscription($since: Int) { boardEvents(since: $since) { ...BoardEventFields } } ${BOARD_EVENT_FIELDS}`;

// The agent moves its own card to REVIEW through the API with its run token, then says Done.
const MOVE_OWN_CARD = `${process.execPath} -e '
const headers = { "content-type": "application/json", authorization: "Bearer " + process.env.RUNBOARD_RUN_TOKEN };
const ask = (query, variables) => fetch(process.env.RUNBOARD_URL, { method: "POST", headers, body: JSON.stringify({ query, variables }) }).then((r) => r.json());
ask("{ currentRun { card { id } } }").then((r) => ask("mutation($id: ID!) { moveCard(id: $id, column: REVIEW) { id } }", { id: r.data.currentRun.card.id })).then((r) => console.log(JSON.stringify(r)));
'`;

let bed: AgentTestBed;
let client: Client;
beforeAll(async () => {
  bed = await startAgentTestBed((request) => (request.toolResultCount === 0 ? { toolCalls: [{ name: 'bash', arguments: { command: MOVE_OWN_CARD } }] } : { text: 'Done.' }));
  client = createClient({ url: bed.t.url.replace(/^http/, 'ws'), webSocketImpl: WebSocket, retryAttempts: 0 });
}, 30_000);
afterAll(async () => {
  await client?.dispose();
  await bed?.close();
});

/** Follows boardEvents from `since`; `stop` leaves, as a dropped connection would. */
function follow(since: number) {
  const events: any[] = [];
  let failed: unknown;
  const stop = client.subscribe({ query: FOLLOW, variables: { since } }, { next: (result) => (result.errors ? (failed = result.errors) : events.push((result.data as any).boardEvents)), error: (error) => (failed = error), complete: () => undefined });
  return { events, stop, failed: () => failed };
}

const lastSeq = async () => (await bed.t.server.orchestrator.boardLog.lastSeq());

test('create, move, comment and delete arrive in order, typed, each once', async () => {
  const { t } = bed;
  const since = await lastSeq();
  const feed = follow(since);
  const { createCard } = await t.ok(`mutation { createCard(input: { title: "Live card", column: TODO }) { id } }`);
  await t.ok(`mutation($id: ID!) { moveCard(id: $id, column: IN_PROGRESS, position: 0) { id } }`, { id: createCard.id });
  await t.ok(`mutation($id: ID!) { addComment(cardId: $id, author: "me", body: "on it") { id } }`, { id: createCard.id });
  await t.ok(`mutation($id: ID!) { deleteCard(id: $id) }`, { id: createCard.id });
  await waitFor('four board events', async () => (feed.events.length >= 4 ? true : undefined));
  feed.stop();
  expect(feed.failed()).toBeUndefined();
  expect(feed.events.map((e) => e.__typename)).toEqual(['CardCreatedBoardEvent', 'CardMovedBoardEvent', 'CommentAddedBoardEvent', 'CardDeletedBoardEvent']);
  expect(feed.events.map((e) => e.seq)).toEqual([since + 1, since + 2, since + 3, since + 4]);
  for (const event of feed.events) expect(event).toMatchObject({ cardId: createCard.id, actorRunId: null });
  expect(feed.events[0]).toMatchObject({ title: 'Live card', column: 'TODO', position: expect.any(Number) });
  expect(feed.events[1]).toMatchObject({ fromColumn: 'TODO', column: 'IN_PROGRESS', position: 0 });
  expect(feed.events[2]).toMatchObject({ author: 'me', commentId: expect.any(String) });
  expect(feed.events[3]).toMatchObject({ column: 'IN_PROGRESS', position: 0 });
});

test('a drop and a resubscribe from the last seq lose and repeat nothing while changes keep coming', async () => {
  const { t } = bed;
  const since = await lastSeq();
  const { createCard } = await t.ok(`mutation { createCard(input: { title: "Busy card" }) { id } }`);
  const writing = (async () => {
    for (let i = 0; i < 60; i++) await t.ok(`mutation($id: ID!, $tags: [String!]!) { addCardTags(id: $id, tags: $tags) { id } }`, { id: createCard.id, tags: [`t${i % 15}`] });
  })();
  const seen: number[] = [];
  let from = since;
  // Three connections, each dropped after a few events, then one that stays until the writer is done.
  for (let drop = 0; drop < 3; drop++) {
    const feed = follow(from);
    await waitFor('a few events', async () => (feed.events.length >= 5 ? true : undefined));
    feed.stop();
    seen.push(...feed.events.map((e) => e.seq));
    from = seen.at(-1)!;
  }
  await writing;
  const end = await lastSeq();
  const feed = follow(from);
  await waitFor('the rest', async () => (feed.events.at(-1)?.seq === end ? true : undefined));
  feed.stop();
  seen.push(...feed.events.map((e) => e.seq));
  expect(seen).toEqual(Array.from({ length: end - since }, (_, i) => since + 1 + i));
});

test('a change an agent makes with its run token arrives, naming its run, with the run\'s status changes', async () => {
  const { t } = bed;
  const since = await lastSeq();
  const feed = follow(since);
  const runId = await startRun(t, 'Agent moves its card');
  const run = await waitForStatus(t, runId);
  expect(run.status).toBe('SUCCEEDED');
  await waitFor('the SUCCEEDED status on the board', async () => (feed.events.some((e) => e.__typename === 'RunStatusChangedBoardEvent' && e.status === 'SUCCEEDED') ? true : undefined));
  feed.stop();
  const moved = feed.events.find((e) => e.__typename === 'CardMovedBoardEvent');
  expect(moved).toMatchObject({ column: 'REVIEW', actorRunId: runId });
  const statuses = feed.events.filter((e) => e.__typename === 'RunStatusChangedBoardEvent').map((e) => e.status);
  expect(statuses).toEqual(['QUEUED', 'STARTING', 'RUNNING', 'SUCCEEDED']);
  for (const event of feed.events.filter((e) => e.__typename === 'RunStatusChangedBoardEvent')) expect(event.runId).toBe(runId);
  expect(feed.events.map((e) => e.seq)).toEqual(feed.events.map((_, i) => since + 1 + i));
});

test('boardSeq is the latest change: following from it skips the history and misses nothing after it', async () => {
  const { t } = bed;
  await t.ok(`mutation { createCard(input: { title: "Before the load" }) { id } }`);
  const { boardSeq } = await t.ok(`{ boardSeq }`);
  expect(boardSeq).toBe(await lastSeq());
  const { createCard } = await t.ok(`mutation { createCard(input: { title: "After boardSeq, before following" }) { id } }`);
  const feed = follow(boardSeq);
  await waitFor('the change made after boardSeq', async () => (feed.events.length >= 1 ? true : undefined));
  feed.stop();
  expect(feed.events).toEqual([expect.objectContaining({ __typename: 'CardCreatedBoardEvent', seq: boardSeq + 1, cardId: createCard.id })]);
  expect((await t.ok(`{ boardSeq }`)).boardSeq).toBe(boardSeq + 1);
});

test('since past the last seq is BAD_USER_INPUT', async () => {
  const feed = follow((await lastSeq()) + 5);
  await waitFor('the error', async () => feed.failed());
  expect(feed.failed()).toEqual([expect.objectContaining({ extensions: expect.objectContaining({ code: 'BAD_USER_INPUT', field: 'since' }) })]);
});

test('cards come in board order: BACKLOG, TODO, IN_PROGRESS, REVIEW, DONE, then position', async () => {
  const { t } = bed;
  for (const [title, column] of [['d', 'DONE'], ['r', 'REVIEW'], ['i', 'IN_PROGRESS'], ['t', 'TODO'], ['b', 'BACKLOG'], ['t2', 'TODO']]) {
    await t.ok(`mutation($title: String!, $column: CardColumn) { createCard(input: { title: $title, column: $column }) { id } }`, { title, column });
  }
  const { cards } = await t.ok(`{ cards(first: 100) { edges { node { column position } } } }`);
  const order = ['BACKLOG', 'TODO', 'IN_PROGRESS', 'REVIEW', 'DONE'];
  const listed = cards.edges.map((e: any) => [order.indexOf(e.node.column), e.node.position]);
  const sorted = [...listed].sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  expect(listed).toEqual(sorted);
  expect(new Set(listed.map((l: number[]) => l[0]))).toEqual(new Set([0, 1, 2, 3, 4]));
});
