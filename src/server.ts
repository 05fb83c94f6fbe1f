/**
 * Composes runboard's HTTP server: graphql-yoga on Node's HTTP server with GraphiQL at /graphql,
 * and graphql-ws serving subscriptions over WebSocket on the same path and port.
 */
import { mkdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { renderGraphiQL } from '@graphql-yoga/render-graphiql';
import type { ExecutionArgs } from 'graphql';
import type { OperationResult } from 'graphql-ws';
import { useServer } from 'graphql-ws/use/ws';
import { createLogger, createYoga, type YogaLogger } from 'graphql-yoga';
import { WebSocketServer } from 'ws';
import type { Config } from './config.js';
import { Database } from './orchestrator/db.js';
import { openRepository } from './orchestrator/git.js';
import { Orchestrator } from './orchestrator/index.js';
import { useVariableErrorCodes } from './plugins/use-variable-error-codes.js';
import { schema, type Context } from './schema/index.js';
import { isExpectedError, maskError } from './schema/errors.js';

export interface ServerOptions {
  /** Emit Prisma query events on `orchestrator.db.client` (tests count SQL with them). @default false */
  logQueries?: boolean;
  /** Environment added to the server's own for every agent (tests point pi at a scripted model). */
  agentEnv?: Readonly<Record<string, string>>;
}

export interface RunboardServer {
  /** The GraphQL endpoint, e.g. http://127.0.0.1:4000/graphql. */
  readonly url: string;
  readonly orchestrator: Orchestrator;
  /** Stops accepting, closes sockets, ends child processes and closes the database. Idempotent. */
  close(): Promise<void>;
}

/** Opens the repository and database, then listens. Rejects if the repository is unusable. */
export async function startServer(config: Config, options: ServerOptions = {}): Promise<RunboardServer> {
  const repository = await openRepository(config.repo);
  mkdirSync(config.dataDir, { recursive: true });
  const db = await Database.open({ url: config.databaseUrl, logQueries: options.logQueries });
  const orchestrator = new Orchestrator({
    db,
    repository,
    dataDir: config.dataDir,
    agentCommand: config.agentCommand,
    agentArgs: config.agentArgs,
    agentEnv: options.agentEnv,
    maxConcurrentRuns: config.maxConcurrentRuns,
    playtestCommand: config.playtestCommand,
  });
  await orchestrator.start();
  const context = (): Context => ({ orchestrator, prisma: db.client });

  const yoga = createYoga({
    schema,
    graphqlEndpoint: '/graphql',
    landingPage: false,
    maskedErrors: { maskError },
    logging: quietAboutExpectedErrors(createLogger('info')),
    graphiql: { title: 'runboard', subscriptionsProtocol: 'WS' },
    renderGraphiQL,
    context,
    plugins: [useVariableErrorCodes()],
  });

  const http = createServer(yoga);
  const wss = new WebSocketServer({ server: http, path: yoga.graphqlEndpoint });
  const ws = useServer<Record<string, unknown> | undefined>(
    {
      execute: (args) => (args.rootValue as EnvelopedRoot).execute(args),
      subscribe: (args) => (args.rootValue as EnvelopedRoot).subscribe(args),
      onSubscribe: async (ctx, _id, params) => {
        const enveloped = yoga.getEnveloped({ ...ctx, req: ctx.extra.request, socket: ctx.extra.socket, params });
        const args: ExecutionArgs = {
          schema: enveloped.schema,
          operationName: params.operationName,
          document: enveloped.parse(params.query),
          variableValues: params.variables,
          contextValue: await enveloped.contextFactory(),
          rootValue: { execute: enveloped.execute, subscribe: enveloped.subscribe } satisfies EnvelopedRoot,
        };
        const errors = enveloped.validate(args.schema, args.document);
        return errors.length ? errors : args;
      },
    },
    wss,
  );

  await listen(http, config.port, config.host);
  const { port } = http.address() as AddressInfo;
  const host = config.host.includes(':') ? `[${config.host}]` : config.host;

  let closing: Promise<void> | undefined;
  return {
    url: `http://${host}:${port}${yoga.graphqlEndpoint}`,
    orchestrator,
    close: () =>
      (closing ??= (async () => {
        const stopped = new Promise<void>((resolve) => http.close(() => resolve()));
        for (const client of wss.clients) client.close(1001, 'server shutting down');
        await ws.dispose();
        http.closeAllConnections();
        await stopped;
        await orchestrator.shutdown();
      })()),
  };
}

/** yoga's enveloped execute/subscribe, carried to graphql-ws through `rootValue` as yoga's docs show. */
interface EnvelopedRoot {
  execute: (args: ExecutionArgs) => OperationResult;
  subscribe: (args: ExecutionArgs) => OperationResult;
}

/** yoga logs every error it masks or rewrites; a NOT_FOUND or CONFLICT is the client's business, not an incident. */
function quietAboutExpectedErrors(logger: YogaLogger): YogaLogger {
  return { ...logger, error: (...args: unknown[]) => (args.some(isExpectedError) ? undefined : logger.error(...args)) };
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}
