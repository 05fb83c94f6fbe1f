/** Helpers for tests that run the real pi against the scripted model server. */
import { readFileSync } from 'node:fs';
import { decodeGlobalID } from '@pothos/plugin-relay';
import { processesWithEnv } from '../../src/orchestrator/processes.js';
import { RUN_ID_VARIABLE } from '../../src/orchestrator/runs.js';
import { alive } from './agent-process.js';
import { makePiEnvironment, startModelServer, type ModelScript, type ModelServer } from './model-server.js';
import { RUN_EVENT_FIELDS, withData, type TestRunEvent } from './events.js';
import { startTestServer, type TestServer } from './server.js';

export interface AgentTestBed {
  model: ModelServer;
  t: TestServer;
  close(): Promise<void>;
}

/** A model server, a pi configuration pointing at it, and a runboard server whose agents use both (on `databaseUrl` when given). */
export async function startAgentTestBed(script: ModelScript, env: Record<string, string> = {}, databaseUrl?: string): Promise<AgentTestBed> {
  const model = await startModelServer(script);
  const pi = await makePiEnvironment(model);
  const t = await startTestServer({ agentEnv: pi.env, env: { RUNBOARD_AGENT_ARGS: pi.args.join(' '), ...env }, databaseUrl });
  return {
    model,
    t,
    close: async () => {
      await t.close();
      await model.close();
      await pi.cleanup();
    },
  };
}

/** Polls until `check` returns a value other than undefined, or fails after `timeoutMs`. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export const SETTLED = ['SUCCEEDED', 'FAILED', 'STOPPED', 'INTERRUPTED'];

/** Creates a card and starts a run on it; returns the run's global id. */
export async function startRun(t: TestServer, title: string, extra: Record<string, unknown> = {}): Promise<string> {
  const { createCard } = await t.ok(`mutation($title: String!) { createCard(input: { title: $title }) { id } }`, { title });
  const { startRun: run } = await t.ok(`mutation($input: StartRunInput!) { startRun(input: $input) { id status } }`, { input: { cardId: createCard.id, ...extra } });
  return run.id;
}

const RUN_FIELDS = `id status error exitCode exitSignal agentSession worktreePath ownsWorktree branch lastSeq startedAt endedAt`;

/** The run once its status is one of `statuses` (default: settled). */
export async function waitForStatus(t: TestServer, runId: string, statuses = SETTLED, timeoutMs = 30_000): Promise<any> {
  return waitFor(`run ${runId} to be ${statuses.join('/')}`, async () => {
    const { run } = await t.ok(`query($id: ID!) { run(id: $id) { ${RUN_FIELDS} } }`, { id: runId });
    return statuses.includes(run.status) ? run : undefined;
  }, timeoutMs);
}

/** All events of a run, oldest first, read through `Run.events`. */
export async function runEvents(t: TestServer, runId: string): Promise<TestRunEvent[]> {
  const events: TestRunEvent[] = [];
  for (;;) {
    const { run } = await t.ok(`query($id: ID!, $since: Int!) { run(id: $id) { events(since: $since, first: 1000) { ...RunEventFields } } } ${RUN_EVENT_FIELDS}`, { id: runId, since: events.at(-1)?.seq ?? 0 });
    if (!run.events.length) return events;
    events.push(...run.events.map(withData));
  }
}

export { alive };

/** The live processes of run `runId` (its global id): every one carrying its id in RUNBOARD_RUN_ID. */
export function runProcesses(runId: string): number[] {
  return processesWithEnv(RUN_ID_VARIABLE, decodeGlobalID(runId).id).filter(alive);
}

/** Resolves with the pid of a process of run `runId` whose command line holds `command`. */
export function processRunning(runId: string, command: string, timeoutMs?: number): Promise<number> {
  return waitFor(
    `"${command}" to run`,
    async () =>
      runProcesses(runId).find((pid) => {
        try {
          return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').includes(command);
        } catch {
          return false; // it ended meanwhile
        }
      }),
    timeoutMs,
  );
}

/** A model that has the agent write hello.txt, commit it, then say Done. */
export const writeAndCommit: ModelScript = (request) => {
  if (request.toolResultCount === 0) return { toolCalls: [{ name: 'write', arguments: { path: 'hello.txt', content: 'hello from the agent\n' } }] };
  if (request.toolResultCount === 1) return { toolCalls: [{ name: 'bash', arguments: { command: 'git add -A && git commit -qm "agent: add hello"' } }] };
  return { text: 'Done.' };
};
