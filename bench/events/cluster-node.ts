/**
 * One API node of the cluster source (cluster-source.ts), as its own process: the real server on the
 * cluster's Postgres and Redis with `--role api`, its own data dir. Answers `url` and `cpu`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../../src/config.js';
import { startServer } from '../../src/server.js';
import { serve } from './shared.js';

const { BENCH_REMOTE, DATABASE_URL, REDIS_URL, BENCH_NODE_ID } = process.env;
const dataDir = mkdtempSync(path.join(os.tmpdir(), 'bench-node-'));
const server = await startServer(
  loadConfig(['--port', '0', '--repo', BENCH_REMOTE!, '--data-dir', dataDir, '--role', 'api', '--node-id', BENCH_NODE_ID!], { DATABASE_URL, REDIS_URL, RUNBOARD_AGENT_COMMAND: 'true' }),
);
serve({ url: () => server.url }, async () => {
  await server.close();
  rmSync(dataDir, { recursive: true, force: true });
});
