/**
 * What a run's agent may do with its own token, checked while a real pi run is active: the prompt's
 * documented operations work, its changes and their audit events are one transaction, and it cannot
 * read other runs' prompts, events or diffs.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { encodeGlobalID } from '@pothos/plugin-relay';
import { buildSchema, parse, validate } from 'graphql';
import { AGENT_OPERATIONS } from '../src/orchestrator/prompt.js';
import { projectRoot, sqliteOf } from './helpers/server.js';
import { runEvents, startAgentTestBed, waitFor, waitForStatus, type AgentTestBed } from './helpers/runs.js';

let bed: AgentTestBed;
let releaseAgent!: () => void;
let agentRun: { id: string; card: string; token: string };
let otherRun: { id: string; dbId: string };

/** A POST with the agent's token. */
async function asAgent(query: string, variables?: Record<string, unknown>) {
  const response = await fetch(bed.t.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${agentRun.token}` },
    body: JSON.stringify({ query, variables }),
  });
  return (await response.json()) as { data?: any; errors?: { message: string; extensions?: Record<string, unknown> }[] };
}

const rawId = (globalId: string) => Buffer.from(globalId, 'base64').toString().split(':')[1];

beforeAll(async () => {
  const released = new Promise<void>((resolve) => (releaseAgent = resolve));
  // The agent writes its token where the test can read it, then waits (its run stays RUNNING) until released.
  bed = await startAgentTestBed(async (request) => {
    if (request.toolResultCount === 0) return { toolCalls: [{ name: 'bash', arguments: { command: 'echo "$RUNBOARD_RUN_TOKEN" > token.txt' } }] };
    await released;
    return { text: 'Done.' };
  });
  const { t } = bed;
  const { createCard: other } = await t.ok(`mutation { createCard(input: { title: "Someone else's card" }) { id } }`);
  const run = await t.server.orchestrator.db.client.run.create({ data: { cardId: rawId(other.id), prompt: 'the other run\'s secret prompt', status: 'SUCCEEDED' } });
  await t.server.orchestrator.workspaces.create(run.id);
  await t.server.orchestrator.eventLog.append(run.id, [{ type: 'assistant_text', data: { text: 'the other run\'s secret output' } }]);
  otherRun = { id: encodeGlobalID('Run', run.id), dbId: run.id };

  const { createCard: card } = await t.ok(`mutation { createCard(input: { title: "Agent's card", column: IN_PROGRESS }) { id } }`);
  const { startRun } = await t.ok(`mutation($c: ID!) { startRun(input: { cardId: $c }) { id } }`, { c: card.id });
  const running = await waitForStatus(t, startRun.id, ['RUNNING']);
  const tokenFile = path.join(running.worktreePath, 'token.txt');
  await waitFor('the agent to write its token', async () => (existsSync(tokenFile) && (await readFile(tokenFile, 'utf8')).trim() ? true : undefined));
  agentRun = { id: startRun.id, card: card.id, token: (await readFile(tokenFile, 'utf8')).trim() };
}, 60_000);

afterAll(async () => {
  releaseAgent?.();
  await bed?.close();
});

test('every operation the prompt teaches is valid against the schema, and works with the agent\'s token', async () => {
  const schema = buildSchema(await readFile(path.join(projectRoot, 'schema.graphql'), 'utf8'));
  for (const [name, document] of Object.entries(AGENT_OPERATIONS)) expect([name, validate(schema, parse(document)).map((e) => e.message)]).toEqual([name, []]);

  const { data: current } = await asAgent(AGENT_OPERATIONS.currentRun);
  expect(current.currentRun).toMatchObject({ id: agentRun.id, card: { id: agentRun.card } });
  const cardId = current.currentRun.card.id;
  expect((await asAgent(AGENT_OPERATIONS.addComment, { cardId, body: 'working on it' })).data.addComment.id).toEqual(expect.any(String));
  expect((await asAgent(AGENT_OPERATIONS.updateDescription, { id: cardId, description: 'what I found' })).errors).toBeUndefined();
  expect((await asAgent(AGENT_OPERATIONS.addTags, { id: cardId, tags: ['wip', 'agent'] })).errors).toBeUndefined();
  expect((await asAgent(AGENT_OPERATIONS.removeTags, { id: cardId, tags: ['wip'] })).errors).toBeUndefined();
  expect((await asAgent(AGENT_OPERATIONS.moveToReview, { id: cardId })).data).toEqual({ moveCard: { column: 'REVIEW' } });

  const { card } = await bed.t.ok(`query($id: ID!) { card(id: $id) { description column tags comments { edges { node { author body } } } } }`, { id: cardId });
  expect(card).toEqual({ description: 'what I found', column: 'REVIEW', tags: ['agent'], comments: { edges: [{ node: { author: expect.stringMatching(/^agent \(run /), body: 'working on it' } }] } });
  const audit = (await runEvents(bed.t, agentRun.id)).filter((e) => e.type === 'board_change').map((e) => e.data.action);
  expect(audit).toEqual(['ADD_COMMENT', 'UPDATE_CARD', 'ADD_CARD_TAGS', 'REMOVE_CARD_TAGS', 'MOVE_CARD']);
  // The prompt the agent received spells the same documents.
  const { run } = await bed.t.ok(`query($id: ID!) { run(id: $id) { prompt } }`, { id: agentRun.id });
  for (const document of Object.values(AGENT_OPERATIONS)) expect(run.prompt).toContain(document);
});

test('the policy lives in the board: no title edits, no other card, and every agent change is attributed to its run', async () => {
  const title = await asAgent(`mutation($id: ID!) { updateCard(id: $id, input: { title: "mine now" }) { id } }`, { id: agentRun.card });
  expect(title.errors?.[0].extensions?.code).toBe('FORBIDDEN');
  const { cards } = await bed.t.ok(`{ cards { edges { node { id title } } } }`);
  const other = cards.edges.map((e: any) => e.node).find((c: any) => c.title === "Someone else's card");
  const move = await asAgent(`mutation($id: ID!) { moveCard(id: $id, column: DONE) { id } }`, { id: other.id });
  expect(move.errors?.[0].extensions?.code).toBe('FORBIDDEN');
  const since = await bed.t.server.orchestrator.boardLog.lastSeq();
  await asAgent(AGENT_OPERATIONS.addComment, { cardId: agentRun.card, body: 'attributed' });
  const [event] = await bed.t.server.orchestrator.boardLog.read(since, 10);
  expect(event).toMatchObject({ type: 'comment_added', cardId: rawId(agentRun.card), actorRunId: rawId(agentRun.id) });
});

test('an agent change whose audit event cannot be written leaves no change behind', async () => {
  const { boardLog } = bed.t.server.orchestrator;
  const sqlite = sqliteOf(bed.t.server);
  const before = await bed.t.ok(`query($id: ID!) { card(id: $id) { column position description } }`, { id: agentRun.card });
  const auditBefore = (await runEvents(bed.t, agentRun.id)).filter((e) => e.type === 'board_change').length;
  const seqBefore = await boardLog.lastSeq();
  sqlite.exec(`CREATE TRIGGER refuse_board_change BEFORE INSERT ON "RunEvent" WHEN NEW."type" = 'board_change' BEGIN SELECT RAISE(ABORT, 'audit refused'); END`);
  try {
    const moved = await asAgent(`mutation($id: ID!) { moveCard(id: $id, column: DONE) { column } }`, { id: agentRun.card });
    expect(moved.errors?.[0].extensions?.code).toBe('INTERNAL_SERVER_ERROR');
    const described = await asAgent(AGENT_OPERATIONS.updateDescription, { id: agentRun.card, description: 'never saved' });
    expect(described.errors?.[0].extensions?.code).toBe('INTERNAL_SERVER_ERROR');
  } finally {
    sqlite.exec('DROP TRIGGER refuse_board_change');
  }
  expect(await bed.t.ok(`query($id: ID!) { card(id: $id) { column position description } }`, { id: agentRun.card })).toEqual(before);
  expect((await runEvents(bed.t, agentRun.id)).filter((e) => e.type === 'board_change')).toHaveLength(auditBefore);
  expect(await boardLog.lastSeq()).toBe(seqBefore);
});

test('an agent reads its own run in full, but not another run\'s prompt, events or diff', async () => {
  const own = await asAgent(`query($id: ID!) { run(id: $id) { id prompt events { type } diff { patch } } }`, { id: agentRun.id });
  expect(own.errors).toBeUndefined();
  expect(own.data.run.prompt).toContain("Agent's card");
  const current = await asAgent(`{ currentRun { prompt events { type } } }`);
  expect(current.errors).toBeUndefined();
  expect(current.data.currentRun.events.length).toBeGreaterThan(0);

  for (const field of ['prompt', 'events { seq }', 'diff { patch }', 'commits { sha }', 'uncommitted { patch }', 'error']) {
    const other = await asAgent(`query($id: ID!) { run(id: $id) { id ${field} } }`, { id: otherRun.id });
    expect([field, other.errors?.map((e) => e.extensions?.code)]).toEqual([field, ['FORBIDDEN']]);
    expect(JSON.stringify(other)).not.toContain('secret');
  }
  // However the run is reached.
  for (const query of [
    `query($id: ID!) { node(id: $id) { ... on Run { prompt } } }`,
    `{ runs { edges { node { id prompt } } } }`,
  ]) {
    const reached = await asAgent(query, { id: otherRun.id });
    expect(reached.errors?.map((e) => e.extensions?.code)).toContain('FORBIDDEN');
    expect(JSON.stringify(reached)).not.toContain('secret');
  }
  // What the board shows of another run stays readable.
  const board = await asAgent(`query($id: ID!) { run(id: $id) { id status branch card { title } } }`, { id: otherRun.id });
  expect(board).toEqual({ data: { run: { id: otherRun.id, status: 'SUCCEEDED', branch: expect.any(String), card: { title: "Someone else's card" } } } });
  // The operator reads everything.
  const operator = await bed.t.ok(`query($id: ID!) { run(id: $id) { prompt events { type } } }`, { id: otherRun.id });
  expect(operator.run.prompt).toContain('secret prompt');
});
