/**
 * The one place that turns orchestrator errors into GraphQL errors with `extensions.code`.
 * Every RunboardError declares its category, and CODES maps each category: a new category fails to
 * compile until it is mapped here. `internal` maps to null: the server's own fault, masked as
 * "Unexpected error." like anything else unexpected, so no path or stack reaches a client.
 */
import { PothosValidationError } from '@pothos/core';
import { GraphQLError } from 'graphql';
import { createGraphQLError, maskError as maskUnexpected } from 'graphql-yoga';
import { ConflictError, InvalidInputError, NotFoundError, ReadTimeoutError, RunboardError, type ErrorCategory } from '../orchestrator/errors.js';
import { SubscriberTooSlowError } from '../orchestrator/event-stream.js';

/** Every `extensions.code` runboard sends. The QUERY_* codes come from the request limits (plugins/use-limits.ts), BAD_REQUEST from the transport (server.ts). */
export type ErrorCode = 'BAD_USER_INPUT' | 'NOT_FOUND' | 'CONFLICT' | 'TIMEOUT' | 'UNAUTHENTICATED' | 'FORBIDDEN' | 'SUBSCRIBER_TOO_SLOW' | 'QUERY_TOO_COMPLEX' | 'QUERY_TOO_EXPENSIVE' | 'BAD_REQUEST';

/** The code of each category; null for the server's own faults, which are masked. */
const CODES: Readonly<Record<ErrorCategory, ErrorCode | null>> = {
  invalid_input: 'BAD_USER_INPUT',
  not_found: 'NOT_FOUND',
  conflict: 'CONFLICT',
  timeout: 'TIMEOUT',
  unauthenticated: 'UNAUTHENTICATED',
  forbidden: 'FORBIDDEN',
  subscriber_too_slow: 'SUBSCRIBER_TOO_SLOW',
  internal: null,
};

/** Extra `extensions` some errors carry for the caller. */
function extensionsOf(error: RunboardError): Record<string, unknown> | undefined {
  if (error instanceof InvalidInputError) return error.field ? { field: error.field } : undefined;
  if (error instanceof NotFoundError) return { kind: error.kind };
  if (error instanceof ConflictError) return error.paths.length ? { paths: error.paths } : undefined;
  if (error instanceof ReadTimeoutError) return { budgetMs: error.budgetMs };
  if (error instanceof SubscriberTooSlowError) return { resumeFrom: error.resumeFrom };
  return undefined;
}

function describe(error: unknown): { code: ErrorCode; extensions?: Record<string, unknown> } | undefined {
  if (error instanceof PothosValidationError) return { code: 'BAD_USER_INPUT' };
  if (!(error instanceof RunboardError)) return undefined;
  const code = CODES[error.category];
  return code ? { code, extensions: extensionsOf(error) } : undefined;
}

/** The error a GraphQL error wraps, or the error itself. */
export function originalError(error: unknown): unknown {
  return error instanceof GraphQLError && error.originalError ? error.originalError : error;
}

/** True for errors that are a client's mistake or a refused state, which need no server-side log. */
export function isExpectedError(error: unknown): boolean {
  return describe(originalError(error)) !== undefined;
}

/** yoga's `maskedErrors.maskError`. */
export function maskError(error: unknown, message: string, isDev?: boolean): Error {
  const original = originalError(error);
  const described = describe(original);
  if (!described) return maskUnexpected(error, message, isDev);
  const located = error instanceof GraphQLError ? error : undefined;
  return createGraphQLError((original as Error).message, {
    nodes: located?.nodes,
    path: located?.path,
    extensions: { code: described.code, ...described.extensions },
  });
}

/** Awaits a lookup and turns `null` into NOT_FOUND. */
export async function orNotFound<T>(kind: string, id: string, lookup: Promise<T | null>): Promise<T> {
  const found = await lookup;
  if (found === null) throw new NotFoundError(kind, id);
  return found;
}
