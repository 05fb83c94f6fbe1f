/**
 * runboard's typed SDK: `createRunboardClient` plus every generated operation document
 * (`BoardDocument`, `StartRunDocument`, …) and its result, variable, enum and input types.
 */
export * from './client.js';
export * from './generated/graphql.js';
