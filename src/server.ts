/**
 * Composes runboard's HTTP server: graphql-yoga on Node's HTTP server with the board UI at /, GraphiQL at /graphql,
 * graphql-ws serving subscriptions over WebSocket on the same path and port, and the plugins for
 * health, request logs and error codes.
 */
import { mkdirSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ExecutionArgs, GraphQLError } from 'graphql';
import type { OperationResult } from 'graphql-ws';
import { useServer } from 'graphql-ws/use/ws';
import { createYoga, type YogaLogger } from 'graphql-yoga';
import type { DestinationStream } from 'pino';
import { WebSocketServer } from 'ws';
import { createAgentCatalog } from './agents/index.js';
import { ConfigError, isClusterNode, isLoopbackHost, nodeLogFields, type Config } from './config.js';
import { guardConnections, type ConnectionGuardOptions } from './connection-guard.js';
import { createLogger, type Logger } from './log.js';
import { lockDataDir } from './orchestrator/data-dir-lock.js';
import { Database } from './orchestrator/db.js';
import { openRepository } from './orchestrator/git.js';
import { checkReadiness } from './orchestrator/health.js';
import { Orchestrator } from './orchestrator/index.js';
import type { ClusterNode } from './cluster/join.js';
import { graphiqlOptions, renderGraphiQLOnFirstUse } from './plugins/graphiql.js';
import { useAgentScope } from './plugins/use-agent-scope.js';
import { authenticate, HEALTH_PATHS, useAuthentication, type AuthenticationOptions } from './plugins/use-authentication.js';
import { useCSRFRefusalForAllButEventSource, useSSEEventIds } from './plugins/use-event-source.js';
import { useHealth } from './plugins/use-health.js';
import { useLimits } from './plugins/use-limits.js';
import { useRequestLog, type TransportContext } from './plugins/use-request-log.js';
import { malformedTarget, refusal, useRequestOrigin, type RequestOriginOptions } from './plugins/use-request-origin.js';
import { graphqlWsNext, useSharedSubscriptions } from './plugins/use-shared-subscriptions.js';
import { useVariableErrorCodes } from './plugins/use-variable-error-codes.js';
import { loadWebApp, useWebApp } from './plugins/use-web-app.js';
import { UnauthenticatedError } from './schema/auth.js';
import { parseLastEventId } from './schema/context.js';
import { schema, type Context } from './schema/index.js';
import { isExpectedError, maskError, originalError, type ErrorCode } from './schema/errors.js';

export interface ServerOptions {
  /** Emit Prisma query events on `orchestrator.db.client` (tests count SQL with them). @default false */
  logQueries?: boolean;
  /** Environment added to the server's own for every agent (tests point pi at a scripted model). */
  agentEnv?: Readonly<Record<string, string>>;
  /** The logger for requests, run status changes and yoga's own messages; the CLI passes its own. @default JSON lines at config.logLevel to `logStream` */
  logger?: Logger;
  /** Where the default logger writes JSON lines (tests read them). @default none: an embedded server logs nothing unless asked */
  logStream?: DestinationStream;
  /** Overrides of the socket bounds (tests shorten the stall timeout). @default maxConnections from config, the rest as in connection-guard.ts */
  connectionGuard?: Partial<Omit<ConnectionGuardOptions, 'logger'>>;
}

/**
 * Node's own timeouts, shortened so a silent or slow client cannot hold a socket for long: headers
 * must arrive within 10 s and a whole request within 30 s (Node's defaults are 60 s and 300 s,
 * checked every 30 s). They do not apply once a response streams (SSE) or a WebSocket is open.
 */
const HTTP_TIMEOUTS = { headersTimeout: 10_000, requestTimeout: 30_000, keepAliveTimeout: 5_000, connectionsCheckingInterval: 1_000 } as const;

