/**
 * Default-deny for agents: before anything executes, an agent's operation may only name the root
 * mutations and subscriptions in AGENT_MUTATIONS / AGENT_SUBSCRIPTIONS (queries are reads and are
 * allowed). The orchestrator then checks that the card or run named is the agent's own. Reads of
 * another run's private fields (AGENT_PRIVATE_RUN_FIELDS) are refused field by field, wherever the
 * run is reached from (`run`, `runs`, `node`, a card's runs).
 */
import { defaultFieldResolver, getOperationAST, isObjectType, Kind, type DocumentNode, type GraphQLFieldResolver, type GraphQLSchema } from 'graphql';
import { createGraphQLError, type Plugin } from 'graphql-yoga';
import { requireOwnRun } from '../orchestrator/actor.js';
import { AGENT_MUTATIONS, AGENT_PRIVATE_RUN_FIELDS, AGENT_SUBSCRIPTIONS, type Principal } from '../schema/auth.js';

function forbiddenFields(document: DocumentNode, operationName: string | null | undefined): string[] {
  const operation = getOperationAST(document, operationName);
  if (!operation || operation.operation === 'query') return [];
  const allowed = operation.operation === 'mutation' ? AGENT_MUTATIONS : AGENT_SUBSCRIPTIONS;
  // Root fields only; fragments on the root type are spelled out by clients rarely, and refused here.
  return operation.selectionSet.selections.flatMap((selection) =>
    selection.kind === Kind.FIELD ? (selection.name.value === '__typename' || allowed.has(selection.name.value) ? [] : [selection.name.value]) : ['(fragment)'],
  );
}

/** Marks resolvers already wrapped, so a schema shared by several servers is wrapped once. */
const GUARDED = Symbol('runboard.agentRunGuard');

/** Wraps the private fields of `Run` so an agent reads them on its own run only. */
function guardPrivateRunFields(schema: GraphQLSchema): void {
  const run = schema.getType('Run');
  if (!isObjectType(run)) return;
  for (const field of Object.values(run.getFields())) {
    if (!AGENT_PRIVATE_RUN_FIELDS.has(field.name)) continue;
    const resolve = (field.resolve ?? defaultFieldResolver) as GraphQLFieldResolver<unknown, unknown> & { [GUARDED]?: true };
    if (resolve[GUARDED]) continue;
    const guarded: typeof resolve = (parent, args, context, info) => {
      const principal = (context as { principal?: Principal }).principal;
      if (principal?.kind === 'agent') requireOwnRun(principal, (parent as { id?: string }).id ?? '');
      return resolve(parent, args, context, info);
    };
    guarded[GUARDED] = true;
    field.resolve = guarded;
  }
}

export function useAgentScope(): Plugin<{ principal?: Principal }> {
  const check = ({ args, setResultAndStopExecution }: { args: { document: DocumentNode; operationName?: string | null; contextValue: { principal?: Principal } }; setResultAndStopExecution: (result: never) => void }) => {
    if (args.contextValue.principal?.kind !== 'agent') return;
    const refused = forbiddenFields(args.document, args.operationName);
    if (!refused.length) return;
    const error = createGraphQLError(`an agent may not call ${refused.join(', ')}`, { extensions: { code: 'FORBIDDEN' } });
    setResultAndStopExecution({ errors: [error] } as never);
  };
  return { onSchemaChange: ({ schema }) => guardPrivateRunFields(schema), onExecute: check, onSubscribe: check } as Plugin<{ principal?: Principal }>;
}
