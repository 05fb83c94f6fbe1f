/**
 * graphql-js reports a variable that fails coercion (`$column: "SIDEWAYS"` for an enum) as a plain
 * error with no code. It is the client's input at fault, so it gets BAD_USER_INPUT like every other
 * input error. Such errors are raised before any resolver runs, so they have no path.
 */
import { GraphQLError } from 'graphql';
import { createGraphQLError, type Plugin } from 'graphql-yoga';

const VARIABLE_ERROR = /^Variable "\$[_A-Za-z][_0-9A-Za-z]*" /;

export function useVariableErrorCodes(): Plugin {
  return {
    onExecute: () => ({
      onExecuteDone: ({ result, setResult }) => {
        if (!('errors' in result) || !result.errors?.length) return;
        setResult({ ...result, errors: result.errors.map(withCode) });
      },
    }),
  };
}

function withCode(error: GraphQLError): GraphQLError {
  if (error.path || error.extensions?.code || !VARIABLE_ERROR.test(error.message)) return error;
  return createGraphQLError(error.message, { nodes: error.nodes, extensions: { ...error.extensions, code: 'BAD_USER_INPUT' } });
}
