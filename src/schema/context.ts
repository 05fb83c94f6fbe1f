/** What every resolver receives: the orchestrator to act through and Prisma for query-passing reads. */
import type { PrismaClient } from '../orchestrator/db.js';
import type { Orchestrator } from '../orchestrator/index.js';

export interface Context {
  orchestrator: Orchestrator;
  prisma: PrismaClient;
}
