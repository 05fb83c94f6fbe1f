/** The built `runboard` command as a real child process. */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { OPTIONS } from '../src/config.js';
import { makeRepo, removeDirs, tempDir } from './helpers/repo.js';
import { projectRoot } from './helpers/server.js';

const CLI = path.join(projectRoot, 'dist', 'cli.js');

test('refuses a path that is not a git repository, with one clear line', async () => {
  const dir = await tempDir();
  try {
    const result = await execa('node', [CLI, '--repo', dir, '--port', '0', '--data-dir', path.join(dir, 'data')], { reject: false });
    expect(result.exitCode).toBe(1);
    expect(result.stderr.trim().split('\n')).toEqual([`runboard: ${dir} is not a git repository`]);
  } finally {
    await removeDirs(dir);
  }
});

test('refuses a repository with no commits', async () => {
  const dir = await tempDir();
  try {
    await execa('git', ['init', '-q', dir]);
    const result = await execa('node', [CLI, '--repo', dir, '--port', '0', '--data-dir', path.join(dir, '.data')], { reject: false });
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toMatch(/has no commits/);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
  } finally {
    await removeDirs(dir);
  }
});

test('a bad flag or value names it and exits 2', async () => {
  const flag = await execa('node', [CLI, '--prot', '80'], { reject: false });
  expect(flag.exitCode).toBe(2);
  expect(flag.stderr).toMatch(/^runboard: .*--prot/);
  const value = await execa('node', [CLI, '--port', 'eighty'], { reject: false });
  expect(value.exitCode).toBe(2);
  expect(value.stderr.trim()).toBe('runboard: invalid port "eighty": expected 0-65535');
  const level = await execa('node', [CLI, '--log-level', 'loud'], { reject: false });
  expect(level.exitCode).toBe(2);
  expect(level.stderr.trim()).toBe('runboard: invalid LOG_LEVEL "loud": expected one of fatal, error, warn, info, debug, trace, silent');
  // Secrets come only from the environment, so they never show up in `ps`.
  const token = await execa('node', [CLI, '--token', 'x'], { reject: false });
  expect(token.exitCode).toBe(2);
  expect(token.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^runboard: .*--token/)]);
});

test('--help lists every option with its environment variable and default', async () => {
  const { stdout, exitCode } = await execa('node', [CLI, '--help', '--prot']);
  expect(exitCode).toBe(0);
  const lines = stdout.split('\n');
  for (const option of OPTIONS) {
    const line = lines.find((text) => text.includes(` ${option.env} `));
    expect(line).toContain(option.flag ? `--${option.flag} ` : '(env only)');
    expect(line).toContain(`(default: ${option.defaultText})`);
  }
  expect(stdout).toMatch(/RUNBOARD_TOKEN/);
  expect(stdout).not.toMatch(/--token/);
  // The README shows it verbatim.
  const readme = await readFile(path.join(projectRoot, 'README.md'), 'utf8');
  expect(readme).toContain(['```text', '$ runboard --help', stdout, '```'].join('\n'));
});

test('starts on a fresh data dir, prints the GraphiQL address, answers, and stops on SIGTERM', async () => {
  const repo = await makeRepo();
  const dataDir = await tempDir();
  const child = execa('node', [CLI, '--port', '0'], { env: { RUNBOARD_REPO: repo, RUNBOARD_DATA_DIR: dataDir }, reject: false });
  try {
    const url = await new Promise<string>((resolve, reject) => {
      child.stdout!.on('data', (chunk: Buffer) => {
        const match = /GraphiQL at (\S+)/.exec(chunk.toString());
        if (match) resolve(match[1]);
      });
      child.once('exit', () => reject(new Error('server exited early')));
    });
    const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: '{ cards { edges { node { id } } } }' }) });
    expect(await response.json()).toEqual({ data: { cards: { edges: [] } } });
    const graphiql = await fetch(url, { headers: { accept: 'text/html' } });
    expect(await graphiql.text()).toMatch(/<title>runboard<\/title>/);

    child.kill('SIGTERM');
    const result = await child;
    expect(result.exitCode).toBe(0);
    // Not a terminal, so every line is JSON: the start line, the request, and what shutdown stopped.
    const messages = result.stdout.trim().split('\n').map((line) => JSON.parse(line).msg);
    expect(messages).toEqual([
      expect.stringMatching(new RegExp(`^GraphiQL at ${url} \\(repository ${repo}, data ${dataDir}\\)$`)),
      expect.stringMatching(/^query \(anonymous\) ok in [\d.]+ ms \(http\)$/),
      'SIGTERM received: stopping 0 agents and 0 playtests',
      'stopped',
    ]);
    // Nothing of runboard's shows up in the user's repository.
    const { stdout } = await execa('git', ['status', '--porcelain', '--ignored'], { cwd: repo });
    expect(stdout).toBe('');
  } finally {
    child.kill('SIGKILL');
    await removeDirs(repo, dataDir);
  }
});
