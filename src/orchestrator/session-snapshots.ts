/**
 * Agent session snapshots: in a cluster, a refine may run on another node than the run it continues,
 * and an agent that keeps its session in files (pi's JSON-lines file) would find nothing there. When a
 * run settles, its worker stores the session's files (AgentDriver.sessionFiles) in the database; a
 * worker that lacks them restores them under its own agent state dir before the resume, and re-bases
 * the session reference onto it. Bounded in size: a bigger session is not kept, and says so.
 */
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Database } from './db.js';

/** Largest session snapshot per run; a bigger session is not stored. @default 16_777_216 // bytes */
export const MAX_SESSION_SNAPSHOT_BYTES = 16 * 1024 * 1024;

/** What `take` did: stored so many bytes, or nothing because the session is larger than the bound. */
export type SnapshotOutcome = { stored: true; bytes: number } | { stored: false; bytes: number };

export class SessionSnapshots {
  constructor(private readonly db: Database) {}

  /** Stores `files` (absolute paths under `root`, the agent's state dir) as run `runId`'s snapshot, replacing an earlier one. */
  async take(runId: string, root: string, files: readonly string[]): Promise<SnapshotOutcome> {
    let bytes = 0;
    for (const file of files) bytes += (await stat(file)).size;
    if (bytes > MAX_SESSION_SNAPSHOT_BYTES) return { stored: false, bytes };
    const rows = await Promise.all(files.map(async (file) => ({ runId, root, path: path.relative(root, file), content: await readFile(file) })));
    await this.db.write(async (tx) => {
      await tx.agentSessionFile.deleteMany({ where: { runId } });
      if (rows.length) await tx.agentSessionFile.createMany({ data: rows });
    });
    return { stored: true, bytes };
  }

  /** Whether run `runId` has a stored session. */
  async has(runId: string): Promise<boolean> {
    return (await this.db.client.agentSessionFile.count({ where: { runId } })) > 0;
  }

  /**
   * Writes run `runId`'s stored session files under `root` (this node's agent state dir) and returns
   * `reference` re-based from the state dir they were taken from onto `root`; null when none are stored.
   */
  async restore(runId: string, reference: string, root: string): Promise<string | null> {
    const rows = await this.db.client.agentSessionFile.findMany({ where: { runId } });
    if (!rows.length) return null;
    for (const row of rows) {
      const target = path.resolve(root, row.path);
      if (path.relative(root, target).startsWith('..')) continue; // only ever under the state dir
      await mkdir(path.dirname(target), { recursive: true });
      await writeFile(target, row.content);
    }
    const inside = path.relative(rows[0]!.root, reference);
    return inside.startsWith('..') || path.isAbsolute(inside) ? reference : path.join(root, inside);
  }
}
