/**
 * Ending process trees. execa's `kill()` signals only the direct child, so children we start get a
 * process group of their own (`detached: true`) and are signalled as a group; an agent's tools run
 * in further groups of their own, which `descendantGroups` finds through /proc before the kill.
 */
import { readdirSync, readFileSync } from 'node:fs';

/** Signals every process in group `pgid`; false when the group is already gone. */
export function signalGroup(pgid: number, signal: NodeJS.Signals): boolean {
  // kill(-1) would signal every process we may signal, kill(0) our own group: never.
  if (!Number.isInteger(pgid) || pgid <= 1) throw new Error(`refusing to signal process group ${pgid}`);
  try {
    process.kill(-pgid, signal);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw error;
  }
}

/**
 * Whether any process of group `pgid` is still running. Zombies do not count: an orphan's zombie
 * lingers until init reaps it (which a container's init may never do), yet it holds nothing.
 */
export function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
  const procs = readProcStats();
  return procs === null || procs.some((p) => p.pgid === pgid && p.state !== 'Z');
}

interface ProcStat {
  pid: number;
  state: string;
  ppid: number;
  pgid: number;
}

/** Every process's /proc/<pid>/stat essentials, or null where there is no /proc. */
function readProcStats(): ProcStat[] | null {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return null;
  }
  const stats: ProcStat[] = [];
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // "pid (comm) state ppid pgrp ...": comm may hold spaces or parentheses.
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const [state, ppid, pgid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      stats.push({ pid: Number(entry), state, ppid: Number(ppid), pgid: Number(pgid) });
    } catch {
      // the process ended while we looked
    }
  }
  return stats;
}

/**
 * The process groups of every descendant of `pid` (Linux /proc; empty elsewhere), excluding our
 * own group. Read before a kill, since orphans are re-parented and can no longer be traced.
 */
export function descendantGroups(pid: number): number[] {
  const children = new Map<number, ProcStat[]>();
  for (const proc of readProcStats() ?? []) children.set(proc.ppid, [...(children.get(proc.ppid) ?? []), proc]);
  const groups = new Set<number>();
  const stack = [pid];
  while (stack.length) {
    for (const child of children.get(stack.pop()!) ?? []) {
      groups.add(child.pgid);
      stack.push(child.pid);
    }
  }
  return withoutOwnGroup([...groups]);
}

/**
 * Pids of processes whose environment holds `name=value` (Linux /proc; empty elsewhere). Children
 * inherit the environment, so this finds everything an agent started, even after it was orphaned.
 */
export function processesWithEnv(name: string, value: string): number[] {
  const needle = Buffer.from(`${name}=${value}\0`);
  const found: number[] = [];
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const environ = readFileSync(`/proc/${entry}/environ`);
      if (environ.subarray(0, needle.length).equals(needle) || environ.includes(Buffer.concat([Buffer.from('\0'), needle]))) found.push(Number(entry));
    } catch {
      // gone, or not ours to read
    }
  }
  return found;
}

/** Drops our own process group (and a missing one) from `groups`: never signal ourselves. */
export function withoutOwnGroup(groups: readonly (number | null)[]): number[] {
  const own = processGroupOf(process.pid);
  return groups.filter((group): group is number => group !== null && group > 1 && group !== own);
}

/** The process group of `pid`, or null when it is gone (Linux /proc). */
export function processGroupOf(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
  } catch {
    return null;
  }
}

/** Resolves after `ms`, or as soon as `until` settles. */
export function delay(ms: number, until?: Promise<unknown>): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    until?.finally(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/**
 * Ends group `pgid` and the groups its descendants started: SIGTERM, then SIGKILL for whatever is
 * left after `graceMs`. `exited` settles when the leader has exited.
 */
export async function terminateTree(pgid: number, exited: Promise<unknown>, graceMs: number): Promise<void> {
  const groups = [pgid, ...descendantGroups(pgid)];
  for (const group of groups) signalGroup(group, 'SIGTERM');
  await delay(graceMs, exited);
  // Tools the leader tracked end with it; anything else still alive is killed outright.
  await delay(50);
  for (const group of groups) if (groupAlive(group)) signalGroup(group, 'SIGKILL');
}

/**
 * Ends every process whose environment holds `name=value`, with the groups it and its descendants
 * are in: SIGTERM, then SIGKILL for what is left after `graceMs`. Children inherit the environment,
 * so this reaches even processes that were orphaned when their parent died. Returns how many it found.
 */
export async function endProcessesWithEnv(name: string, value: string, graceMs: number): Promise<number> {
  const pids = processesWithEnv(name, value);
  const groups = [...new Set(withoutOwnGroup(pids.flatMap((pid) => [processGroupOf(pid), ...descendantGroups(pid)])))];
  for (const group of groups) signalGroup(group, 'SIGTERM');
  for (let waited = 0; waited < graceMs && groups.some(groupAlive); waited += 100) await delay(100);
  for (const group of groups) if (groupAlive(group)) signalGroup(group, 'SIGKILL');
  return pids.length;
}

/** A copy of `env` without `keys`: how children are kept from inheriting secrets. */
export function withoutKeys(env: NodeJS.ProcessEnv, keys: readonly string[]): NodeJS.ProcessEnv {
  const copy = { ...env };
  for (const key of keys) delete copy[key];
  return copy;
}
