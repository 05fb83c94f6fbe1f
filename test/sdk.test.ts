/**
 * The typed SDK: its generated code matches codegen's output, its client speaks runboard's auth and
 * resume conventions, and the example automation drives a real run (real pi, scripted model) to a merge.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { execa } from 'execa';
import { buildSchema, GraphQLError } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import WebSocket, { WebSocketServer } from 'ws';
import { createRunboardClient, RunboardError } from '../sdk/index.js';
import { git, removeDirs, tempDir } from './helpers/repo.js';
import { startAgentTestBed, writeAndCommit, type AgentTestBed } from './helpers/runs.js';
import { projectRoot } from './helpers/server.js';

let bed: AgentTestBed;
beforeAll(async () => {
  bed = await startAgentTestBed(() => ({ text: 'unused' }));
}, 30_000);
afterAll(() => bed?.close());

/** Runs the example as a script would be run, against the test bed's server. */
function automateCard(...args: string[]) {
  const tsx = path.join(projectRoot, 'node_modules/.bin/tsx');
  const env = { ...process.env, RUNBOARD_TOKEN: '' };
  return execa(tsx, ['examples/automate-card.ts', '--url', bed.t.url, ...args], { cwd: projectRoot, env, reject: false, timeout: 30_000 });
}

test('sdk/generated is what `npm run codegen` produces from schema.graphql and sdk/operations', async () => {
  // The real CLI and the real codegen.ts, with only the output directory moved to a temp dir.
  const dir = await tempDir('runboard-codegen-');
  try {
    const out = path.join(dir, 'generated');
    await writeFile(
      path.join(dir, 'codegen.ts'),
      `import config from ${JSON.stringify(path.join(projectRoot, 'codegen.ts'))};\n` +
        `export default { ...config, generates: { ${JSON.stringify(`${out}/`)}: config.generates['sdk/generated/'] } };\n`,
    );
    await execa(path.join(projectRoot, 'node_modules/.bin/graphql-codegen'), ['--config', path.join(dir, 'codegen.ts'), '--silent'], { cwd: projectRoot });
    const committedDir = path.join(projectRoot, 'sdk/generated');
    expect(readdirSync(committedDir).sort()).toEqual(readdirSync(out).sort());
    for (const name of readdirSync(out)) {
      const fresh = readFileSync(path.join(out, name), 'utf8');
      expect({ name, content: readFileSync(path.join(committedDir, name), 'utf8') }).toEqual({ name, content: fresh }); // stale: run `npm run codegen`
    }
  } finally {
    await removeDirs(dir);
  }
});

