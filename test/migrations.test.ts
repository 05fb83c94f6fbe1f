/** Migrations apply at start, offline, and agree with the Prisma CLI's own bookkeeping. */
import { cpSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { execa } from 'execa';
import { availableMigrations, migrateDatabase, MIGRATIONS_DIR } from '../src/orchestrator/migrations.js';
import { removeDirs, tempDir } from './helpers/repo.js';
import { projectRoot } from './helpers/server.js';

let dir: string;
beforeAll(async () => {
  dir = await tempDir();
});
afterAll(() => removeDirs(dir));

function prisma(args: string[], file: string) {
  return execa(path.join(projectRoot, 'node_modules', '.bin', 'prisma'), args, {
    cwd: projectRoot,
    env: { DATABASE_URL: `file:${file}`, CHECKPOINT_DISABLE: '1' },
    reject: false,
  });
}

test('a fresh database is migrated, and `prisma migrate status` agrees it is up to date', async () => {
  const file = path.join(dir, 'fresh.db');
  const outcome = migrateDatabase(file);
  expect(outcome.applied).toEqual(availableMigrations());
  expect(migrateDatabase(file).applied).toEqual([]);
  const status = await prisma(['migrate', 'status'], file);
  expect(status.stdout).toMatch(/Database schema is up to date/);
});

test('a database migrated by `prisma migrate deploy` is accepted as is', async () => {
  const file = path.join(dir, 'cli.db');
  const deploy = await prisma(['migrate', 'deploy'], file);
  expect(deploy.exitCode).toBe(0);
  expect(migrateDatabase(file).applied).toEqual([]);
});

test('a database from an older version gets only the newer migrations, keeping its data', async () => {
  const file = path.join(dir, 'old.db');
  const older = path.join(dir, 'older-migrations');
  const newer = path.join(dir, 'newer-migrations');
  const [first] = availableMigrations();
  mkdirSync(older);
  cpSync(path.join(MIGRATIONS_DIR, first), path.join(older, first), { recursive: true });
  cpSync(older, newer, { recursive: true });
  mkdirSync(path.join(newer, '99990101000000_add_flag'));
  writeFileSync(path.join(newer, '99990101000000_add_flag', 'migration.sql'), 'ALTER TABLE "Card" ADD COLUMN "flag" BOOLEAN NOT NULL DEFAULT false;\n');

  migrateDatabase(file, older);
  const db = new Database(file);
  db.prepare(`INSERT INTO "Card" (id, title, position, updatedAt) VALUES ('c1', 'kept', 0, CURRENT_TIMESTAMP)`).run();
  db.close();

  expect(migrateDatabase(file, newer).applied).toEqual(['99990101000000_add_flag']);
  const after = new Database(file, { readonly: true });
  expect(after.prepare(`SELECT title, flag FROM "Card"`).all()).toEqual([{ title: 'kept', flag: 0 }]);
  after.close();
});

test('a migration edited after it was applied is refused rather than guessed at', async () => {
  const file = path.join(dir, 'edited.db');
  const edited = path.join(dir, 'edited-migrations');
  cpSync(MIGRATIONS_DIR, edited, { recursive: true });
  migrateDatabase(file, edited);
  const [first] = availableMigrations(edited);
  writeFileSync(path.join(edited, first, 'migration.sql'), '-- changed\n', { flag: 'a' });
  expect(() => migrateDatabase(file, edited)).toThrow(/changed after it was applied/);
});
