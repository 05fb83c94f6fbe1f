/**
 * Who is asking: authentication's outcome as the resolvers see it. The operator may do everything; a
 * run's agent acts as an Actor of kind 'agent', and the orchestrator enforces what it may do
 * (orchestrator/actor.ts). Which root fields an agent may call at all is also checked before
 * execution by plugins/use-agent-scope.ts, as a first, default-deny line.
 */
import { requireOwnCard, requireOwnRun, type Actor } from '../orchestrator/actor.js';
import { RunboardError } from '../orchestrator/errors.js';
import type { Context } from './context.js';

/** The authenticated caller; the same shape as the orchestrator's Actor, which resolvers pass on. */
export type Principal = Actor;

/** No credentials, or wrong ones. */
export class UnauthenticatedError extends RunboardError {
  readonly category = 'unauthenticated';
}

/** Mutations an agent may call (the orchestrator limits them to its own card). */
export const AGENT_MUTATIONS: ReadonlySet<string> = new Set(['addComment', 'updateCard', 'addCardTags', 'removeCardTags', 'moveCard']);
/** Subscriptions an agent may open (on its own run or card only). */
export const AGENT_SUBSCRIPTIONS: ReadonlySet<string> = new Set(['runEvents', 'runUpdated']);

/**
 * Run fields that hold a run's work or conversation. An agent reads them on its own run only; on any
 * other run each is FORBIDDEN (and, being non-null, takes that run out of the answer with it).
 */
export const AGENT_PRIVATE_RUN_FIELDS: ReadonlySet<string> = new Set(['prompt', 'events', 'error', 'sessionFile', 'agentSession', 'commits', 'diff', 'fileDiff', 'uncommitted']);

/** Throws FORBIDDEN unless the caller is the operator or the agent working on `cardId`. */
export function requireCardAccess(ctx: Context, cardId: string | null | undefined): void {
  requireOwnCard(ctx.principal, cardId);
}

/** Throws FORBIDDEN unless the caller is the operator or the agent of run `runId`. */
export function requireRunAccess(ctx: Context, runId: string): void {
  requireOwnRun(ctx.principal, runId);
}
