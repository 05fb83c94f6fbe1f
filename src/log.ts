/**
 * runboard's logger: pino, human-readable (pino-pretty, in process) when stdout is a terminal and
 * JSON lines otherwise. Secrets are redacted wherever they appear in a log record's fields.
 *
 * What may be logged at info: operation names, durations, outcomes, ids and statuses. Prompts,
 * agent output and GraphQL variables never are.
 */
import { createRequire } from 'node:module';
import { pino, type DestinationStream, type Level, type LevelWithSilent, type Logger } from 'pino';

/**
 * pino-pretty, loaded on first use: only a terminal needs it, and loading it costs every other start
 * (servers, tests, the bundle) tens of milliseconds. A synchronous require keeps createLogger synchronous.
 */
const loadPretty = (): typeof import('pino-pretty') => createRequire(import.meta.url)('pino-pretty');

export type { Logger };

/** The levels LOG_LEVEL accepts, most severe first. */
export const LOG_LEVELS: readonly LevelWithSilent[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** Fields whose values are replaced by `[redacted]`, at the top level and one level down. */
export const REDACTED_PATHS: readonly string[] = [
  'authorization',
  'Authorization',
  'token',
  'RUNBOARD_TOKEN',
  '*.authorization',
  '*.Authorization',
  '*.token',
  '*.RUNBOARD_TOKEN',
  '*.headers.authorization',
  'headers.authorization',
];

/** Fields that request and run lines also spell out in their message; human-readable output shows only the message. */
const SPELLED_OUT = ['operation', 'type', 'transport', 'durationMs', 'outcome', 'codes', 'runId', 'cardId', 'status'];

export interface LogOptions {
  /** @default 'info' */
  level?: LevelWithSilent;
  /** Where records go; tests pass a stream to read them. @default stdout */
  destination?: DestinationStream;
  /** Human-readable lines instead of JSON. @default true when writing to stdout and stdout is a terminal */
  pretty?: boolean;
  /** Fields every record carries (a cluster node's `node` and `role`). @default none */
  base?: Record<string, string>;
}

/** A pino logger as described above. Writes synchronously, so nothing is lost on `process.exit`. */
export function createLogger({ level = 'info', destination, pretty: human = destination === undefined && process.stdout.isTTY === true, base }: LogOptions = {}): Logger {
  const options = { level, base, redact: { paths: [...REDACTED_PATHS], censor: '[redacted]' } };
  if (!human) return pino(options, destination ?? pino.destination({ dest: 1, sync: true }));
  const stream = loadPretty()({ destination: destination ?? 1, sync: true, singleLine: true, translateTime: 'SYS:HH:MM:ss.l', ignore: ['pid', 'hostname', ...SPELLED_OUT].join(',') });
  return pino(options, stream);
}

/** True for a LOG_LEVEL value pino accepts. */
export function isLogLevel(value: string): value is LevelWithSilent {
  return (LOG_LEVELS as readonly string[]).includes(value);
}

export type { Level, LevelWithSilent };
