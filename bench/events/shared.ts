/**
 * What the event benchmark's processes share: the IPC request/answer protocol between the
 * conductor (bench/events.ts) and its children, the paced writer loop both event sources use, and
 * the timestamp an event's text carries for accept -> receive latency.
 */
import type { ChildProcess } from 'node:child_process';
import { fork } from 'node:child_process';
import path from 'node:path';
import { execa } from 'execa';

/** The subscription every subscriber sends, to runboard and to the bare broadcaster alike. */
export const FOLLOW_QUERY =
  'subscription($id: ID!, $since: Int) { runEvents(runId: $id, since: $since, untilSettled: true) { seq ... on AssistantTextEvent { text } } }';

/** FOLLOW_QUERY a list of events per message: how a fresh subscriber catches up on a long history. */
export const FOLLOW_BATCHES_QUERY =
  'subscription($id: ID!, $since: Int) { runEventBatches(runId: $id, since: $since, untilSettled: true) { seq ... on AssistantTextEvent { text } } }';

/** About the size of a coalesced text delta or a tool event. */
export const TEXT = 'x'.repeat(120);

/** A request from the conductor to a child process. */
export interface Request {
  readonly id: number;
  readonly command: string;
  readonly args?: unknown;
}

/** A child's answer to one request: its result, or why it failed. */
export interface Answer {
  readonly id: number;
  readonly result?: unknown;
  readonly error?: string;
}

/** A child of the conductor: a forked `bench/events/<name>.ts` answering requests over IPC. */
export interface Child {
  readonly process: ChildProcess;
  call<T = unknown>(command: string, args?: unknown): Promise<T>;
  /** Asks the child to exit and waits for it. */
  close(): Promise<void>;
}

/** Forks `bench/events/<name>.ts` under tsx and waits for its first message (`ready`). */
export async function startChild(name: string): Promise<Child> {
  // BENCH_CPU_PROF=<dir>: each child writes V8 CPU profiles (one per thread) to <dir>/<name> when it exits.
  const profile = process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${path.join(process.env.BENCH_CPU_PROF, name)}`] : [];
  const child = fork(path.join(import.meta.dirname, `${name}.ts`), [], { execArgv: ['--import', 'tsx', ...profile, ...(process.env.BENCH_NODE_ARGS?.split(' ').filter(Boolean) ?? [])], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const waiting = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>();
  let next = 0;
  await new Promise<void>((resolve, reject) => {
    child.once('message', () => resolve());
    child.once('exit', (code) => reject(new Error(`${name} exited with ${code} before it was ready`)));
  });
  child.on('message', (message: Answer) => {
    const pending = waiting.get(message.id);
    waiting.delete(message.id);
    if (message.error !== undefined) pending?.reject(new Error(`${name}: ${message.error}`));
    else pending?.resolve(message.result);
  });
  child.on('exit', (code) => {
    for (const pending of waiting.values()) pending.reject(new Error(`${name} exited with ${code}`));
    waiting.clear();
  });
  return {
    process: child,
    call: <T>(command: string, args?: unknown) =>
      new Promise<T>((resolve, reject) => {
        const id = next++;
        waiting.set(id, { resolve: resolve as (value: unknown) => void, reject });
        child.send({ id, command, args } satisfies Request);
      }),
    close: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.send({ id: next++, command: 'exit' } satisfies Request);
      await exited;
    },
  };
}

/**
 * Serves the conductor's requests in a child: each command's handler answers with its result.
 * `cpu` (this process's user + system CPU, µs, unless a handler says otherwise) and `exit` are built in.
 */
export function serve(handlers: Record<string, (args: any) => unknown>, onExit: () => Promise<void> = async () => undefined): void {
  process.on('message', async (request: Request) => {
    if (request.command === 'exit') {
      await onExit();
      process.exit(0);
    }
    try {
      const handler = handlers[request.command] ?? (request.command === 'cpu' ? cpuMicros : undefined);
      if (!handler) throw new Error(`unknown command ${request.command}`);
      process.send!({ id: request.id, result: await handler(request.args) } satisfies Answer);
    } catch (error) {
      process.send!({ id: request.id, error: String((error as Error).stack ?? error) } satisfies Answer);
    }
  });
  process.send!({ ready: true });
}

/** This process's CPU time so far, user + system, in µs. */
export function cpuMicros(): number {
  const { user, system } = process.cpuUsage();
  return user + system;
}

/** What the conductor asks an event source to write: `events` texts per run, then the settling status. */
export interface WriteLoad {
  /** Events per second each run's writer writes; 0 writes as fast as the source accepts. */
  readonly rate: number;
  readonly events: number;
}

/**
 * Writes `load.events` stamped texts to every run at once, one writer per run, paced at `load.rate`
 * each, then settles every run. `write` returns when the source has accepted the event.
 */
export async function writePaced(runs: number, load: WriteLoad, write: (run: number, text: string) => Promise<unknown>, settle: (run: number) => Promise<unknown>): Promise<void> {
  const started = performance.now();
  await Promise.all(
    Array.from({ length: runs }, async (_, run) => {
      for (let i = 0; i < load.events; i++) {
        if (load.rate) {
          const due = started + (i * 1000) / load.rate - performance.now();
          if (due > 0) await new Promise((resolve) => setTimeout(resolve, due));
        }
        await write(run, stamped(TEXT));
      }
      await settle(run);
    }),
  );
}

/** Wall-clock ms, comparable across processes on one machine. */
export function wallClock(): number {
  return performance.timeOrigin + performance.now();
}

/** The text with the time it was written in front, for latency: `<ms since epoch>|text`. */
export function stamped(text: string): string {
  return `${wallClock()}|${text}`;
}

/** The write time `stamped` put in front of a text, if any. */
export function sentAtOf(text: string | undefined): number | null {
  const bar = text?.indexOf('|') ?? -1;
  return bar > 0 ? Number(text!.slice(0, bar)) : null;
}
