/**
 * Cold start, spawn -> first answered query, of one or more `runboard` entries (dist/cli.js, the
 * dist/runboard.cjs bundle) alternated in the same run; used by bench/events.ts and bench/cold-start.ts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { initRepo, startToFirstAnswer } from '../../scripts/first-answer.js';

const root = path.resolve(import.meta.dirname, '..', '..');

/** Spawn -> first answered query of `node <entry>`, on a data dir prepared by an earlier start. */
function coldStart(entry: string, repo: string, dataDir: string): Promise<number> {
  return startToFirstAnswer(entry, ['--repo', repo, '--data-dir', dataDir, '--port', '0'], { ...process.env, LOG_LEVEL: 'info' });
}

/** The median cold start of each entry, alternating them so drift on a shared machine hits both. */
export async function coldStarts(entries: string[], rounds: number): Promise<number[]> {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'bench-cold-'));
  const repo = path.join(tmp, 'repo');
  try {
    await initRepo(repo);
    const dataDirs = entries.map((_, i) => path.join(tmp, `data-${i}`));
    for (const [i, entry] of entries.entries()) await coldStart(entry, repo, dataDirs[i]); // creates the database: not counted
    const times: number[][] = entries.map(() => []);
    for (let round = 0; round < rounds; round++) {
      for (const [i, entry] of entries.entries()) times[i].push(await coldStart(entry, repo, dataDirs[i]));
    }
    return times.map((list) => list.sort((a, b) => a - b)[Math.floor(list.length / 2)]);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** Prints each entry's median cold start, and each after the first as a ratio of the first. */
export async function reportColdStarts(entries: string[], rounds: number): Promise<number[]> {
  const starts = await coldStarts(entries, rounds);
  for (const [i, entry] of entries.entries()) {
    const ratio = i ? `  ${(starts[i] / starts[0]).toFixed(2)}× the first` : '';
    console.log(`cold start, spawn -> first answer, median of ${rounds}: node ${path.relative(root, entry)}  ${starts[i].toFixed(2)} s${ratio}`);
  }
  return starts;
}
