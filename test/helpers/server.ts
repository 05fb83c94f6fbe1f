/** Starts the real server on an ephemeral port and talks to it over HTTP with fetch. */
import path from 'node:path';
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

/** Options: reuse a `repo` or `dataDir` (e.g. to restart on the same data); both are removed on close only if made here. */
export async function startTestServer(options: ServerOptions & { repo?: string; dataDir?: string; env?: Record<string, string> } = {}): Promise<TestServer> {
  const repo = options.repo ?? (await makeRepo());
  const dataDir = options.dataDir ?? (await tempDir('runboard-data-'));
  const config = loadConfig(['--port', '0', '--repo', repo, '--data-dir', dataDir], options.env ?? {});
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

export const projectRoot = path.resolve(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '../..');
