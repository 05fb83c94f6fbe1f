/** Run events through the typed API, in a shape tests can filter: `{ seq, type, data }` with `data` the kind's own fields. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { encodeGlobalID } from '@pothos/plugin-relay';
import { projectRoot, type TestServer } from './server.js';

/** One fragment of the SDK's `sdk/operations/fragments.graphql`, to append to a document that spreads it. */
export function sdkFragment(name: string): string {
  const source = readFileSync(path.join(projectRoot, 'sdk/operations/fragments.graphql'), 'utf8');
  const start = source.indexOf(`fragment ${name} `);
  if (start < 0) throw new Error(`no fragment ${name} in sdk/operations/fragments.graphql`);
  return source.slice(start, source.indexOf('\n}\n', start) + 3);
}

/** The SDK's `RunEventFields` fragment, the one list of every kind's fields. */
export const RUN_EVENT_FIELDS = sdkFragment('RunEventFields');

/** A card and a RUNNING run on it, written as the run manager would, for tests that append its events themselves. */
export async function makeActiveRun(t: TestServer, title = 'events'): Promise<{ id: string; globalId: string }> {
  const db = t.server.orchestrator.db.client;
  const card = await db.card.create({ data: { title, position: 0 } });
  const run = await db.run.create({ data: { cardId: card.id, prompt: 'p', status: 'RUNNING' } });
  return { id: run.id, globalId: encodeGlobalID('Run', run.id) };
}

/** A typed event as a test reads it: its stored kind in `type`, every other field of its kind in `data`. */
export interface TestRunEvent {
  seq: number;
  type: string;
  typename: string;
  data: Record<string, any>;
}

/** `{ __typename, seq, type, createdAt, …fields }` → TestRunEvent. */
export function withData(event: Record<string, any>): TestRunEvent {
  const { __typename, seq, type, createdAt: _createdAt, ...data } = event;
  return { seq, type, typename: __typename, data };
}
