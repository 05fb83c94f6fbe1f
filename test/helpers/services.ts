/**
 * A throwaway PostgreSQL and Redis for one test file (scripts/services.sh): started in a temp dir on
 * free loopback ports, removed by `stop`. Each file gets its own, so test files stay independent.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execa } from 'execa';

export interface Services {
  /** postgresql://… of a fresh cluster's `postgres` database. */
  databaseUrl: string;
  /** redis://… of a fresh Redis with nothing persisted. */
  redisUrl: string;
  /** Another empty database on the same cluster (for a second, independent deployment). */
  createDatabase(name: string): Promise<string>;
  stop(): Promise<void>;
}

const SCRIPT = path.resolve(import.meta.dirname, '../../scripts/services.sh');

export async function startServices(): Promise<Services> {
  const dir = mkdtempSync(path.join(tmpdir(), 'runboard-svc-'));
  const { stdout } = await execa(SCRIPT, ['start', dir]);
  const vars = Object.fromEntries(stdout.split('\n').map((line) => line.split(/=(.*)/s).slice(0, 2) as [string, string]));
  const databaseUrl = vars.DATABASE_URL!;
  return {
    databaseUrl,
    redisUrl: vars.REDIS_URL!,
    async createDatabase(name) {
      if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`bad database name ${name}`);
      const pg = await import('pg');
      const client = new pg.default.Client({ connectionString: databaseUrl });
      await client.connect();
      try {
        await client.query(`CREATE DATABASE ${name}`);
      } finally {
        await client.end();
      }
      return databaseUrl.replace(/\/postgres$/, `/${name}`);
    },
    stop: async () => void (await execa(SCRIPT, ['stop', dir])),
  };
}
