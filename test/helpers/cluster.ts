/**
 * A runboard cluster for tests: API and worker nodes as separate processes of the built bundle
 * (`npm run build` first), each with its own data directory, sharing a throwaway Postgres and Redis
 * (services.ts) and a bare git remote of record. Nothing is shared on disk between nodes.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { git, makeRepo, removeDirs, tempDir } from './repo.js';
import { graphqlClient, projectRoot, type GraphQLClient } from './server.js';

export const BUNDLE = path.join(projectRoot, 'dist', 'runboard.cjs');

export interface ClusterNode extends GraphQLClient {
  readonly id: string;
  readonly role: 'api' | 'worker' | 'all';
  readonly dataDir: string;
  readonly url: string;
  readonly child: ResultPromise;
  /** Every line the node logged (JSON lines), for assertions on node/role fields. */
  readonly logs: string[];
}

export interface ClusterOptions {
  databaseUrl: string;
  redisUrl: string;
  /** The remote of record; a fresh bare repository with one commit on main when absent. */
  remote?: string;
  /** Added to every node's environment (a scripted model's pi settings, say). */
  env?: Record<string, string>;
  /** @default 3_000 // ms */
  leaseMs?: number;
}

export interface TestCluster {
  readonly remote: string;
  readonly nodes: ClusterNode[];
  /** Starts one more node. */
  start(id: string, role: ClusterNode['role'], env?: Record<string, string>): Promise<ClusterNode>;
  /** Sends `signal` and waits for the process to end. */
  kill(node: ClusterNode, signal?: NodeJS.Signals): Promise<void>;
  close(): Promise<void>;
}

/** A bare repository with one commit on `main` (README.md), as a team's remote would be. */
export async function makeRemote(files?: Record<string, string>): Promise<string> {
  const work = await makeRepo(files);
  const remote = path.join(await tempDir('runboard-remote-'), 'origin.git');
  await git(path.dirname(remote), 'clone', '--quiet', '--bare', work, remote);
  await removeDirs(work);
  return remote;
}

export async function startCluster(options: ClusterOptions): Promise<TestCluster> {
  const remote = options.remote ?? (await makeRemote());
  const nodes: ClusterNode[] = [];
  const dirs: string[] = [];

  const start = async (id: string, role: ClusterNode['role'], env: Record<string, string> = {}): Promise<ClusterNode> => {
    const dataDir = await tempDir(`runboard-${id}-`);
    dirs.push(dataDir);
    const child = execa('node', [BUNDLE, '--port', '0', '--role', role, '--node-id', id], {
      env: {
        ...options.env,
        DATABASE_URL: options.databaseUrl,
        REDIS_URL: options.redisUrl,
        RUNBOARD_REPO: remote,
        RUNBOARD_DATA_DIR: dataDir,
        RUNBOARD_LEASE_MS: String(options.leaseMs ?? 3_000),
        LOG_LEVEL: 'info',
        ...env,
      },
      reject: false,
      buffer: false,
    });
    const logs: string[] = [];
    const url = await new Promise<string>((resolve, reject) => {
      let pending = '';
      child.stdout!.on('data', (chunk: Buffer) => {
        pending += chunk.toString();
        const lines = pending.split('\n');
        pending = lines.pop()!;
        for (const line of lines) {
          if (logs.length < 10_000) logs.push(line);
          const match = /GraphiQL at (\S+)/.exec(line);
          if (match) resolve(match[1]!);
        }
      });
      let stderr = '';
      child.stderr!.on('data', (chunk: Buffer) => void (stderr = (stderr + chunk.toString()).slice(-4_000)));
      void child.then((result) => reject(new Error(`node ${id} exited (${result.exitCode ?? result.signal}): ${stderr}`)));
    });
    const node: ClusterNode = { id, role, dataDir, child, logs, ...graphqlClient(url, `node ${id}`) };
    nodes.push(node);
    return node;
  };

  const kill = async (node: ClusterNode, signal: NodeJS.Signals = 'SIGKILL') => {
    node.child.kill(signal);
    await node.child;
  };

  return {
    remote,
    nodes,
    start,
    kill,
    close: async () => {
      await Promise.all(nodes.map((node) => (node.child.exitCode === null && node.child.signalCode === null ? kill(node, 'SIGTERM') : undefined)));
      await removeDirs(...dirs, path.dirname(remote));
    },
  };
}

/** Writes `content` to a file and commits it in a clone of `remote`, then pushes `branch`. */
export async function commitToRemote(remote: string, file: string, content: string, branch = 'main'): Promise<string> {
  const clone = await tempDir('runboard-clone-');
  await git(clone, 'clone', '--quiet', remote, '.');
  await git(clone, 'checkout', '--quiet', branch);
  await git(clone, 'config', 'user.name', 'Test User');
  await git(clone, 'config', 'user.email', 'test@example.com');
  await writeFile(path.join(clone, file), content);
  await git(clone, 'add', '-A');
  await git(clone, 'commit', '--quiet', '-m', `edit ${file}`);
  await git(clone, 'push', '--quiet', 'origin', branch);
  const sha = await git(clone, 'rev-parse', 'HEAD');
  await removeDirs(clone);
  return sha;
}
