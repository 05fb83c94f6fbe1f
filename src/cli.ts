#!/usr/bin/env node
/** `runboard`: parse flags and environment, start the server, stop cleanly on SIGINT/SIGTERM. */
import { ConfigError, helpText, loadConfig, nodeLogFields } from './config.js';
import { createLogger } from './log.js';
import { DataDirInUseError, RunboardError } from './orchestrator/errors.js';

/** How long a graceful shutdown may take before the process exits anyway. @default 15_000 // ms */
const SHUTDOWN_TIMEOUT_MS = 15_000;

async function main(argv: string[]): Promise<void> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(helpText());
    return;
  }
  let config;
  try {
    config = loadConfig(argv, process.env);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`runboard: ${error.message}\n`);
    process.exit(2);
  }

  const logger = createLogger({ level: config.logLevel, base: nodeLogFields(config) });
  // The start and stop lines are the command's own output: shown even when LOG_LEVEL is quieter than info.
  const say = logger.child({}, { level: 'info' });
  let server;
  try {
    // Loaded only now, so --help and a bad flag answer at once instead of after loading GraphQL and Prisma.
    const { startServer } = await import('./server.js');
    server = await startServer(config, { logger });
  } catch (error) {
    // Expected start-up failures (not a repository, port in use, a HOST that cannot be bound) get one line, not a stack trace.
    const known = error instanceof RunboardError || error instanceof ConfigError || (error as NodeJS.ErrnoException).code === 'EADDRINUSE';
    process.stderr.write(`runboard: ${known ? (error as Error).message : (error as Error).stack}\n`);
    // A bad option, or a data dir another server holds, is a usage error.
    process.exit(error instanceof ConfigError || error instanceof DataDirInUseError ? 2 : 1);
  }
  say.info(`GraphiQL at ${server.url} (repository ${config.repo}, data ${config.dataDir})`);

  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    // A second signal means "now": skip the graceful path.
    if (stopping) process.exit(130);
    stopping = true;
    const { agents, playtests } = server.orchestrator.activeWork();
    say.info(`${signal} received: stopping ${count(agents, 'agent')} and ${count(playtests, 'playtest')}`);
    setTimeout(() => {
      say.error(`shutdown did not finish within ${SHUTDOWN_TIMEOUT_MS / 1000} s; exiting anyway`);
      process.exit(1);
    }, SHUTDOWN_TIMEOUT_MS).unref();
    server.close().then(
      () => {
        say.info('stopped');
        process.exit(0);
      },
      (error: unknown) => {
        say.error({ err: error }, `shutdown failed: ${(error as Error).message}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}

// Not a top-level await: the bundle is a CommonJS script (src/launcher.ts). A failure still ends the process.
void main(process.argv.slice(2));
