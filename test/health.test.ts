/** /healthz and /readyz: liveness always, readiness only with a database, its migrations and the repository. */
import { rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { sqliteOf, startTestServer, type TestServer } from './helpers/server.js';

let t: TestServer;
beforeAll(async () => {
  t = await startTestServer();
});
afterAll(async () => {
  await t?.close();
});

async function get(pathname: string): Promise<{ status: number; body: any }> {
  const response = await fetch(new URL(pathname, t.url));
  expect(response.headers.get('content-type')).toMatch(/^application\/json/);
  return { status: response.status, body: await response.json() };
}

test('/healthz answers 200 while the process is up', async () => {
  expect(await get('/healthz')).toEqual({ status: 200, body: { status: 'ok' } });
});

test('/readyz answers 200 when the database, its migrations and the repository are all fine', async () => {
  const { status, body } = await get('/readyz');
  expect(status).toBe(200);
  expect(body).toEqual({ ready: true, failed: [], checks: { database: { ok: true }, migrations: { ok: true }, repository: { ok: true } }, internalErrors: 0 });
});

test('/readyz answers 503 naming a migration that is not applied', async () => {
  const sqlite = sqliteOf(t.server);
  const latest = sqlite.prepare('SELECT * FROM _prisma_migrations ORDER BY migration_name DESC LIMIT 1').get() as Record<string, unknown>;
  sqlite.prepare('DELETE FROM _prisma_migrations WHERE id = ?').run(latest.id);
  try {
    const { status, body } = await get('/readyz');
    expect(status).toBe(503);
    expect(body.failed).toEqual(['migrations']);
    expect(body.checks.migrations.error).toBe(`not applied: ${latest.migration_name}`);
  } finally {
    const columns = Object.keys(latest);
    sqlite.prepare(`INSERT INTO _prisma_migrations (${columns.join(', ')}) VALUES (${columns.map(() => '?').join(', ')})`).run(...Object.values(latest));
  }
  expect((await get('/readyz')).status).toBe(200);
});

test('/readyz answers 503 when the repository cannot be read', async () => {
  const gitDir = path.join(t.repo, '.git');
  await rename(gitDir, `${gitDir}-moved`);
  try {
    const { status, body } = await get('/readyz');
    expect(status).toBe(503);
    expect(body.failed).toEqual(['repository']);
    expect(body.checks.repository.error).toMatch(/is not a git repository/);
  } finally {
    await rename(`${gitDir}-moved`, gitDir);
  }
  expect((await get('/readyz')).status).toBe(200);
});

// Last: the server's database is gone for good after this one.
test('/readyz answers 503 when the database file cannot be opened, while /healthz still answers', async () => {
  const file = path.join(t.dataDir, 'runboard.db');
  await Promise.all(['', '-wal', '-shm'].map((suffix) => rm(`${file}${suffix}`, { force: true })));
  const { status, body } = await get('/readyz');
  expect(status).toBe(503);
  expect(body.failed).toEqual(['database', 'migrations']);
  expect(body.checks.database.error).toMatch(/unable to open database file/);
  expect(body.checks.migrations.error).toBe('not checked: the database did not answer');
  expect((await get('/healthz')).status).toBe(200);
});
