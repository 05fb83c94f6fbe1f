/** Real git repositories in temp dirs for tests. Tests may run git directly; src/ goes through git.ts. */
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';

const GIT_ENV = { GIT_CONFIG_NOSYSTEM: '1', GIT_TERMINAL_PROMPT: '0', LC_ALL: 'C' };

/** Runs git in `cwd` and returns its trimmed stdout. */
export async function git(cwd: string, ...args: string[]): Promise<string> {
  const { stdout } = await execa('git', args, { cwd, env: GIT_ENV });
  return stdout.trim();
}

/** A temp directory, removed by `cleanup()`. */
export async function tempDir(prefix = 'runboard-test-'): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), prefix));
}

/** A repository with one commit (README.md) on branch main, with a local identity. */
export async function makeRepo(files: Record<string, string> = { 'README.md': '# test repo\n' }): Promise<string> {
  const dir = await tempDir('runboard-repo-');
  await git(dir, 'init', '-q', '-b', 'main');
  await git(dir, 'config', 'user.name', 'Test User');
  await git(dir, 'config', 'user.email', 'test@example.com');
  await git(dir, 'config', 'commit.gpgsign', 'false');
  for (const [name, content] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(dir, name)), { recursive: true });
    await writeFile(path.join(dir, name), content);
  }
  await git(dir, 'add', '-A');
  await git(dir, 'commit', '-q', '-m', 'initial commit');
  return dir;
}

export async function removeDirs(...dirs: (string | undefined)[]): Promise<void> {
  await Promise.all(dirs.filter(Boolean).map((dir) => rm(dir!, { recursive: true, force: true })));
}
