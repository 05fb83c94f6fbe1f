/** What every resolver receives: the orchestrator to act through and Prisma for query-passing reads. */
import type { PrismaClient } from '../orchestrator/db.js';
import type { Orchestrator } from '../orchestrator/index.js';
import type { Principal } from './auth.js';

export interface Context {
  orchestrator: Orchestrator;
  prisma: PrismaClient;
  /** Who is asking: the operator, or a run's agent with its own token. */
  principal: Principal;
  /**
   * The `Last-Event-ID` an EventSource sends when it reconnects to a GET subscription: the seq of the
   * last message it received, which then wins over the `since` in its URL. Undefined when absent or not a seq.
   */
  lastEventId?: number;
}

/** A `Last-Event-ID` header as a seq, or undefined. */
export function parseLastEventId(header: string | null | undefined): number | undefined {
  if (!header || !/^\d{1,15}$/.test(header.trim())) return undefined;
  return Number(header.trim());
}
