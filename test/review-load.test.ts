/**
 * Review reads (diffs, commits) under load must not hold up run control: they queue for git in a
 * pool of their own, take no checkout lock, and end with TIMEOUT when their budget is spent.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { OPERATOR } from '../src/orchestrator/actor.js';
import { encodeGlobalID } from '@pothos/plugin-relay';
import { MAX_CONCURRENT_READS, READ_BUDGET_MS } from '../src/orchestrator/git.js';
import { git } from './helpers/repo.js';
import { startAgentTestBed, startRun, waitFor, waitForStatus, type AgentTestBed } from './helpers/runs.js';

let bed: AgentTestBed;
beforeAll(async () => {
  bed = await startAgentTestBed(() => ({ text: 'Done.' }));
});
afterAll(() => bed?.close());

/** Files of short random lines: every line differs between two versions, so diffing them is slow. */
async function writeNoise(dir: string, seed: number) {
  let state = seed;
  const next = () => (state = (state * 1103515245 + 12345) % 2 ** 31) % 50;
  for (let file = 0; file < 8; file++) {
    await writeFile(path.join(dir, `noise-${file}.txt`), Array.from({ length: 40_000 }, () => `${next()}\n`).join(''));
  }
}

/** How many of this process's git children are computing a diff. */
function diffsRunning(): number {
  let count = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) !== process.pid) continue;
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').includes('diff')) count += 1;
    } catch {
      // gone meanwhile
    }
  }
  return count;
}

test('a startRun gets its worktree while slow review reads fill their pool, and every read answers, with data or TIMEOUT', async () => {
  const { t } = bed;
  await writeNoise(t.repo, 1);
  await git(t.repo, 'add', '-A');
  await git(t.repo, 'commit', '-q', '-m', 'noise');
  const { orchestrator } = t.server;
  const cardId = await orchestrator.board.createCard(OPERATOR, { title: 'Rewrite the noise' });
  const reviewed = await orchestrator.db.client.run.create({ data: { cardId, prompt: 'p', status: 'SUCCEEDED' } });
  const worktree = await orchestrator.workspaces.create(reviewed.id);
  await writeNoise(worktree.path, 2);
  await git(worktree.path, 'commit', '-q', '-am', 'new noise');

  // A first run settles before the load: starting the agent's program is then a known quantity (its probe is cached).
  expect((await waitForStatus(t, await startRun(t, 'Warm up'))).status).toBe('SUCCEEDED');

  const answeredAt: number[] = [];
  const reviews = Array.from({ length: 8 }, () =>
    t.gql(`query($id: ID!) { node(id: $id) { ... on Run { diff { stat { filesChanged } } commits { subject } } } }`, { id: encodeGlobalID('Run', reviewed.id) })
      .then((answer) => {
        answeredAt.push(Date.now());
        return answer;
      }),
  );
  await waitFor('the review reads to fill their pool', async () => (diffsRunning() >= MAX_CONCURRENT_READS ? true : undefined));

  const runId = await startRun(t, 'Start while reviews run');
  const runDbId = Buffer.from(runId, 'base64').toString().split(':')[1];
  const worktreeAt = await waitFor('the new run\'s worktree', async () => {
    const run = await orchestrator.db.client.run.findUnique({ where: { id: runDbId }, select: { branch: true } });
    return run?.branch ? Date.now() : undefined;
  }, READ_BUDGET_MS * 3);
  const answers = await Promise.all(reviews);

  // Not behind the reads: the worktree existed before the reads that had queued behind the full pool got their turn
  // and answered. (Before the first answer is too tight on a loaded machine: 4 diffs share 2 cores with
  // `git worktree add`, which then only runs slower, not later.)
  expect(answeredAt).toHaveLength(8);
  expect(worktreeAt).toBeLessThan([...answeredAt].sort((a, b) => a - b)[MAX_CONCURRENT_READS]);
  for (const answer of answers) {
    if (answer.errors) expect(answer.errors.map((e: any) => e.extensions?.code)).toEqual(expect.arrayContaining(['TIMEOUT']));
    else expect(answer.data.node).toEqual({ diff: { stat: { filesChanged: 8 } }, commits: [{ subject: 'new noise' }] });
  }
  expect((await waitForStatus(t, runId)).status).toBe('SUCCEEDED');
}, 90_000);