test('the example files a card, follows the run, prints the diff stat and leaves the merged file on main', async () => {
  const { t, model } = bed;
  model.setScript(writeAndCommit);
  const result = await automateCard('--title', 'Say hello', '--description', 'Add hello.txt');
  expect({ exitCode: result.exitCode, stderr: result.stderr }).toEqual({ exitCode: 0, stderr: '' });
  const lines = result.stdout.split('\n');
  expect(lines).toContainEqual(expect.stringMatching(/^#\d+ tool_start write hello\.txt$/));
  expect(lines).toContainEqual(expect.stringMatching(/^#\d+ tool_start bash git add -A && git commit -qm "agent: add hello"$/));
  expect(lines).toContainEqual(expect.stringMatching(/^#\d+ status SUCCEEDED$/));
  expect(lines).toContain('diff: 1 file changed, 1 insertion(+), 0 deletions(-) in 1 commit');
  expect(lines).toContain('  ADDED    hello.txt  +1 -0');
  expect(lines.at(-1)).toMatch(/^merged runboard\/\S+ into main as [0-9a-f]{12} \(MERGE\); card moved to DONE$/);

  expect(readFileSync(path.join(t.repo, 'hello.txt'), 'utf8')).toBe('hello from the agent\n');
  expect((await git(t.repo, 'log', '--format=%s', 'main')).split('\n')).toContain('agent: add hello');
  expect(await git(t.repo, 'status', '--porcelain')).toBe('');
  const { cards } = await t.ok(`{ cards(column: DONE) { edges { node { title } } } }`);
  expect(cards.edges.map((edge: any) => edge.node.title)).toContain('Say hello');
});

test('the example exits non-zero with the reason when the run FAILED', async () => {
  const { t, model } = bed;
  model.setScript(() => ({ error: { status: 500, message: 'boom' } }));
  const head = await git(t.repo, 'rev-parse', 'HEAD');
  const result = await automateCard('--title', 'Doomed');
  expect(result.exitCode).toBe(1);
  expect(result.stdout).toMatch(/^#\d+ status FAILED/m);
  expect(result.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^automate-card: run FAILED: .*500.*boom/)]);
  expect(await git(t.repo, 'rev-parse', 'HEAD')).toBe(head);
});

test('errors carry their extensions.code, and a bad argument or unreachable server is one line', async () => {
  const client = createRunboardClient({ url: bed.t.url });
  const missing = await client.run('UnVuOm5vcGU=').catch((error: unknown) => error);
  expect(missing).toBeInstanceOf(RunboardError);
  expect(missing).toMatchObject({ code: 'NOT_FOUND' });
  const down = await createRunboardClient({ url: 'http://127.0.0.1:1/graphql' }).board().catch((error: unknown) => error);
  expect(down).toMatchObject({ code: 'NETWORK_ERROR', message: expect.stringContaining('cannot reach http://127.0.0.1:1/graphql') });
  const usage = await automateCard('--strategy', 'REBASE', '--title', 'x');
  expect({ exitCode: usage.exitCode, stderr: usage.stderr }).toEqual({ exitCode: 1, stderr: 'automate-card: --strategy must be MERGE or SQUASH, not REBASE' });
});

test('the client sends the token both ways, and followRunEvents resumes after SUBSCRIBER_TOO_SLOW without repeats', async () => {
  // A stand-in server on the real schema: the first subscription (a list per message) ends too slow
  // after seq 2, and the resumed one replays seq 2 (a reconnect could) before the terminal status.
  const schema = buildSchema(readFileSync(path.join(projectRoot, 'schema.graphql'), 'utf8'));
  const event = (seq: number, type = 'assistant_text') =>
    type === 'status' ? { __typename: 'StatusChangedEvent', seq, type, status: 'SUCCEEDED', runId: 'UnVuOjE=', createdAt: '2026-11-24T00:00:00.000Z' } : { __typename: 'AssistantTextEvent', seq, type, text: 'hi', runId: 'UnVuOjE=', createdAt: '2026-11-24T00:00:00.000Z' };
  const batch = (...events: object[]) => ({ runEventBatches: events });
  const tooSlow = { runEventBatches: () => { throw new GraphQLError('too slow', { extensions: { code: 'SUBSCRIBER_TOO_SLOW', resumeFrom: 2 } }); } };
  const subscribedWith: unknown[] = [];
  const initPayloads: unknown[] = [];
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  await new Promise((resolve) => wss.once('listening', resolve));
  const server = useServer(
    {
      schema,
      onConnect: (ctx) => void initPayloads.push(ctx.connectionParams),
      roots: {
        subscription: {
          runEventBatches: async function* ({ since, untilSettled }: { since: number; untilSettled: boolean }) {
            subscribedWith.push([since, untilSettled]);
            yield* since === 0 ? [batch(event(1)), batch(event(2)), tooSlow] : [batch(event(2), event(3, 'status'))];
          },
        },
      },
    },
    wss,
  );
  const headers: (string | null)[] = [];
  const fakeFetch: typeof fetch = async (_url, init) => {
    headers.push(new Headers(init?.headers).get('authorization'));
    return Response.json({ data: { run: null } });
  };
  const { port } = wss.address() as AddressInfo;
  const client = createRunboardClient({ url: `http://127.0.0.1:${port}/graphql`, token: 'secret', fetch: fakeFetch, webSocketImpl: WebSocket });
  try {
    const seen: number[] = [];
    for await (const { seq } of client.followRunEvents('UnVuOjE=', { untilSettled: true })) seen.push(seq);
    expect(seen).toEqual([1, 2, 3]);
    expect(subscribedWith).toEqual([[0, true], [2, true]]);
    expect(initPayloads[0]).toEqual({ authorization: 'Bearer secret' });
    await expect(client.run('UnVuOjE=')).rejects.toMatchObject({ code: 'NO_DATA' });
    expect(headers).toEqual(['Bearer secret']);
  } finally {
    await client.close();
    await server.dispose();
    await new Promise((resolve) => wss.close(resolve));
  }
});

test('every operation the issue names has a typed document', () => {
  const source = readFileSync(path.join(projectRoot, 'sdk/generated/graphql.ts'), 'utf8');
  for (const name of ['Board', 'Card', 'CreateCard', 'MoveCard', 'AddComment', 'StartRun', 'Run', 'SendRunMessage', 'StopRun', 'RunDiff', 'MergeRun', 'RunEvents', 'RunEventBatches', 'BoardEventBatches', 'RunUpdated', 'StartPlaytest', 'StopPlaytest']) {
    expect(source).toContain(`export const ${name}Document =`);
  }
});
