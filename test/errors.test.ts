/** Error codes tell the truth: a server-side failure is masked, logged at error with its cause, and counted; never BAD_USER_INPUT. */
import { rename } from 'node:fs/promises';
import path from 'node:path';
import { encodeGlobalID } from '@pothos/plugin-relay';
import { RunboardError, type ErrorCategory } from '../src/orchestrator/errors.js';
import { GitError } from '../src/orchestrator/git.js';
import { MigrationError } from '../src/orchestrator/migrations.js';
import { maskError } from '../src/schema/errors.js';
import { startTestServer, type TestServer } from './helpers/server.js';

/** A log destination that keeps every record, parsed. */
function capture() {
  const lines: string[] = [];
  return { records: () => lines.map((line) => JSON.parse(line)), write: (line: string) => void lines.push(line) };
}

let t: TestServer;
let log: ReturnType<typeof capture>;
beforeAll(async () => {
  log = capture();
  t = await startTestServer({ logStream: log, env: { LOG_LEVEL: 'debug' } });
});
afterAll(() => t?.close());

test('a diff against a repository made unreadable is a masked internal error, logged at error with its cause and counted', async () => {
  const { createCard } = await t.ok(`mutation { createCard(input: { title: "diff me" }) { id } }`);
  const cardId = Buffer.from(createCard.id, 'base64').toString().split(':')[1];
  const run = await t.server.orchestrator.db.client.run.create({ data: { cardId, prompt: 'p', status: 'SUCCEEDED' } });
  await t.server.orchestrator.workspaces.create(run.id);
  const before = await (await fetch(new URL('/readyz', t.url))).json();

  // git can no longer read any object of the repository.
  await rename(path.join(t.repo, '.git', 'objects'), path.join(t.repo, '.git', 'objects-unreadable'));
  try {
    const result = await t.gql(`query DiffUnreadable($id: ID!) { run(id: $id) { diff { patch } } }`, { id: encodeGlobalID('Run', run.id) });
    expect(result.errors).toHaveLength(1);
    const [error] = result.errors!;
    expect(error.extensions?.code).toBe('INTERNAL_SERVER_ERROR');
    expect(error.message).toBe('Unexpected error.');
    expect(JSON.stringify(result)).not.toContain(t.repo);
    expect(JSON.stringify(result)).not.toContain('BAD_USER_INPUT');

    const logged = log.records().filter((record) => record.level === 50);
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatchObject({ code: 'INTERNAL_SERVER_ERROR', err: { type: 'GitError', message: expect.stringMatching(/git/) } });
    expect(log.records().find((record) => record.operation === 'DiffUnreadable')).toMatchObject({ outcome: 'error', codes: ['INTERNAL_SERVER_ERROR'] });

    const after = await (await fetch(new URL('/readyz', t.url))).json();
    expect(after.internalErrors).toBe(before.internalErrors + 1);
  } finally {
    await rename(path.join(t.repo, '.git', 'objects-unreadable'), path.join(t.repo, '.git', 'objects'));
  }
});

test('every error class declares a category, and only the server\'s own faults are masked', () => {
  // A subclass without `category` does not compile (it is abstract); this pins what the built-in ones say.
  const categories: Record<string, ErrorCategory> = {
    GitError: new GitError('git failed in /secret/path', 'TIMEOUT', null, '').category,
    MigrationError: new MigrationError('checksum differs').category,
  };
  expect(categories).toEqual({ GitError: 'internal', MigrationError: 'internal' });
  for (const error of [new GitError('git failed in /secret/path', 'UNKNOWN', 128, 'fatal'), new MigrationError('m')]) {
    const masked = maskError(error, 'Unexpected error.') as Error & { extensions?: Record<string, unknown> };
    expect(masked.message).toBe('Unexpected error.');
    expect(masked.extensions?.code).not.toBe('BAD_USER_INPUT');
  }
  expect(RunboardError.prototype).toBeInstanceOf(Error);
});
