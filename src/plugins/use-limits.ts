/**
 * Request limits, all checked during validation, so an abusive query fails before anything runs:
 * depth, aliases and directives (graphql-armor), and a cost estimate in which a list field
 * multiplies the cost of what it selects by its page size. Introspection is exempt: GraphiQL needs it.
 * A refusal is a coded error with HTTP 400: QUERY_TOO_COMPLEX for depth, aliases and directives,
 * QUERY_TOO_EXPENSIVE for cost.
 */
import { maxAliasesPlugin } from '@escape.tech/graphql-armor-max-aliases';
import { maxDepthPlugin } from '@escape.tech/graphql-armor-max-depth';
import { maxDirectivesPlugin } from '@escape.tech/graphql-armor-max-directives';
import {
  GraphQLError,
  getNamedType,
  isAbstractType,
  getNullableType,
  isListType,
  isObjectType,
  Kind,
  type FieldNode,
  type GraphQLField,
  type GraphQLObjectType,
  type SelectionSetNode,
  type ValidationContext,
  type ValueNode,
} from 'graphql';
import type { Plugin } from 'graphql-yoga';
import type { ErrorCode } from '../schema/errors.js';

export interface LimitOptions {
  /** Deepest field nesting. @default 12 */
  maxDepth?: number;
  /** Aliases per operation. @default 30 */
  maxAliases?: number;
  /** Directives per operation. @default 50 */
  maxDirectives?: number;
  /** Estimated cost: each field costs 1, times the page size of every list above it. @default 50_000 */
  maxCost?: number;
  /** Page size assumed for a list field given no `first`/`last`, or given them through a variable. @default 100 */
  assumedPageSize?: number;
}

/** The request limits as validation rules; see the module comment. */
export function useLimits({ maxDepth = 12, maxAliases = 30, maxDirectives = 50, maxCost = 50_000, assumedPageSize = 100 }: LimitOptions = {}): Plugin[] {
  // graphql-armor throws "Syntax Error: …" with no code; reporting our own error instead gives it one.
  const rejection = { exposeLimits: true, propagateOnRejection: false, onReject: [reportTooComplex] };
  return [
    maxDepthPlugin({ n: maxDepth, ignoreIntrospection: true, ...rejection }),
    // Its default allow-list exempts `__typename`, so 100 aliases of it would pass a limit of 30.
    maxAliasesPlugin({ n: maxAliases, allowList: [], ...rejection }),
    maxDirectivesPlugin({ n: maxDirectives, ...rejection }),
    { onValidate: ({ addValidationRule }) => addValidationRule((context: ValidationContext) => costRule(context, maxCost, assumedPageSize)) },
  ];
}

/** A refusal of the limits: the code says which kind; 400 holds whatever the client accepts (`spec: false` keeps yoga from answering 200 to application/json). */
function limitError(message: string, code: Extract<ErrorCode, 'QUERY_TOO_COMPLEX' | 'QUERY_TOO_EXPENSIVE'>, extensions: Record<string, unknown> = {}): GraphQLError {
  return new GraphQLError(message, { extensions: { code, ...extensions, http: { status: 400, spec: false } } });
}

function reportTooComplex(context: ValidationContext | null, error: GraphQLError): void {
  context?.reportError(limitError(error.message.replace(/^Syntax Error: /, ''), 'QUERY_TOO_COMPLEX'));
}

function costRule(context: ValidationContext, maxCost: number, assumedPageSize: number) {
  return {
    OperationDefinition: {
      enter(operation: { selectionSet: SelectionSetNode; operation: string }) {
        const schema = context.getSchema();
        const root = operation.operation === 'query' ? schema.getQueryType() : operation.operation === 'mutation' ? schema.getMutationType() : schema.getSubscriptionType();
        if (!root) return;
        const cost = selectionCost(context, root, operation.selectionSet, assumedPageSize, new Set());
        if (cost > maxCost) {
          context.reportError(limitError(`Query is too expensive: estimated cost ${cost} exceeds the limit of ${maxCost}. Ask for smaller pages.`, 'QUERY_TOO_EXPENSIVE', { cost, maxCost }));
        }
      },
    },
  };
}

function selectionCost(context: ValidationContext, type: GraphQLObjectType, selectionSet: SelectionSetNode, pageSize: number, fragments: Set<string>): number {
  let cost = 0;
  for (const selection of selectionSet.selections) {
    if (selection.kind === Kind.FIELD) {
      if (selection.name.value.startsWith('__')) continue; // introspection
      const field = type.getFields()[selection.name.value];
      if (field) cost += fieldCost(context, field, selection, pageSize, fragments);
    } else {
      const fragment = selection.kind === Kind.FRAGMENT_SPREAD ? context.getFragment(selection.name.value) : selection;
      if (!fragment || (selection.kind === Kind.FRAGMENT_SPREAD && fragments.has(selection.name.value))) continue;
      const schema = context.getSchema();
      const condition = fragment.typeCondition ? schema.getType(fragment.typeCondition.name.value) : type;
      const nested = selection.kind === Kind.FRAGMENT_SPREAD ? new Set([...fragments, selection.name.value]) : fragments;
      // A fragment counts only where it applies: on `type` itself, or on an interface or union `type` belongs to.
      const applies = condition === type || (!!condition && isAbstractType(condition) && schema.isSubType(condition, type));
      if (applies) cost += selectionCost(context, type, fragment.selectionSet, pageSize, nested);
    }
  }
  return cost;
}

function fieldCost(context: ValidationContext, field: GraphQLField<unknown, unknown>, node: FieldNode, pageSize: number, fragments: Set<string>): number {
  const named = getNamedType(field.type);
  // An abstract type (RunEvent, BoardEvent) costs what its most expensive implementation would.
  const possible = isObjectType(named) ? [named] : isAbstractType(named) ? context.getSchema().getPossibleTypes(named) : [];
  const children = node.selectionSet ? Math.max(0, ...possible.map((type) => selectionCost(context, type, node.selectionSet!, pageSize, fragments))) : 0;
  // A connection's page size is counted on the connection field, not again on its `edges` list.
  const isPage = field.args.some((arg) => arg.name === 'first') || (isListType(getNullableType(field.type)) && field.name !== 'edges');
  // `listSize` is the most a list can hold; a literal `first`/`last` can only narrow it.
  const size = field.extensions?.listSize;
  return ownCost(field) + (isPage ? (typeof size === 'number' ? Math.min(size, multiplier(node, size)) : multiplier(node, pageSize)) : 1) * children;
}

/**
 * A field costs 1, unless it declares more in `extensions.cost`: a field that runs git does, because
 * one such call outweighs thousands of database reads.
 */
function ownCost(field: GraphQLField<unknown, unknown>): number {
  const declared = field.extensions?.cost;
  return typeof declared === 'number' ? declared : 1;
}

/** The page size a list field asks for: its literal `first`/`last`, or the assumed size. */
function multiplier(node: FieldNode, pageSize: number): number {
  const arg = node.arguments?.find((a) => a.name.value === 'first' || a.name.value === 'last');
  const value: ValueNode | undefined = arg?.value;
  return value?.kind === Kind.INT ? Math.max(1, Number(value.value)) : pageSize;
}
