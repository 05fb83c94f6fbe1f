/**
 * Files a card, runs an agent on it, follows the run event by event, prints its diff stat, and
 * merges it into the main checkout when it succeeded and merges cleanly.
 *
 *   npx tsx examples/automate-card.ts --url http://127.0.0.1:4000/graphql --title "Add a CHANGELOG" \
 *     [--description "Keep a Changelog format"] [--strategy MERGE|SQUASH]
 *
 * RUNBOARD_TOKEN, when set, is sent as the bearer token. Exits 1 with a one-line reason when any step
 * fails: a bad argument, a GraphQL or network error, a run that ends FAILED/STOPPED/INTERRUPTED, a run
 * that committed nothing, or a merge conflict.
 */
import { parseArgs } from 'node:util';
import { createRunboardClient, RunboardError, type MergeStrategy, type RunDiff, type RunEvent } from '../sdk/index.js';

/** A step that did not go as planned; its message is the reason printed on exit. */
class StepFailed extends Error {}

const USAGE = 'usage: automate-card --url <graphql url> --title <title> [--description <text>] [--strategy MERGE|SQUASH]';
const STRATEGIES: readonly MergeStrategy[] = ['MERGE', 'SQUASH'];

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { url: { type: 'string' }, title: { type: 'string' }, description: { type: 'string' }, strategy: { type: 'string', default: 'MERGE' } },
  });
  const strategy = STRATEGIES.find((name) => name === values.strategy?.toUpperCase());
  if (!values.url || !values.title) throw new StepFailed(USAGE);
  if (!strategy) throw new StepFailed(`--strategy must be MERGE or SQUASH, not ${values.strategy}`);

  const client = createRunboardClient({ url: values.url, token: process.env.RUNBOARD_TOKEN || undefined });
  try {
    const card = await client.createCard({ title: values.title, description: values.description, column: 'IN_PROGRESS' });
    console.log(`card ${card.id} "${card.title}" in ${card.column}`);
    const started = await client.startRun({ cardId: card.id });
    console.log(`run ${started.id} ${started.status}`);

    for await (const event of client.followRunEvents(started.id, { untilSettled: true })) console.log(describeEvent(event));

    const run = await client.run(started.id);
    if (run.status !== 'SUCCEEDED') {
      const reason = `run ${run.status}${run.error ? `: ${run.error}` : ''}`;
      await client.addComment(card.id, `automate-card: ${reason}`);
      throw new StepFailed(reason);
    }

    const review = await client.runDiff(run.id);
    printDiff(review);
    if (!review.commits?.length) throw new StepFailed(`run SUCCEEDED but committed nothing; its work is in ${run.worktreePath}`);

    const merge = await client.mergeRun(run.id, strategy);
    if (!merge.ok) {
      const paths = merge.conflictingPaths?.join(', ') || 'unknown paths';
      await client.addComment(card.id, `automate-card: merge conflict in ${paths}`);
      throw new StepFailed(`merge conflict in ${paths}${merge.message ? ` (${merge.message})` : ''}`);
    }
    await client.moveCard(card.id, 'DONE');
    console.log(`merged ${run.branch} into ${run.baseBranch} as ${merge.mergedSha?.slice(0, 12)} (${strategy}); card moved to DONE`);
  } finally {
    await client.close();
  }
}

