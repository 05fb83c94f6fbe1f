/** Pothos configuration only: plugins, generics and root types. Types live in one file per concept. */
import SchemaBuilder from '@pothos/core';
import PrismaPlugin from '@pothos/plugin-prisma';
import RelayPlugin from '@pothos/plugin-relay';
import { isObjectType, type GraphQLSchema } from 'graphql';
import type PrismaTypes from '../generated/pothos-types.js';
import { getDatamodel } from '../generated/pothos-types.js';
import { InvalidInputError } from '../orchestrator/errors.js';
import type { Context } from './context.js';

/** Page size when a connection gets no `first`/`last`, and the most it ever returns. */
export const DEFAULT_PAGE_SIZE = 20;
export const MAX_PAGE_SIZE = 100;
/** The query-cost weight of a field that runs git (an ordinary field weighs 1); read by plugins/use-limits.ts. */
export const GIT_FIELD = { extensions: { cost: 1_000 } } as const;

export const builder = new SchemaBuilder<{
  PrismaTypes: PrismaTypes;
  Context: Context;
  Scalars: {
    DateTime: { Input: Date; Output: Date };
    JSON: { Input: unknown; Output: unknown };
  };
  DefaultEdgesNullability: false;
  DefaultNodeNullability: false;
  // Fields are non-null unless they say otherwise, so typed clients need not check for null everywhere.
  DefaultFieldNullability: false;
}>({
  defaultFieldNullability: false,
  plugins: [PrismaPlugin, RelayPlugin],
  prisma: {
    client: (ctx) => ctx.prisma,
    dmmf: getDatamodel(),
    exposeDescriptions: true,
    filterConnectionTotalCount: true,
    defaultConnectionSize: DEFAULT_PAGE_SIZE,
    maxConnectionSize: MAX_PAGE_SIZE,
    onUnusedQuery: process.env.NODE_ENV === 'production' ? null : 'warn',
  },
  relay: {
    clientMutationId: 'omit',
    cursorType: 'String',
    edgesFieldOptions: { nullable: false },
    nodeFieldOptions: { nullable: false },
    nodeQueryOptions: { resolve: (_root, { id }, _ctx, info, resolveNode) => resolveNode(nodeId(id, 'id', info.schema)) },
    nodesQueryOptions: { resolve: (_root, { ids }, _ctx, info, resolveNodes) => resolveNodes(ids.map((id) => nodeId(id, 'ids', info.schema))) },
  },
});

/** An id whose type is no node is the caller's mistake, like a malformed id; Pothos would answer "X has not been implemented" with no code. */
function nodeId<T extends { typename: string }>(id: T, field: string, schema: GraphQLSchema): T {
  const type = schema.getType(id.typename);
  if (!isObjectType(type) || !type.getInterfaces().some((i) => i.name === 'Node')) throw new InvalidInputError('the id does not name a node of this API', field);
  return id;
}

builder.queryType({});
builder.mutationType({});
builder.subscriptionType({});
