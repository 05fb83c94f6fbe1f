/**
 * Agent start-up benchmark (a script, not a test): `npm run bench:agents`.
 *
 * For each agent CLI (pi, the baseline, then the pinned Claude Code, Codex and gemini-cli from
 * scripts/install-test-agents.sh), spawns it in a temp git repository against its scripted model server,
 * sends the first prompt as a driver would (stream-json line; app-server handshake and turn/start; ACP
 * initialize, session/new, set_mode and session/prompt; pi's RPC prompt) and measures spawn → first model
 * request. Rounds interleave the agents so load on the machine hits them alike. Prints min, median and max
 * per agent and the median's ratio to pi's.
 */
import type { AgentProcess } from '../test/helpers/agent-process.js';
import { startAcp, startClaude, startCodex } from '../test/helpers/agent-clis.js';
import { makeAgentEnvironment, type AgentKind } from '../test/helpers/agents.js';
import { startAnthropicServer } from '../test/helpers/anthropic-server.js';
import { startGeminiServer } from '../test/helpers/gemini-server.js';
import { spawnPiRpc, startModelServer, type ModelServer } from '../test/helpers/model-server.js';
import { makeRepo, removeDirs } from '../test/helpers/repo.js';
import { startResponsesServer } from '../test/helpers/responses-server.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const KINDS: AgentKind[] = ['pi', 'claude', 'codex', 'gemini'];

const servers: Record<AgentKind, () => Promise<ModelServer<any>>> = {
  pi: () => startModelServer(),
  claude: () => startAnthropicServer(),
  codex: () => startResponsesServer(),
  gemini: () => startGeminiServer(),
};

/** One spawn of `kind`: milliseconds from spawn to its first model request. */
async function measure(kind: AgentKind): Promise<number> {
  const repo = await makeRepo();
  const model = await servers[kind]();
  const env = await makeAgentEnvironment(kind, model);
  let agent: AgentProcess | undefined;
  try {
    if (kind === 'pi') {
      const pi = (agent = spawnPiRpc(env, repo));
      pi.send({ type: 'prompt', message: 'Say ok.' });
    } else if (kind === 'claude') {
      const claude = (agent = startClaude(env, repo));
      claude.say('Say ok.');
    } else if (kind === 'codex') {
      const codex = (agent = await startCodex(env, repo));
      await codex.startTurn('Say ok.');
    } else {
      const gemini = (agent = await startAcp(env, repo));
      void gemini.prompt('Say ok.').catch(() => undefined); // rejected when the connection closes
    }
    await model.waitForRequests(1, 60_000);
    return model.requests[0].receivedAt - agent.spawnedAt;
  } finally {
    await agent?.stop();
    await model.close();
    await env.cleanup();
    await removeDirs(repo);
  }
}

const samples = new Map<AgentKind, number[]>(KINDS.map((kind) => [kind, []]));
for (let round = 0; round < ROUNDS; round++) for (const kind of KINDS) samples.get(kind)!.push(await measure(kind));

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const baseline = median(samples.get('pi')!);
console.log(`spawn → first model request, ${ROUNDS} rounds (ms)`);
for (const [kind, values] of samples) {
  console.log(`${kind.padEnd(7)} min ${Math.min(...values)}  median ${median(values)}  max ${Math.max(...values)}  ×pi ${(median(values) / baseline).toFixed(2)}`);
}
