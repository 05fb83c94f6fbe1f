/** A run whose final status cannot be written does not stay RUNNING: the write is retried, then the run is marked FAILED, and the log says so. Real pi, scripted model. */
import { makePiEnvironment, startModelServer } from './helpers/model-server.js';
import { startRun, waitForStatus } from './helpers/runs.js';
import { sqliteOf, startTestServer } from './helpers/server.js';

test('a final status whose event cannot be written is retried, then the run is marked FAILED and logged at error', async () => {
  const model = await startModelServer(() => ({ text: 'All done.' }));
  const pi = await makePiEnvironment(model);
  const lines: string[] = [];
  const t = await startTestServer({ agentEnv: pi.env, env: { RUNBOARD_AGENT_ARGS: pi.args.join(' ') }, logStream: { write: (line: string) => void lines.push(line) } });
  try {
    // The terminal status event fails to insert, for real, every time.
    sqliteOf(t.server).exec(
      `CREATE TRIGGER refuse_success BEFORE INSERT ON "RunEvent" WHEN NEW."type" = 'status' AND NEW."data" LIKE '%SUCCEEDED%' BEGIN SELECT RAISE(ABORT, 'disk says no'); END`,
    );
    const runId = await startRun(t, 'Finish me');
    const run = await waitForStatus(t, runId, ['SUCCEEDED', 'FAILED', 'STOPPED', 'INTERRUPTED'], 60_000);
    expect(run.status).toBe('FAILED');
    expect(run.error).toMatch(/could not record this run's final status SUCCEEDED: disk says no/);
    expect(run.endedAt).not.toBeNull();

    const errors = lines.map((line) => JSON.parse(line)).filter((record) => record.level === 50);
    expect(errors.filter((record) => /final status SUCCEEDED failed \(try \d of 4\)/.test(record.msg))).toHaveLength(4);
    expect(errors.at(-1)).toMatchObject({ status: 'FAILED', msg: expect.stringMatching(/marked FAILED without its status event/) });
    // The board log saw the status the run ended with.
    const changes = (await t.server.orchestrator.boardLog.read(0, 100)).filter((e) => e.type === 'run_status_changed').map((e) => e.data);
    expect(changes.at(-1)).toMatchObject({ status: 'FAILED' });
  } finally {
    await t.close();
    await model.close();
    await pi.cleanup();
  }
}, 90_000);
