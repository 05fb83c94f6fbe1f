/** Run events through the typed API, in a shape tests can filter: `{ seq, type, data }` with `data` the kind's own fields. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { projectRoot } from './server.js';

/** The SDK's `RunEventFields` fragment, the one list of every kind's fields; append it to a document that spreads it. */
export const RUN_EVENT_FIELDS = (() => {
  const source = readFileSync(path.join(projectRoot, 'sdk/operations/fragments.graphql'), 'utf8');
  const start = source.indexOf('fragment RunEventFields');
  return source.slice(start, source.indexOf('\n}\n', start) + 3);
})();

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