/** `#12 tool_start bash git commit -qm "…"`: the seq, the kind and the gist of the event, on one line. */
function describeEvent(event: RunEvent): string {
  const detail = ((): string => {
    switch (event.__typename) {
      case 'StatusChangedEvent':
        return [event.status, event.reason, event.error].filter(Boolean).join(': ');
      case 'UserMessageSentEvent':
        return `${event.mode} ${event.text}`;
      case 'MessageDeliveredEvent':
      case 'AssistantTextEvent':
      case 'ThinkingEvent':
        return event.text;
      case 'ToolStartedEvent':
        return `${event.tool} ${argsSummary(event.args)}`;
      case 'ToolProgressEvent':
        return `${event.tool} ${event.output.trimEnd().split('\n').at(-1) ?? ''}`;
      case 'ToolEndedEvent':
        return `${event.tool} ${event.isError ? 'error' : 'ok'} ${event.output}`;
      case 'UsageEvent':
        return `${event.inputTokens} in, ${event.outputTokens} out tokens, $${event.costUsd.toFixed(4)}`;
      case 'ModelErrorEvent':
      case 'WarningEvent':
        return event.message;
      case 'RetryStartedEvent':
        return `attempt ${event.attempt ?? '?'}/${event.maxAttempts ?? '?'} in ${event.delayMs ?? '?'} ms: ${event.error ?? ''}`;
      case 'RetryEndedEvent':
        return event.success ? 'recovered' : `gave up: ${event.error ?? ''}`;
      case 'QueueChangedEvent':
        return `steering ${event.steering}, follow-up ${event.followUp}`;
      case 'CompactionEvent':
        return `${event.phase} ${event.reason ?? ''}`;
      case 'PlanUpdatedEvent':
        return event.entries.map((entry) => `[${entry.status}] ${entry.content}`).join('; ');
      case 'StderrEvent':
        return event.line;
      case 'WorktreeRemovedEvent':
        return event.branchDeleted ? 'branch deleted' : `branch kept with ${event.unmergedCommits} unmerged commits`;
      case 'MergeEvent':
        return event.ok ? `${event.strategy} ${event.mergedSha ?? ''}` : `conflict in ${event.conflictingPaths.join(', ')}`;
      case 'AgentBoardChangeEvent':
        return `${event.action} ${event.column ?? ''} ${event.body ?? ''}`;
      case 'PlaytestStartedEvent':
        return event.command;
      case 'PlaytestOutputEvent':
        return `${event.stream} ${event.line}`;
      case 'PlaytestDroppedEvent':
        return `${event.count} lines dropped`;
      case 'PlaytestExitedEvent':
        return `exit ${event.exitCode ?? event.signal ?? '?'}${event.stopped ? ' (stopped)' : ''}`;
      case 'UnrecognizedEvent':
        return `${event.originalType} ${event.preview}`;
      case 'AgentStartedEvent':
      case 'AgentEndedEvent':
        return '';
    }
  })();
  return `#${event.seq} ${event.type} ${oneLine(detail)}`.trimEnd();
}

/** A tool call's command or path when it has one (bash, write, edit, read), else its arguments as JSON. */
function argsSummary(args: unknown): string {
  if (typeof args === 'object' && args !== null) {
    if ('command' in args && typeof args.command === 'string') return args.command;
    if ('path' in args && typeof args.path === 'string') return args.path;
  }
  return JSON.stringify(args ?? {});
}

function printDiff({ diff, commits }: RunDiff): void {
  const stat = diff?.stat;
  const count = (n: number | null | undefined, what: string) => `${n ?? 0} ${what}${n === 1 ? '' : 's'}`;
  console.log(`diff: ${count(stat?.filesChanged, 'file')} changed, ${count(stat?.insertions, 'insertion')}(+), ${count(stat?.deletions, 'deletion')}(-) in ${count(commits?.length, 'commit')}`);
  for (const file of diff?.files ?? []) {
    const renamed = file.previousPath ? `${file.previousPath} -> ` : '';
    const lines = file.binary ? 'binary' : `+${file.additions} -${file.deletions}`;
    console.log(`  ${file.status?.padEnd(8)} ${renamed}${file.path}  ${lines}`);
  }
}

function oneLine(text: string, max = 160): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

main().catch((error: unknown) => {
  const reason = error instanceof RunboardError && error.code ? `${error.code}: ${error.message}` : error instanceof Error ? error.message : String(error);
  console.error(`automate-card: ${oneLine(reason, 500)}`);
  process.exitCode = 1;
});
