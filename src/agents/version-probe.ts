/** Whether an agent's program is there, asked the way every agent CLI answers: `<program> --version`. */
import { execa } from 'execa';

/** How long `--version` may take; a cold Node CLI start on a busy machine. @default 15_000 // ms */
export const VERSION_PROBE_TIMEOUT_MS = 15_000;

/** Runs `<program> <leading…> --version`: available when it exits 0, with the first x.y.z it printed. */
export async function probeVersion(command: readonly string[]): Promise<{ available: boolean; version: string | null }> {
  const [program, ...leading] = command;
  if (!program) return { available: false, version: null };
  const result = await execa(program, [...leading, '--version'], { reject: false, timeout: VERSION_PROBE_TIMEOUT_MS, stdin: 'ignore' });
  const version = /\d+\.\d+\.\d+\S*/.exec(`${result.stdout} ${result.stderr}`)?.[0] ?? null;
  return { available: !result.failed, version };
}
