// Types for every GraphQL document in src/ are generated from the committed SDL snapshot (the API's
// contract, checked by tests/unit/api/test_schema_sdl.py): a schema change that breaks a query breaks
// `npm run build`. documentMode "string" keeps the graphql-js runtime out of the bundle.
import type { CodegenConfig } from "@graphql-codegen/cli";

const config: CodegenConfig = {
  schema: "../tests/unit/api/snapshots/schema.graphql",
  documents: ["src/**/*.ts", "!src/gql/**"],
  ignoreNoDocuments: false,
  silent: true,
  errorsOnly: true,
  generates: {
    "src/gql/": {
      preset: "client",
      config: { documentMode: "string", enumsAsTypes: true, useTypeImports: true, scalars: { JSON: "unknown" } },
      presetConfig: { fragmentMasking: false },
    },
  },
};
export default config;
