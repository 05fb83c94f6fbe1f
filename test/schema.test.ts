/** The committed schema.graphql must match the Pothos schema: run `npm run print-schema` to update it. */
import { readFileSync } from 'node:fs';
import { printSchema } from 'graphql';
import { schema } from '../src/schema/index.js';

test('schema.graphql is up to date (npm run print-schema)', () => {
  const committed = readFileSync(new URL('../schema.graphql', import.meta.url), 'utf8');
  expect(committed).toBe(`${printSchema(schema)}\n`);
});
