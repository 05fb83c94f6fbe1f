/**
 * Who acts, and what a run's agent may do. The operator (the person, or their scripts) may do
 * everything. A run's agent, with its own token, may read the board and its own run, and change only
 * its own card: comment on it, edit its description and tags, and move it. The board enforces this in
 * its operations (board.ts), and records each agent change as a `board_change` event on its run in the
 * same transaction as the change.
 */
import { ForbiddenError } from './errors.js';

/** The operator, or the agent of run `runId` working card `cardId`. */
export type Actor = { readonly kind: 'operator' } | { readonly kind: 'agent'; readonly runId: string; readonly cardId: string };

/** The operator: everything is allowed. */
export const OPERATOR: Actor = Object.freeze({ kind: 'operator' });

/** FORBIDDEN for an agent: the operation is the operator's only. */
export function requireOperator(actor: Actor, what: string): void {
  if (actor.kind === 'agent') throw new ForbiddenError(`an agent may not ${what}`);
}

/** FORBIDDEN unless the actor is the operator or the agent working on `cardId`. */
export function requireOwnCard(actor: Actor, cardId: string | null | undefined): void {
  if (actor.kind === 'agent' && cardId !== actor.cardId) throw new ForbiddenError('an agent may only change its own card');
}

/** FORBIDDEN unless the actor is the operator or the agent of run `runId`. */
export function requireOwnRun(actor: Actor, runId: string): void {
  if (actor.kind === 'agent' && runId !== actor.runId) throw new ForbiddenError('an agent may only read and follow its own run');
}

/** The run whose agent acts, for audit columns; null for the operator. */
export function actorRunId(actor: Actor): string | null {
  return actor.kind === 'agent' ? actor.runId : null;
}
