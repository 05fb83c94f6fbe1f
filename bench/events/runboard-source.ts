/**
 * The runboard side of `npm run bench:events`, run as its own process: starts the real server
 * (src/server.ts) on a temp repository and data dir, and writes events through its event log as
 * agents would (there is no public append). Answers the conductor's requests over IPC (shared.ts).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { encodeGlobalID } from '@pothos/plugin-relay';
import { loadConfig } from '../../src/config.js';
import { startServer } from '../../src/server.js';
import { initRepo, serve, TEXT, writePaced, type WriteLoad } from './shared.js';

const repo = mkdtempSync(path.join(os.tmpdir(), 'bench-repo-'));
const dataDir = mkdtempSync(path.join(os.tmpdir(), 'bench-data-'));
await initRepo(repo);
const server = await startServer(loadConfig(['--port', '0', '--repo', repo, '--data-dir', dataDir], { RUNBOARD_AGENT_COMMAND: 'true' }));
const { db, eventLog } = server.orchestrator;
const card = await db.client.card.create({ data: { title: 'bench', position: 0 } });
/** The runs of the current load, by index: their database ids. */
let runs: string[] = [];

/** A RUNNING run with no events yet; returns its database id. */
async function createRun(): Promise<string> {
  return (await db.client.run.create({ data: { cardId: card.id, prompt: 'bench', status: 'RUNNING' } })).id;
}

serve(
  {
    url: () => server.url,
    /** Fresh runs for a load; answers their global ids, which subscribers send. */
    createRuns: async (count: number) => {
      runs = await Promise.all(Array.from({ length: count }, createRun));
      return runs.map((id) => encodeGlobalID('Run', id));
    },
    write: (load: WriteLoad) =>
      writePaced(
        runs.length,
        load,
        (run, text) => eventLog.append(runs[run], [{ type: 'assistant_text', data: { text } }]),
        (run) => eventLog.append(runs[run], [{ type: 'status', data: { status: 'SUCCEEDED' } }], { status: 'SUCCEEDED' }),
      ),
    /** A settled run with `count` texts in its history (then its status); answers its global id. */
    history: async (count: number) => {
      const id = await createRun();
      for (let i = 0; i < count; i += 1_000) {
        await eventLog.append(id, Array.from({ length: Math.min(1_000, count - i) }, () => ({ type: 'assistant_text', data: { text: TEXT } })));
      }
      await eventLog.append(id, [{ type: 'status', data: { status: 'SUCCEEDED' } }], { status: 'SUCCEEDED' });
      return encodeGlobalID('Run', id);
    },
  },
  async () => {
    await server.close();
    rmSync(repo, { recursive: true, force: true });
    rmSync(dataDir, { recursive: true, force: true });
  },
);
