/**
 * Cold start alone (a script, not a test): `npm run bench:start` (after `npm run build`). Starts the
 * unbundled `node dist/cli.js` and the installed bundle `node dist/runboard.cjs` alternately on a
 * prepared data dir and prints each median, the bundle's as a ratio of the unbundled start (issue 18's
 * target is ≤ 0.5×). bench:events prints the same rows after its event loads.
 *
 * Knobs: BENCH_COLD_STARTS (rounds, default 9), BENCH_CLI and BENCH_CLI_OTHER (the two entries).
 */
import path from 'node:path';
import { reportColdStarts } from './events/cold-start.js';

const root = path.resolve(import.meta.dirname, '..');
const rounds = Number(process.env.BENCH_COLD_STARTS ?? 9);
await reportColdStarts([process.env.BENCH_CLI ?? path.join(root, 'dist', 'cli.js'), process.env.BENCH_CLI_OTHER ?? path.join(root, 'dist', 'runboard.cjs')], rounds);
