/**
 * The installed `runboard` command runs the esbuild bundle (dist/runboard.cjs, `npm run build`): started
 * as a real child process, it must do what dist/cli.js does, with its native addon, Prisma's wasm,
 * the migrations and the board page found from the package root rather than from its own location.
 */
import { readdir, readFile } from 'node:fs/promises';
import Module from 'node:module';
import path from 'node:path';
import vm from 'node:vm';
import BetterSqlite3 from 'better-sqlite3';
import { execa } from 'execa';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { helpText } from '../src/config.js';
import { availableMigrations } from '../src/orchestrator/migrations.js';
import { makeRepo, removeDirs, tempDir } from './helpers/repo.js';
import { projectRoot, spawnServer } from './helpers/server.js';

const BUNDLE = path.join(projectRoot, 'dist', 'runboard.cjs');
const BUNDLE_DIR = path.join(projectRoot, 'dist', 'bundle');
const BUNDLE_SCRIPT = path.join(BUNDLE_DIR, 'runboard.cjs');

test('package.json installs the bundle as `runboard` and `npm start` runs it', async () => {
  const pkg = JSON.parse(await readFile(path.join(projectRoot, 'package.json'), 'utf8'));
  expect(path.join(projectRoot, pkg.bin.runboard)).toBe(BUNDLE);
  expect(pkg.scripts.start).toBe('node dist/runboard.cjs');
});

test("Prisma's query compiler is read from the .wasm files the build wrote, not parsed from its base64 module", async () => {
  const files = await readdir(BUNDLE_DIR);
  expect(files).toEqual(expect.arrayContaining(['query_compiler_bg.sqlite.wasm', 'query_compiler_bg.postgresql.wasm']));
  expect(await readFile(BUNDLE_SCRIPT, 'latin1')).not.toContain('wasm-base64');
});

test('the bundle is one script without import() or the engines only a cluster node loads, and this Node accepts its code cache', async () => {
  const source = await readFile(BUNDLE_SCRIPT);
  expect(source.toString('latin1')).toMatch(/^(\/\/[^\n]*\n)*"use strict";/); // strict, as its ES modules were written
  expect(source.toString('latin1')).not.toMatch(/\bimport\(/);
  for (const name of ['bullmq', 'ioredis', 'pg']) {
    expect(source.includes(`node_modules/${name}/`)).toBe(false); // esbuild names each bundled file in a comment
    expect(source.includes(`require("${name}")`)).toBe(true); // …and required where first used
  }
  const script = new vm.Script(Module.wrap(source.toString('latin1')), { filename: BUNDLE_SCRIPT, cachedData: await readFile(`${BUNDLE_SCRIPT}.code-cache`) });
  expect(script.cachedDataRejected).toBe(false);
});

test('--help prints the usage and exits 0', async () => {
  const result = await execa('node', [BUNDLE, '--help'], { reject: false });
  expect(result.exitCode).toBe(0);
  expect(result.stdout + '\n').toBe(helpText());
});

test('on a fresh data dir: migrates, answers a mutation and a subscription, serves GraphiQL and the board, stops on SIGTERM', async () => {
  const repo = await makeRepo();
  const dataDir = await tempDir();
  const { child, t } = await spawnServer({ RUNBOARD_REPO: repo, RUNBOARD_DATA_DIR: dataDir }, BUNDLE);
  const client = createClient({ url: t.url.replace(/^http/, 'ws'), webSocketImpl: WebSocket, retryAttempts: 0 });
  try {
    // Every shipped migration applied to the new database, found from the package root.
    const db = new BetterSqlite3(path.join(dataDir, 'runboard.db'), { readonly: true });
    try {
      const applied = db.prepare('SELECT migration_name AS name FROM _prisma_migrations WHERE finished_at IS NOT NULL ORDER BY migration_name').all() as { name: string }[];
      expect(applied.map((row) => row.name)).toEqual(availableMigrations());
      expect(availableMigrations().length).toBeGreaterThan(0);
    } finally {
      db.close();
    }

    // A subscription over graphql-ws sees the change a mutation over HTTP makes.
    const seen = new Promise<any>((resolve, reject) => {
      const stop = client.subscribe(
        { query: 'subscription { boardEvents(since: 0) { seq type card { title } } }' },
        { next: (result) => (result.errors ? reject(new Error(JSON.stringify(result.errors))) : (stop(), resolve(result.data!.boardEvents))), error: reject, complete: () => reject(new Error('completed early')) },
      );
    });
    const created = await t.ok('mutation { createCard(input: { title: "from the bundle" }) { id title } }');
    expect(created.createCard.title).toBe('from the bundle');
    expect(await seen).toEqual({ seq: 1, type: 'card_created', card: { title: 'from the bundle' } });

    // GraphiQL (its renderer loads on first use) and the built board page.
    const graphiql = await fetch(t.url, { headers: { accept: 'text/html' } });
    expect(graphiql.status).toBe(200);
    const page = await graphiql.text();
    expect(page).toMatch(/<title>runboard<\/title>/);
    expect(page).toMatch(/graphiql/i);
    const board = await fetch(new URL('/', t.url));
    expect(board.status).toBe(200);
    expect(await board.text()).toBe(await readFile(path.join(projectRoot, 'dist', 'web', 'index.html'), 'utf8'));

    await client.dispose();
    child.kill('SIGTERM');
    const result = await child;
    expect(result.exitCode).toBe(0);
    expect(result.stderr).toBe('');
    const messages = String(result.stdout).trim().split('\n').map((line: string) => JSON.parse(line).msg);
    expect(messages.slice(-2)).toEqual(['SIGTERM received: stopping 0 agents and 0 playtests', 'stopped']);
  } finally {
    await client.dispose();
    child.kill('SIGKILL');
    await removeDirs(repo, dataDir);
  }
});
