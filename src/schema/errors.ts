/**
 * The one place that turns orchestrator errors into GraphQL errors with `extensions.code`.
 * Anything unexpected is masked: the client sees "Unexpected error." and never a stack trace.
 */
import { PothosValidationError } from '@pothos/core';
import { GraphQLError } from 'graphql';
import { createGraphQLError, maskError as maskUnexpected } from 'graphql-yoga';
import { ConflictError, InvalidInputError, NotFoundError, ReadTimeoutError, RunboardError } from '../orchestrator/errors.js';
import { SubscriberTooSlowError } from '../orchestrator/event-stream.js';
import { ForbiddenError, UnauthenticatedError } from './auth.js';

export type ErrorCode = 'BAD_USER_INPUT' | 'NOT_FOUND' | 'CONFLICT' | 'TIMEOUT' | 'UNAUTHENTICATED' | 'FORBIDDEN' | 'SUBSCRIBER_TOO_SLOW';

function describe(error: unknown): { code: ErrorCode; extensions?: Record<string, unknown> } | undefined {
  if (error instanceof InvalidInputError) return { code: 'BAD_USER_INPUT', extensions: error.field ? { field: error.field } : undefined };
  if (error instanceof PothosValidationError) return { code: 'BAD_USER_INPUT' };
  if (error instanceof NotFoundError) return { code: 'NOT_FOUND', extensions: { kind: error.kind } };
  if (error instanceof ConflictError) return { code: 'CONFLICT', extensions: error.paths.length ? { paths: error.paths } : undefined };
  if (error instanceof ReadTimeoutError) return { code: 'TIMEOUT', extensions: { budgetMs: error.budgetMs } };
  if (error instanceof UnauthenticatedError) return { code: 'UNAUTHENTICATED' };
  if (error instanceof ForbiddenError) return { code: 'FORBIDDEN' };
  if (error instanceof SubscriberTooSlowError) return { code: 'SUBSCRIBER_TOO_SLOW', extensions: { resumeFrom: error.resumeFrom } };
  if (error instanceof RunboardError) return { code: 'BAD_USER_INPUT' };
  return undefined;
}

/** True for errors that are a client's mistake or a refused state, which need no server-side log. */
export function isExpectedError(error: unknown): boolean {
  return describe(error instanceof GraphQLError ? error.originalError : error) !== undefined;
}

/** yoga's `maskedErrors.maskError`. */
export function maskError(error: unknown, message: string, isDev?: boolean): Error {
  const original = error instanceof GraphQLError ? error.originalError : error;
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
