/** Starts the real server on an ephemeral port and talks to it over HTTP with fetch. */
import path from 'node:path';
import type BetterSqlite3 from 'better-sqlite3';
import { execa, type ResultPromise } from 'execa';
import { loadConfig } from '../../src/config.js';
import { startServer, type RunboardServer, type ServerOptions } from '../../src/server.js';
import { makeRepo, removeDirs, tempDir } from './repo.js';

export interface GraphQLResponse<T = any> {
  data?: T;
  errors?: { message: string; path?: string[]; extensions?: Record<string, any> }[];
}

export interface TestServer {
  server: RunboardServer;
  url: string;
  repo: string;
  dataDir: string;
  /** POSTs a GraphQL request and returns the parsed body. */
  gql<T = any>(query: string, variables?: Record<string, unknown>): Promise<GraphQLResponse<T>>;
  /** Like gql, but fails the test on any error and returns `data`. */
  ok<T = any>(query: string, variables?: Record<string, unknown>): Promise<T>;
  close(): Promise<void>;
}

/**
 * Options: reuse a `repo` or `dataDir` (e.g. to restart on the same data); both are removed on close only if made here.
 * `databaseUrl` replaces the configured database (a postgresql:// one, say).
 */
export async function startTestServer(options: ServerOptions & { repo?: string; dataDir?: string; env?: Record<string, string>; databaseUrl?: string } = {}): Promise<TestServer> {
  const repo = options.repo ?? (await makeRepo());
  const dataDir = options.dataDir ?? (await tempDir('runboard-data-'));
  const loaded = loadConfig(['--port', '0', '--repo', repo, '--data-dir', dataDir], options.env ?? {});
  const config = options.databaseUrl ? { ...loaded, databaseUrl: options.databaseUrl } : loaded;
  const server = await startServer(config, options);
  const gql = async (query: string, variables?: Record<string, unknown>) => {
    const response = await fetch(server.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json' },
      body: JSON.stringify({ query, variables }),
    });
    return (await response.json()) as GraphQLResponse;
  };
  return {
    server,
    url: server.url,
    repo,
    dataDir,
    gql,
    ok: async (query, variables) => {
      const result = await gql(query, variables);
      if (result.errors?.length) throw new Error(`GraphQL errors: ${JSON.stringify(result.errors)}`);
      return result.data;
    },
    close: async () => {
      await server.close();
      await removeDirs(options.dataDir ? undefined : dataDir, options.repo ? undefined : repo);
    },
  };
}

/** The SQLite connection of a server's database, for tests that run SQL of their own; throws on Postgres. */
export function sqliteOf(server: RunboardServer): BetterSqlite3.Database {
  const { db } = server.orchestrator;
  if (db.kind !== 'sqlite') throw new Error('this test needs the SQLite database');
  return db.sqlite;
}

/** A GraphQL client over HTTP for a server started elsewhere (another process, a cluster node). */
export interface GraphQLClient {
  url: string;
  /** POSTs a request, with `token` as a bearer token if given; the parsed body and the HTTP status. */
  gql<T = any>(query: string, variables?: Record<string, unknown>, token?: string): Promise<GraphQLResponse<T> & { status: number }>;
  /** Like gql, but fails the test on any error (naming `label`) and returns `data`. */
  ok<T = any>(query: string, variables?: Record<string, unknown>): Promise<T>;
}

export function graphqlClient(url: string, label = url): GraphQLClient {
  const gql = async (query: string, variables?: Record<string, unknown>, token?: string) => {
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify({ query, variables }),
    });
    return { ...((await response.json()) as GraphQLResponse), status: response.status };
  };
  return {
    url,
    gql,
    ok: async (query, variables) => {
      const result = await gql(query, variables);
      if (result.errors?.length) throw new Error(`${label}: GraphQL errors: ${JSON.stringify(result.errors)}`);
      return result.data;
    },
  };
}

export const projectRoot = path.resolve(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '../..');

/**
 * `node <entry>` as a child process, answering like a TestServer; `env` configures it. The entry is the
 * installed command (dist/runboard.cjs, the bundle; run `npm run build` first) unless told.
 */
export async function spawnServer(env: Record<string, string>, entry = path.join(projectRoot, 'dist', 'runboard.cjs')): Promise<{ child: ResultPromise; t: Pick<TestServer, 'ok' | 'gql' | 'url'> }> {
  const child = execa('node', [entry, '--port', '0'], { env, reject: false });
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      const match = /GraphiQL at (\S+)/.exec(chunk.toString());
      if (match) resolve(match[1]);
    });
    void child.then((result) => reject(new Error(`server exited: ${result.stderr}`)));
  });
  const gql = async (query: string, variables?: Record<string, unknown>) =>
    (await (await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query, variables }) })).json()) as any;
  return {
    child,
    t: {
      url,
      gql,
      ok: async (query, variables) => {
        const result = await gql(query, variables);
        if (result.errors) throw new Error(JSON.stringify(result.errors));
        return result.data;
      },
    },
  };
}
