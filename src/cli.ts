#!/usr/bin/env node
/** `runboard`: parse flags and environment, start the server, stop cleanly on SIGINT/SIGTERM. */
import { ConfigError, helpText, loadConfig } from './config.js';
import { RunboardError } from './orchestrator/errors.js';
import { startServer } from './server.js';

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

  let server;
  try {
    server = await startServer(config);
  } catch (error) {
    // Expected start-up failures (not a repository, port in use) get one line, not a stack trace.
    const known = error instanceof RunboardError || (error as NodeJS.ErrnoException).code === 'EADDRINUSE';
    process.stderr.write(`runboard: ${known ? (error as Error).message : (error as Error).stack}\n`);
    process.exit(1);
  }
  process.stdout.write(`runboard: GraphiQL at ${server.url} (repository ${config.repo}, data ${config.dataDir})\n`);

  const stop = (signal: NodeJS.Signals) => {
    process.stdout.write(`runboard: ${signal} received, shutting down\n`);
    // A second signal means "now": skip the graceful path.
    process.once(signal, () => process.exit(130));
    server.close().then(
      () => process.exit(0),
      (error: unknown) => {
        process.stderr.write(`runboard: shutdown failed: ${(error as Error).message}\n`);
        process.exit(1);
      },
    );
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

await main(process.argv.slice(2));
