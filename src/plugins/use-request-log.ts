/**
 * One log line per GraphQL operation, over HTTP or graphql-ws: its name and type, the transport,
 * the duration and the outcome (`ok`, or `error` with the error codes). A subscription's line is
 * written when it ends, so its duration is how long it was open. Variables and headers are never
 * read, so neither they nor a token can reach the log.
 */
import { getOperationAST, type DocumentNode, type ExecutionResult, type GraphQLError } from 'graphql';
import { isAsyncIterable, type Plugin } from 'graphql-yoga';
import type { Logger } from 'pino';

export interface RequestLogOptions {
  logger: Logger;
  /** The code logged for an error (before masking). @default its `extensions.code`, else INTERNAL_SERVER_ERROR */
  errorCode?: (error: GraphQLError | Error) => string;
}

/** What is known about one operation while it runs. */
interface Entry {
  readonly start: number;
  readonly transport: string;
  operation: string | null;
  type: string | null;
  codes: Set<string>;
  done: boolean;
}

/** The graphql-ws server marks its contexts with this, so lines can say which transport carried them. */
export interface TransportContext {
  transport?: 'http' | 'ws';
  params?: { operationName?: string | null };
}

const defaultCode = (error: GraphQLError | Error) => String(('extensions' in error && error.extensions?.code) || 'INTERNAL_SERVER_ERROR');

export function useRequestLog({ logger, errorCode = defaultCode }: RequestLogOptions): Plugin {
  const entries = new WeakMap<object, Entry>();
  const entryFor = (context: TransportContext): Entry => {
    let entry = entries.get(context);
    if (!entry) {
      const operation = context.params?.operationName || null;
      entry = { start: performance.now(), transport: context.transport ?? 'http', operation, type: null, codes: new Set(), done: false };
      entries.set(context, entry);
    }
    return entry;
  };
  const describe = (entry: Entry, document: DocumentNode) => {
    const operation = getOperationAST(document, entry.operation ?? undefined);
    entry.operation ??= operation?.name?.value ?? null;
    entry.type ??= operation?.operation ?? null;
  };
  const collect = (entry: Entry, result: ExecutionResult | undefined) => {
    for (const error of result?.errors ?? []) entry.codes.add(errorCode(error));
  };
  /** A single result finishes the entry; a stream (a subscription, @defer) finishes when it ends. */
  const settle = (entry: Entry, result: ExecutionResult | AsyncIterable<ExecutionResult>) => {
    if (!isAsyncIterable(result)) return void (collect(entry, result), finish(entry));
    return { onNext: ({ result }: { result: ExecutionResult }) => collect(entry, result), onEnd: () => finish(entry) };
  };
  const finish = (entry: Entry) => {
    if (entry.done) return;
    entry.done = true;
    const outcome = entry.codes.size ? 'error' : 'ok';
    const durationMs = Math.round((performance.now() - entry.start) * 10) / 10;
    const fields = { operation: entry.operation, type: entry.type, transport: entry.transport, durationMs, outcome, ...(entry.codes.size ? { codes: [...entry.codes] } : {}) };
    const said = outcome === 'ok' ? 'ok' : [...entry.codes].join(',');
    logger.info(fields, `${entry.type ?? 'operation'} ${entry.operation ?? '(anonymous)'} ${said} in ${durationMs} ms (${entry.transport})`);
  };

  return {
    onParse: ({ context }) => {
      const entry = entryFor(context as TransportContext);
      return ({ result }) => {
        if (result instanceof Error) {
          entry.codes.add('GRAPHQL_PARSE_FAILED');
          finish(entry);
        } else if (result) describe(entry, result);
      };
    },
    onValidate: ({ context }) => ({ valid }) => {
      if (valid) return;
      const entry = entryFor(context as TransportContext);
      entry.codes.add('GRAPHQL_VALIDATION_FAILED');
      finish(entry);
    },
    onExecute: ({ args }) => {
      const entry = entryFor(args.contextValue as TransportContext);
      describe(entry, args.document);
      return { onExecuteDone: ({ result }) => settle(entry, result) };
    },
    onSubscribe: ({ args }) => {
      const entry = entryFor(args.contextValue as TransportContext);
      describe(entry, args.document);
      return {
        onSubscribeResult: ({ result }) => settle(entry, result),
        onSubscribeError: ({ error }) => {
          entry.codes.add(errorCode(error as Error));
          finish(entry);
        },
      };
    },
  };
}
