/**
 * What the tools that start the built `runboard` share (the build's code cache in scripts/bundle.ts,
 * the cold starts of bench:events and bench:start): a repository for it to serve, and one start to
 * its first answer.
 */
import { spawn } from 'node:child_process';
import { execa } from 'execa';

/** Creates a git repository at `dir` with one empty commit on main, for a server to orchestrate. */
export async function initRepo(dir: string): Promise<void> {
  await execa('git', ['init', '-q', '-b', 'main', dir]);
  await execa('git', ['-C', dir, '-c', 'user.name=runboard tools', '-c', 'user.email=tools@runboard.invalid', 'commit', '-q', '--allow-empty', '-m', 'init']);
}

/**
 * Starts `node <entry> <args>` with `env`, waits for the line naming its address, asks `{ __typename }`,
 * then stops it with SIGTERM and waits for it to exit. Answers the seconds from spawn to that answer.
 */
export async function startToFirstAnswer(entry: string, args: readonly string[], env: NodeJS.ProcessEnv): Promise<number> {
  const started = performance.now();
  const child = spawn(process.execPath, [entry, ...args], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  try {
    const url = await new Promise<string>((resolve, reject) => {
      let output = '';
      child.stdout.on('data', (chunk: Buffer) => {
        output = (output + chunk).slice(-4_096);
        const found = /GraphiQL at (\S+)/.exec(output);
        if (found) resolve(found[1]!);
      });
      void exited.then((code) => reject(new Error(`${entry} exited with ${code} before listening`)));
      setTimeout(() => reject(new Error(`${entry} did not listen within 60 s`)), 60_000).unref();
    });
    const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: '{ __typename }' }) });
    if (!response.ok) throw new Error(`${entry}: its first answer was HTTP ${response.status}`);
    await response.json();
    return (performance.now() - started) / 1000;
  } finally {
    child.kill('SIGTERM');
    await exited;
  }
}
