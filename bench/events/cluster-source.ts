/**
 * The cluster side of `npm run bench:events` (BENCH_CLUSTER=1): a throwaway Postgres and Redis
 * (scripts/services.sh), two API nodes as their own processes (cluster-node.ts) that subscribers are
 * spread over, and this process as the node that appends events (a worker's part), through the same
 * event log and doorbell bus as agents' events. Its `cpu` is the whole cluster's: both API nodes and
 * the writer, so the figure compares with the embedded server doing all three.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { loadConfig } from '../../src/config.js';
import { startServer } from '../../src/server.js';
import { eventWriter } from './event-writer.js';
import { initRepo } from '../../scripts/first-answer.js';
import { cpuMicros, serve, startChild } from './shared.js';

const SERVICES = path.resolve(import.meta.dirname, '../../scripts/services.sh');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'bench-cluster-'));
// Its own temp dir, not one inside `tmp`: Postgres runs as the postgres user, who cannot traverse a 0700 parent.
const servicesDir = mkdtempSync(path.join(os.tmpdir(), 'bench-services-'));
const { stdout } = await execa(SERVICES, ['start', servicesDir]);
const env = Object.fromEntries(stdout.split('\n').map((line) => line.split(/=(.*)/s).slice(0, 2) as [string, string]));
const remote = path.join(tmp, 'remote');
await initRepo(remote);

// The bench's runs have no agent, and a worker's sweep (every lease/2) interrupts active runs that no
// process drives: a lease longer than the whole bench keeps them RUNNING until their last event.
const config = (role: string, nodeId: string, dataDir: string) =>
  loadConfig(['--port', '0', '--repo', remote, '--data-dir', dataDir, '--role', role, '--node-id', nodeId, '--lease-ms', '3600000'], { ...env, RUNBOARD_AGENT_COMMAND: 'true' });
// The writer first: it migrates the database the API nodes then find ready.
const writerNode = await startServer(config('worker', 'bench-writer', path.join(tmp, 'writer')));
Object.assign(process.env, env, { BENCH_REMOTE: remote });
const nodes = await Promise.all(['bench-api-1', 'bench-api-2'].map((id) => ((process.env.BENCH_NODE_ID = id), startChild('cluster-node'))));
const urls = await Promise.all(nodes.map((node) => node.call<string>('url')));

const writer = await eventWriter(writerNode.orchestrator);

serve(
  {
    /** Both API nodes, space-separated: subscriber i connects to the i-th modulo their number. */
    url: () => urls.join(' '),
    /** The whole cluster's CPU: both API nodes and this writer. */
    cpu: async () => cpuMicros() + (await Promise.all(nodes.map((node) => node.call<number>('cpu')))).reduce((a, b) => a + b, 0),
    ...writer,
  },
  async () => {
    await Promise.all(nodes.map((node) => node.close()));
    await writerNode.close();
    await execa(SERVICES, ['stop', servicesDir]);
    rmSync(tmp, { recursive: true, force: true });
  },
);
