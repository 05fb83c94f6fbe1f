/** Runs with the real pi binary against the scripted model server, over real HTTP. */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { git } from './helpers/repo.js';
import { alive, runEvents, startAgentTestBed, startRun, waitFor, waitForStatus, writeAndCommit, type AgentTestBed } from './helpers/runs.js';

let bed: AgentTestBed;
beforeAll(async () => {
  bed = await startAgentTestBed(() => ({ text: 'unused' }));
}, 30_000);
afterAll(() => bed?.close());

test('a run that writes and commits a file ends SUCCEEDED, with the commit and its events in order', async () => {
  const { t } = bed;
  bed.model.setScript(writeAndCommit);
  const runId = await startRun(t, 'Say hello');
  const run = await waitForStatus(t, runId);
  expect(run).toMatchObject({ status: 'SUCCEEDED', error: null, ownsWorktree: true });
  expect(existsSync(run.agentSession)).toBe(true);

  const { run: review } = await t.ok(`query($id: ID!) { run(id: $id) { commits { subject } diff { files { path status } } prompt agent agentCommand } }`, { id: runId });
  expect(review.commits).toEqual([{ subject: 'agent: add hello' }]);
  expect(review.diff.files).toEqual([{ path: 'hello.txt', status: 'ADDED' }]);
  expect(review.prompt).toContain('# Say hello');
  expect(review.agent).toBe('pi');
  expect(review.agentCommand).toMatch(/^pi --mode rpc --provider mock/);
  expect(await readFile(path.join(run.worktreePath, 'hello.txt'), 'utf8')).toBe('hello from the agent\n');

  const events = await runEvents(t, runId);
  expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
  expect(run.lastSeq).toBe(events.length);
  expect(events.filter((e) => e.type === 'status').map((e) => e.data.status)).toEqual(['QUEUED', 'STARTING', 'RUNNING', 'SUCCEEDED']);
  const types = events.map((e) => e.type);
  const order = ['user_message', 'agent_start', 'tool_start', 'tool_end', 'tool_start', 'tool_end', 'assistant_text', 'agent_end'];
  let at = 0;
  for (const type of types) if (type === order[at]) at++;
  expect(at).toBe(order.length);
  expect(events.filter((e) => e.type === 'tool_start').map((e) => e.data.tool)).toEqual(['write', 'bash']);
  expect(events.filter((e) => e.type === 'assistant_text').map((e) => e.data.text).join('')).toBe('Done.');
  expect(events.some((e) => e.type === 'usage')).toBe(true);
  expect(types.at(-1)).toBe('status');
});

test('a steer sent mid-run reaches the model in its next request', async () => {
  const { t, model } = bed;
  const steer = 'STEER: use tabs, not spaces';
  model.setScript((request) => (request.lastUserText === steer ? { text: 'Switching to tabs.' } : { text: 'x'.repeat(40), chunkSize: 1, delayMs: 50 }));
  const before = model.requests.length;
  const runId = await startRun(t, 'Format the code');
  await waitFor('the first model request', async () => (model.requests.length > before ? true : undefined));
  await t.ok(`mutation($id: ID!, $text: String!) { sendRunMessage(runId: $id, text: $text, mode: STEER) { status } }`, { id: runId, text: steer });
  const run = await waitForStatus(t, runId);
  expect(run.status).toBe('SUCCEEDED');
  const mine = model.requests.slice(before);
  expect(mine).toHaveLength(2);
  expect(mine[0].messages.some((m) => JSON.stringify(m.content).includes(steer))).toBe(false);
  expect(mine[1].lastUserText).toBe(steer);
  const events = await runEvents(t, runId);
  expect(events.find((e) => e.type === 'user_message' && e.data.mode === 'STEER')?.data.text).toBe(steer);
  expect(events.some((e) => e.type === 'message_delivered' && e.data.text === steer)).toBe(true);
});

test('a stop mid-run ends STOPPED with no process left behind', async () => {
  const { t, model } = bed;
  const pidFile = path.join(t.dataDir, 'tool.pid');
  model.setScript((request) => (request.toolResultCount === 0 ? { toolCalls: [{ name: 'bash', arguments: { command: `echo $$ > ${pidFile}; exec sleep 60` } }] } : { text: 'interrupted' }));
  const runId = await startRun(t, 'Sleep for a while');
  const toolPid = await waitFor('the tool to start', async () => (existsSync(pidFile) ? Number((await readFile(pidFile, 'utf8')).trim()) || undefined : undefined));
  const [, dbId] = Buffer.from(runId, 'base64').toString().split(':');
  const { agentPid } = await t.server.orchestrator.db.client.run.findUniqueOrThrow({ where: { id: dbId } });
  expect(alive(toolPid) && alive(agentPid!)).toBe(true);

  const { stopRun } = await t.ok(`mutation($id: ID!) { stopRun(runId: $id) { status endedAt } }`, { id: runId });
  expect(stopRun.status).toBe('STOPPED');
  expect(alive(agentPid!)).toBe(false);
  expect(alive(toolPid)).toBe(false);
  const again = await t.gql(`mutation($id: ID!) { stopRun(runId: $id) { status } }`, { id: runId });
  expect(again.errors?.[0].extensions?.code).toBe('CONFLICT');
  const message = await t.gql(`mutation($id: ID!) { sendRunMessage(runId: $id, text: "hi", mode: FOLLOW_UP) { status } }`, { id: runId });
  expect(message.errors?.[0].extensions?.code).toBe('CONFLICT');
});

