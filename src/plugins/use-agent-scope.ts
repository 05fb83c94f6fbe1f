/**
 * Default-deny for agents: before anything executes, an agent's operation may only name the root
 * mutations and subscriptions in AGENT_MUTATIONS / AGENT_SUBSCRIPTIONS (queries are reads and are
 * allowed). The resolvers then check that the card or run named is the agent's own.
 */
import { getOperationAST, Kind, type DocumentNode } from 'graphql';
import { createGraphQLError, type Plugin } from 'graphql-yoga';
import { AGENT_MUTATIONS, AGENT_SUBSCRIPTIONS, type Principal } from '../schema/auth.js';

function forbiddenFields(document: DocumentNode, operationName: string | null | undefined): string[] {
  const operation = getOperationAST(document, operationName);
  if (!operation || operation.operation === 'query') return [];
  const allowed = operation.operation === 'mutation' ? AGENT_MUTATIONS : AGENT_SUBSCRIPTIONS;
  // Root fields only; fragments on the root type are spelled out by clients rarely, and refused here.
  return operation.selectionSet.selections.flatMap((selection) =>
    selection.kind === Kind.FIELD ? (selection.name.value === '__typename' || allowed.has(selection.name.value) ? [] : [selection.name.value]) : ['(fragment)'],
  );
}

export function useAgentScope(): Plugin<{ principal?: Principal }> {
  const check = ({ args, setResultAndStopExecution }: { args: { document: DocumentNode; operationName?: string | null; contextValue: { principal?: Principal } }; setResultAndStopExecution: (result: never) => void }) => {
    if (args.contextValue.principal?.kind !== 'agent') return;
    const refused = forbiddenFields(args.document, args.operationName);
    if (!refused.length) return;
    const error = createGraphQLError(`an agent may not call ${refused.join(', ')}`, { extensions: { code: 'FORBIDDEN' } });
    setResultAndStopExecution({ errors: [error] } as never);
  };
  return { onExecute: check, onSubscribe: check } as Plugin<{ principal?: Principal }>;
}
