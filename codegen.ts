/**
 * GraphQL Code Generator configuration for the SDK: `npm run codegen` reads the committed
 * `schema.graphql` and the operations in `sdk/operations/`, and writes typed documents
 * (TypedDocumentNode) and their result and variable types to `sdk/generated/`, which is committed.
 * `test/sdk.test.ts` fails when that output is stale.
 */
import type { CodegenConfig } from '@graphql-codegen/cli';

const config: CodegenConfig = {
  schema: 'schema.graphql',
  documents: ['sdk/operations/**/*.graphql'],
  // NodeNext: relative imports in the output end in `.js`.
  emitLegacyCommonJSImports: false,
  generates: {
    'sdk/generated/': {
      preset: 'client',
      // Fragments only share field sets between operations; their fields stay readable in each result.
      presetConfig: { fragmentMasking: false },
      config: {
        useTypeImports: true,
        enumsAsTypes: true,
        strictScalars: true,
        scalars: { DateTime: 'string', JSON: 'unknown', ID: 'string' },
      },
    },
  },
};

export default config;
