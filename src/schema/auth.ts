/**
 * Who is asking, and what an agent may do. The operator (the person, or their scripts) may do
 * everything. A run's agent, with its own token, may read the board and change only its own card:
 * comment on it, edit its description and tags, and move it. Every such change is recorded as a
 * `board_change` event on its run. Which root fields an agent may call at all is checked before
 * execution by plugins/use-agent-scope.ts; the card checks are here, next to the resolvers.
 */
import type { BoardChangeAction, RunEventDataByType } from '../orchestrator/run-events.js';
import type { Context } from './context.js';

export type Principal = { readonly kind: 'operator' } | { readonly kind: 'agent'; readonly runId: string; readonly cardId: string };

/** No credentials, or wrong ones. */
export class UnauthenticatedError extends Error {}

/** Known credentials that do not allow this. */
export class ForbiddenError extends Error {}

/** Mutations an agent may call (on its own card only). */
export const AGENT_MUTATIONS: ReadonlySet<string> = new Set(['addComment', 'updateCard', 'addCardTags', 'removeCardTags', 'moveCard']);
/** Subscriptions an agent may open (on its own run or card only). */
export const AGENT_SUBSCRIPTIONS: ReadonlySet<string> = new Set(['runEvents', 'runUpdated']);

/** Throws FORBIDDEN unless the caller is the operator or the agent working on `cardId`. */
export function requireCardAccess(ctx: Context, cardId: string | null | undefined): void {
  if (ctx.principal.kind === 'agent' && cardId !== ctx.principal.cardId) throw new ForbiddenError('an agent may only change its own card');
}

/** Throws FORBIDDEN unless the caller is the operator or the agent of run `runId`. */
export function requireRunAccess(ctx: Context, runId: string): void {
  if (ctx.principal.kind === 'agent' && runId !== ctx.principal.runId) throw new ForbiddenError('an agent may only follow its own run');
}

/** Records what an agent changed as an event on its run; the operator's changes need no record here. */
export async function recordAgentChange(ctx: Context, action: BoardChangeAction, details: Omit<RunEventDataByType['board_change'], 'action'>): Promise<void> {
  if (ctx.principal.kind !== 'agent') return;
  await ctx.orchestrator.eventLog.append(ctx.principal.runId, [{ type: 'board_change', data: { action, ...details } }]);
}
