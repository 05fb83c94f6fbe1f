/** One server per data dir: a second `runboard` on it is refused with one line and exit 2; a SIGKILLed holder leaves no stale lock. Real processes from dist/cli.js. */
import path from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { makeRepo, removeDirs, tempDir } from './helpers/repo.js';
import { projectRoot } from './helpers/server.js';

const CLI = path.join(projectRoot, 'dist', 'cli.js');

/** Starts `runboard` and resolves with its GraphQL URL once it is serving. */
function serve(repo: string, dataDir: string): { child: ResultPromise; url: Promise<string> } {
  const child = execa('node', [CLI, '--port', '0', '--repo', repo, '--data-dir', dataDir], { reject: false });
  const url = new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      const match = /GraphiQL at (\S+)/.exec(chunk.toString());
      if (match) resolve(match[1]);
    });
    child.once('exit', () => reject(new Error('server exited early')));
  });
  return { child, url };
}

test('a second server on the same data dir is refused; after the first is SIGKILLed, a new one starts', async () => {
  const repo = await makeRepo();
  const dataDir = await tempDir();
  const first = serve(repo, dataDir);
  let third: ReturnType<typeof serve> | undefined;
  try {
    await first.url;
    const second = await execa('node', [CLI, '--port', '0', '--repo', repo, '--data-dir', dataDir], { reject: false, timeout: 30_000 });
    expect(second.exitCode).toBe(2);
    expect(second.stderr.trim().split('\n')).toEqual([`runboard: data dir ${dataDir} is in use by another runboard server; stop it or choose another --data-dir`]);
    // The first one is untouched and still answers.
    const answer = await fetch(await first.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: '{ cards { edges { node { id } } } }' }) });
    expect(answer.status).toBe(200);

    first.child.kill('SIGKILL');
    await first.child;
    third = serve(repo, dataDir);
    const url = await third.url;
    const again = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: '{ cards { edges { node { id } } } }' }) });
    expect(await again.json()).toEqual({ data: { cards: { edges: [] } } });
  } finally {
    first.child.kill('SIGKILL');
    third?.child.kill('SIGKILL');
    await Promise.all([first.child, third?.child]);
    await removeDirs(repo, dataDir);
  }
}, 60_000);
