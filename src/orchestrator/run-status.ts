/** Run statuses, mirrored from the Prisma enum so domain code can reason about them. */
import type { RunStatus } from '../generated/prisma/client.js';

export type { RunStatus };

/** A run in one of these holds resources (a queue slot, a process, a worktree in use). */
export const ACTIVE_RUN_STATUSES = ['QUEUED', 'STARTING', 'RUNNING'] as const satisfies readonly RunStatus[];

export function isActive(status: RunStatus): boolean {
  return (ACTIVE_RUN_STATUSES as readonly RunStatus[]).includes(status);
}
