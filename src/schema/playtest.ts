/** Playtests: the run's dev command (RUNBOARD_PLAYTEST_COMMAND) in its worktree, output in runEvents. */
import { PLAYTEST_LINES_PER_SECOND, PLAYTEST_LINE_CHARS } from '../orchestrator/playtest.js';
import { builder } from './builder.js';
import { Run } from './run.js';

interface PlaytestShape {
  command: string;
  startedAt: Date;
  endedAt: Date | null;
  exitCode: number | null;
  signal: string | null;
}

const Playtest = builder.objectRef<PlaytestShape>('Playtest').implement({
  description: `The run's latest playtest. Its output arrives in runEvents as playtest_output { stream, line } (lines cut at ${PLAYTEST_LINE_CHARS} characters, at most ${PLAYTEST_LINES_PER_SECOND} a second; dropped lines are counted in playtest_dropped { count }), then playtest_exit { exitCode, signal, droppedLines, stopped }.`,
  fields: (t) => ({
    running: t.boolean({ resolve: (p) => p.endedAt === null }),
    command: t.exposeString('command'),
    startedAt: t.expose('startedAt', { type: 'DateTime' }),
    endedAt: t.expose('endedAt', { type: 'DateTime', nullable: true }),
    exitCode: t.exposeInt('exitCode', { nullable: true, description: 'Set when the command exited by itself.' }),
    signal: t.exposeString('signal', { nullable: true, description: 'The signal that ended it (SIGTERM when stopped).' }),
  }),
});

builder.prismaObjectFields(Run, (t) => ({
  playtest: t.field({
    type: Playtest,
    nullable: true,
    description: 'Null until a playtest is started for this run.',
    select: { playtestCommand: true, playtestStartedAt: true, playtestEndedAt: true, playtestExitCode: true, playtestSignal: true },
    resolve: (run) =>
      run.playtestCommand && run.playtestStartedAt
        ? { command: run.playtestCommand, startedAt: run.playtestStartedAt, endedAt: run.playtestEndedAt, exitCode: run.playtestExitCode, signal: run.playtestSignal }
        : null,
  }),
}));

builder.mutationFields((t) => ({
  startPlaytest: t.prismaField({
    type: Run,
    description: 'Runs RUNBOARD_PLAYTEST_COMMAND (default `cargo run`) in the run\'s worktree, even while its agent works. CONFLICT when one is already running or the worktree is gone.',
    args: { runId: t.arg.globalID({ for: Run, required: true }) },
    resolve: async (query, _root, { runId }, ctx) => {
      await ctx.orchestrator.worktrees.startPlaytest(runId.id);
      return ctx.prisma.run.findUniqueOrThrow({ ...query, where: { id: runId.id } });
    },
  }),
  stopPlaytest: t.prismaField({
    type: Run,
    description: 'Ends the playtest\'s whole process group (SIGTERM, then SIGKILL after a grace period). CONFLICT when none is running.',
    args: { runId: t.arg.globalID({ for: Run, required: true }) },
    resolve: async (query, _root, { runId }, ctx) => {
      await ctx.orchestrator.worktrees.stopPlaytest(runId.id);
      return ctx.prisma.run.findUniqueOrThrow({ ...query, where: { id: runId.id } });
    },
  }),
}));
