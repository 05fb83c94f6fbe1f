/**
 * The runboard side of `npm run bench:events`, run as its own process: starts the real server
 * (src/server.ts) on a temp repository and data dir, and writes events through its event log as
 * agents would (there is no public append). Answers the conductor's requests over IPC (shared.ts).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../../src/config.js';
import { startServer } from '../../src/server.js';
import { eventWriter } from './event-writer.js';
import { initRepo } from '../../scripts/first-answer.js';
import { serve } from './shared.js';

const repo = mkdtempSync(path.join(os.tmpdir(), 'bench-repo-'));
const dataDir = mkdtempSync(path.join(os.tmpdir(), 'bench-data-'));
await initRepo(repo);
const server = await startServer(loadConfig(['--port', '0', '--repo', repo, '--data-dir', dataDir], { RUNBOARD_AGENT_COMMAND: 'true' }));
const writer = await eventWriter(server.orchestrator);

serve(
  {
    url: () => server.url,
    /** Fresh runs for a load; answers their global ids, which subscribers send. */
    ...writer,
  },
  async () => {
    await server.close();
    rmSync(repo, { recursive: true, force: true });
    rmSync(dataDir, { recursive: true, force: true });
  },
);