test('a model server error ends FAILED with the model\'s reason', async () => {
  const { t, model } = bed;
  model.setScript(() => ({ error: { status: 500, message: 'mock upstream exploded' } }));
  const run = await waitForStatus(t, await startRun(t, 'Doomed by the model'));
  expect(run.status).toBe('FAILED');
  expect(run.error).toMatch(/500.*mock upstream exploded/);
  expect((await runEvents(t, run.id)).some((e) => e.type === 'model_error')).toBe(true);
});

test('a killed agent ends FAILED with the signal', async () => {
  const { t, model } = bed;
  model.setScript(() => ({ text: 'y'.repeat(200), chunkSize: 1, delayMs: 50 }));
  const before = model.requests.length;
  const runId = await startRun(t, 'Doomed by a kill');
  await waitFor('the model request', async () => (model.requests.length > before ? true : undefined));
  const [, dbId] = Buffer.from(runId, 'base64').toString().split(':');
  const { agentPid } = await t.server.orchestrator.db.client.run.findUniqueOrThrow({ where: { id: dbId } });
  process.kill(agentPid!, 'SIGKILL');
  const run = await waitForStatus(t, runId);
  expect(run).toMatchObject({ status: 'FAILED', exitSignal: 'SIGKILL' });
  expect(run.error).toMatch(/killed by SIGKILL/);
});

test('a refinement resumes the same session in the same worktree', async () => {
  const { t, model } = bed;
  model.setScript(writeAndCommit);
  const firstId = await startRun(t, 'Greet');
  const first = await waitForStatus(t, firstId);
  expect(first.status).toBe('SUCCEEDED');
  const { run: firstCard } = await t.ok(`query($id: ID!) { run(id: $id) { card { id } } }`, { id: firstId });

  const feedback = 'REFINE: also add a goodbye file';
  model.setScript((request) =>
    request.lastUserText === feedback && request.toolResultCount === 2
      ? { toolCalls: [{ name: 'bash', arguments: { command: 'echo bye > bye.txt && git add -A && git commit -qm "agent: add bye"' } }] }
      : { text: 'Refined.' },
  );
  const before = model.requests.length;
  const { startRun: refinement } = await t.ok(
    `mutation($input: StartRunInput!) { startRun(input: $input) { id refinedFrom { id } ownsWorktree } }`,
    { input: { cardId: firstCard.card.id, refineRunId: firstId, prompt: feedback } },
  );
  expect(refinement).toMatchObject({ refinedFrom: { id: firstId }, ownsWorktree: false });
  const refined = await waitForStatus(t, refinement.id);
  expect(refined).toMatchObject({ status: 'SUCCEEDED', worktreePath: first.worktreePath, agentSession: first.agentSession });

  // The model saw the whole earlier conversation, then the feedback.
  const request = model.requests[before];
  const userTexts = request.messages.filter((m) => m.role === 'user').map((m) => JSON.stringify(m.content));
  expect(userTexts[0]).toContain('# Greet');
  expect(userTexts.at(-1)).toContain(feedback);
  expect(request.toolResultCount).toBe(2);
  expect(await git(first.worktreePath, 'log', '--format=%s')).toMatch(/^agent: add bye\nagent: add hello/);

  // Deleting the refinement never removes its owner's worktree.
  await t.ok(`mutation($id: ID!) { deleteRun(runId: $id) }`, { id: refinement.id });
  expect(existsSync(first.worktreePath)).toBe(true);

  const bad = await t.gql(`mutation($input: StartRunInput!) { startRun(input: $input) { id } }`, { input: { cardId: firstCard.card.id, refineRunId: 'UnVuOm5vcGU=', prompt: 'x' } });
  expect(bad.errors?.[0]).toMatchObject({ extensions: { code: 'CONFLICT' }, message: expect.stringMatching(/no such run/) });
});

test('a long streamed answer is tens of events, and storage grows linearly with it', async () => {
  const { t, model } = bed;
  const answer = Array.from({ length: 3_000 }, (_, i) => String.fromCharCode(97 + (i % 26))).join('');
  model.setScript(() => ({ text: answer, chunkSize: 1 }));
  const run = await waitForStatus(t, await startRun(t, 'Talk a lot'));
  expect(run.status).toBe('SUCCEEDED');
  const events = await runEvents(t, run.id);
  const texts = events.filter((e) => e.type === 'assistant_text');
  expect(texts.map((e) => e.data.text).join('')).toBe(answer);
  expect(events.length).toBeLessThan(40);
  const stored = events.reduce((sum, e) => sum + JSON.stringify(e.data).length, 0);
  expect(stored).toBeLessThan(answer.length + 4_000); // the answer once, plus the prompt and bookkeeping
});

test('cleanupOnFinish removes the run\'s worktree when it settles, keeping a branch with unmerged commits', async () => {
  const { t, model } = bed;
  model.setScript(writeAndCommit);
  const runId = await startRun(t, 'Tidy up after yourself', { cleanupOnFinish: true });
  const run = await waitForStatus(t, runId);
  expect(run.status).toBe('SUCCEEDED');
  expect(existsSync(run.worktreePath)).toBe(false);
  expect(await git(t.repo, 'branch', '--list', run.branch)).toContain(run.branch);
  const events = await runEvents(t, runId);
  expect(events.at(-2)).toEqual(expect.objectContaining({ type: 'worktree_removed', data: { branchDeleted: false, unmergedCommits: 1 } }));
  expect(events.at(-1)).toEqual(expect.objectContaining({ type: 'status', data: { status: 'SUCCEEDED' } }));
  const { run: after } = await t.ok(`query($id: ID!) { run(id: $id) { worktreeMissing commits { subject } } }`, { id: runId });
  expect(after).toEqual({ worktreeMissing: true, commits: [{ subject: 'agent: add hello' }] });
});
