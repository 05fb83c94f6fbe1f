/** What every resolver receives: the orchestrator to act through and Prisma for query-passing reads. */
import type { PrismaClient } from '../orchestrator/db.js';
import type { Orchestrator } from '../orchestrator/index.js';
import type { Principal } from './auth.js';

export interface Context {
  orchestrator: Orchestrator;
  prisma: PrismaClient;
  /** Who is asking: the operator, or a run's agent with its own token. */
  principal: Principal;
}