export interface RunboardServer {
  /** The GraphQL endpoint, e.g. http://127.0.0.1:4000/graphql. */
  readonly url: string;
  readonly orchestrator: Orchestrator;
  /** Stops accepting, closes sockets, ends child processes and closes the database. Idempotent. */
  close(): Promise<void>;
}

/** Opens the repository and database, then listens. Rejects if the repository is unusable. */
export async function startServer(config: Config, options: ServerOptions = {}): Promise<RunboardServer> {
  const logger = options.logger ?? createLogger({ level: options.logStream ? config.logLevel : 'silent', destination: options.logStream, pretty: false, base: nodeLogFields(config) });
  // One process checks the repository before it takes the data dir; a cluster node opens its clone of the remote after.
  const localRepository = isClusterNode(config) ? null : await openRepository(config.repo);
  mkdirSync(config.dataDir, { recursive: true });
  const lock = lockDataDir(config.dataDir);
  let db: Database;
  let cluster: ClusterNode | null = null;
  try {
    db = await Database.open({ url: config.databaseUrl, logQueries: options.logQueries });
    // Loaded only here: the cluster's clients (BullMQ, ioredis, pg) are a third of the bundle, and the embedded default never needs them.
    if (isClusterNode(config)) cluster = await (await import('./cluster/join.js')).joinCluster(config, db, logger, () => orchestrator);
  } catch (error) {
    await cluster?.close();
    await db!?.close();
    lock.release();
    throw error;
  }
  const repository = cluster?.repository ?? localRepository!;
  const orchestrator = new Orchestrator({
    db,
    repository,
    dataDir: config.dataDir,
    agents: createAgentCatalog({
      piCommand: config.agentCommand,
      piArgs: config.agentArgs,
      claudeCommand: config.claudeCommand,
      claudeArgs: config.claudeArgs,
      codexCommand: config.codexCommand,
      agentEnv: options.agentEnv,
      agents: config.agents,
      defaultAgent: config.defaultAgent,
    }),
    agentEnv: options.agentEnv,
    maxConcurrentRuns: config.maxConcurrentRuns,
    playtestCommand: config.playtestCommand,
    logger,
    bus: cluster?.bus.bus,
    workspaces: cluster?.workspaces,
    cluster: cluster?.orchestrator,
  });
  // Before start, so the statuses start-up recovery changes are logged too.
  const stopLoggingRuns = orchestrator.bus.subscribe('run-updated', '*', ({ runId, cardId, status }) => {
    logger.info({ runId, cardId, status }, `run ${runId} of card ${cardId}: ${status}`);
  });
  const webApp = loadWebApp();
  const auth: AuthenticationOptions = {
    operatorToken: config.token ?? undefined,
    agentForToken: (token) => orchestrator.runs.agentForToken(token),
    // The page's own paths; the API is at /graphql, never among them.
    isPublic: (pathname) => HEALTH_PATHS.has(pathname) || webApp.serves(pathname),
  };
  const origin: RequestOriginOptions = { loopbackBind: isLoopbackHost(config.host), tokenRequired: config.token !== null };
  /** HTTP carries credentials in a header, graphql-ws in its connection_init payload. */
  const context = async (initial: { request?: Request; connectionParams?: Record<string, unknown> }): Promise<Context> => {
    const authorization = initial.connectionParams ? initial.connectionParams.authorization : (initial.request?.headers.get('authorization') ?? undefined);
    const principal = await authenticate(authorization, auth);
    if (!principal) throw new UnauthenticatedError('missing or wrong token');
    return { orchestrator, prisma: db.client, principal, lastEventId: parseLastEventId(initial.request?.headers.get('last-event-id')) };
  };

  /** Server faults masked as internal errors since start, shown in /readyz. */
  const faults = { internalErrors: 0 };
  const yoga = createYoga({
    schema,
    graphqlEndpoint: '/graphql',
    landingPage: false,
    maskedErrors: { maskError },
    logging: yogaLogger(logger, faults),
    graphiql: graphiqlOptions({ tokenRequired: config.token !== null }),
    renderGraphiQL: renderGraphiQLOnFirstUse,
    context,
    maxRequestBodySize: config.maxBodyBytes,
    plugins: [
      useRequestOrigin(origin),
      useHealth({ check: async () => ({ ...(await checkReadiness({ db, repositoryRoot: repository.root, ...cluster?.readiness })), internalErrors: faults.internalErrors }) }),
      useWebApp(webApp),
      useAuthentication(auth),
      useCSRFRefusalForAllButEventSource(),
      useSSEEventIds(),
      ...useLimits({ maxDepth: config.maxDepth, maxAliases: config.maxAliases, maxDirectives: config.maxDirectives, maxCost: config.maxCost }),
      useAgentScope(),
      useSharedSubscriptions(), // after the plugins that may refuse a subscription
      useVariableErrorCodes(),
      useRequestLog({ logger, errorCode: codeOf }), // after useVariableErrorCodes, so it sees the codes that plugin adds
    ],
  });

  // Requests wait until start-up recovery is done, so nobody sees a run an earlier server left RUNNING.
  let markReady!: () => void;
  const ready = new Promise<void>((resolve) => (markReady = resolve));
  const http = createServer(HTTP_TIMEOUTS, (req, res) => {
    // yoga builds a URL from Host and the request target; one that does not parse would be a 500 with a stack trace.
    const malformed = malformedTarget(req);
    if (malformed) {
      logger.warn({ host: req.headers.host?.slice(0, 200), remoteAddress: req.socket.remoteAddress }, `refused with 400: ${malformed}`);
      const body = JSON.stringify({ errors: [{ message: malformed, extensions: { code: 'BAD_REQUEST' satisfies ErrorCode } }] });
      res.writeHead(400, { 'content-type': 'application/json; charset=utf-8', connection: 'close' }).end(body);
      return;
    }
    void ready.then(() => yoga(req, res));
  });
  const guard = guardConnections(http, { maxConnections: config.maxConnections, ...options.connectionGuard, logger });
  // Listening before the WebSocket server exists: ws re-emits the HTTP server's errors, and graphql-ws
  // prints them with a stack trace, where a HOST that cannot be bound deserves one line.
  try {
    await listen(http, config.port, config.host);
  } catch (error) {
    guard.dispose();
    await orchestrator.shutdown();
    lock.release();
    throw error;
  }
  http.on('error', (error) => logger.error({ err: error }, `HTTP server: ${error.message}`));
  const wss = new WebSocketServer({
    server: http,
    path: yoga.graphqlEndpoint,
    // Frames are capped like request bodies, before ws buffers them: a bigger one closes the socket with 1009.
    maxPayload: config.maxBodyBytes,
    verifyClient: ({ req }: { req: IncomingMessage }) => malformedTarget(req) === null && refusal(req.headers, req.socket.remoteAddress, origin) === null,
  });
  const ws = useServer<Record<string, unknown> | undefined>(
    {
      onConnect: async (ctx) => {
        await ready;
        if (await authenticate(ctx.connectionParams?.authorization, auth)) return true;
        // graphql-ws would close with 4403; 4401 with a reason tells the client what to fix.
        ctx.extra.socket.close(4401, 'UNAUTHENTICATED: missing or wrong token in connection_init { authorization }');
        return false;
      },
      execute: (args) => (args.rootValue as EnvelopedRoot).execute(args),
      subscribe: (args) => (args.rootValue as EnvelopedRoot).subscribe(args),
      onSubscribe: async (ctx, id, params) => {
        const transport: TransportContext['transport'] = 'ws';
        // liveNext: a caught-up runEvents subscription is written to straight from the publish (use-shared-subscriptions.ts).
        const liveNext = graphqlWsNext(ctx.extra.socket, ctx.extra.request.socket, id);
        const enveloped = yoga.getEnveloped({ ...ctx, connectionParams: ctx.connectionParams ?? {}, req: ctx.extra.request, socket: ctx.extra.socket, params, transport, liveNext });
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
  // Registered after useServer, so it replaces graphql-ws's handler, which prints a stack trace with
  // console.error for what is the peer's fault (a frame over maxPayload); ws has already closed the socket.
  wss.on('connection', (socket, req) => {
    socket.removeAllListeners('error');
    socket.on('error', (error) => logger.warn({ remoteAddress: req.socket.remoteAddress }, `WebSocket closed: ${error.message}`));
  });

  const { port } = http.address() as AddressInfo;
  const host = config.host.includes(':') ? `[${config.host}]` : config.host;
  const url = `http://${host}:${port}${yoga.graphqlEndpoint}`;
  orchestrator.runs.serverUrl = url; // what agents call the board at (RUNBOARD_URL)
  try {
    await orchestrator.start();
  } catch (error) {
    http.close();
    guard.dispose();
    await orchestrator.shutdown();
    lock.release();
    throw error;
  }
  markReady();

  let closing: Promise<void> | undefined;
  return {
    url,
    orchestrator,
    close: () =>
      (closing ??= (async () => {
        const stopped = new Promise<void>((resolve) => http.close(() => resolve()));
        for (const client of wss.clients) client.close(1001, 'server shutting down');
        await ws.dispose();
        http.closeAllConnections();
        await stopped;
        guard.dispose();
        await orchestrator.shutdown();
        await cluster?.close();
        lock.release();
        stopLoggingRuns();
      })()),
  };
}

/** yoga's enveloped execute/subscribe, carried to graphql-ws through `rootValue` as yoga's docs show. */
interface EnvelopedRoot {
  execute: (args: ExecutionArgs) => OperationResult;
  subscribe: (args: ExecutionArgs) => OperationResult;
}

/**
 * yoga's messages, through pino. yoga logs every error it masks or rewrites; a NOT_FOUND or CONFLICT
 * is the client's business, not an incident, so expected errors go to debug. Anything else is a
 * server fault the client saw only as "Unexpected error.": logged at error with its cause, and counted.
 */
function yogaLogger(logger: Logger, faults: { internalErrors: number }): YogaLogger {
  const at = (level: 'debug' | 'info' | 'warn' | 'error') => (...args: unknown[]) => (logger[level] as (...a: unknown[]) => void)(...args);
  const debug = at('debug');
  const error = (...args: unknown[]) => {
    if (args.some(isExpectedError)) return debug(...args);
    faults.internalErrors += 1;
    const cause = originalError(args.find((arg) => arg instanceof Error));
    if (!(cause instanceof Error)) return at('error')(...args);
    logger.error({ err: cause, code: 'INTERNAL_SERVER_ERROR', internalErrors: faults.internalErrors }, `internal error, masked for the client: ${cause.message}`);
  };
  return { debug, info: at('info'), warn: at('warn'), error };
}

/** The code an error will carry once masked, for the request log (which sees errors before masking). */
function codeOf(error: GraphQLError | Error): string {
  return String((maskError(error, 'Unexpected error.') as GraphQLError).extensions?.code ?? 'INTERNAL_SERVER_ERROR');
}

/** Binding failures caused by HOST or PORT (no such interface or name, a privileged port) are bad values: ConfigError. */
const BAD_VALUE_ERRORS: Record<string, keyof Config> = { EADDRNOTAVAIL: 'host', ENOTFOUND: 'host', EAI_AGAIN: 'host', EAI_FAIL: 'host', EACCES: 'port' };

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const failed = (error: NodeJS.ErrnoException) => {
      const option = BAD_VALUE_ERRORS[error.code ?? ''];
      reject(option ? new ConfigError(`cannot listen on ${option === 'host' ? `HOST "${host}"` : `PORT ${port}`}: ${error.message}`) : error);
    };
    server.once('error', failed);
    server.listen(port, host, () => {
      server.off('error', failed);
      resolve();
    });
  });
}
