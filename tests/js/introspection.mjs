// graphql-js's standard introspection query, every option on, over POST: it must succeed, and
// the schema it describes must print the same as the repository's schema.graphql (both sorted
// lexicographically, so only content counts, not order).
// Usage: node introspection.mjs BASE_URL [path/to/schema.graphql]
import { readFileSync } from 'node:fs';
import {
  GraphQLSchema,
  buildClientSchema,
  buildSchema,
  getIntrospectionQuery,
  lexicographicSortSchema,
  printSchema,
} from 'graphql';
import { baseUrl, deadline, fail, graphql } from './lib.mjs';

const base = baseUrl();
deadline(30, 'the introspection check');
const schemaFile = process.argv[3] ?? new URL('../../schema.graphql', import.meta.url);

const query = getIntrospectionQuery({
  descriptions: true,
  specifiedByUrl: true,
  directiveIsRepeatable: true,
  schemaDescription: true,
  inputValueDeprecation: true,
  oneOf: true,
});
const data = await graphql(base, query);

let client;
try {
  client = buildClientSchema(data);
} catch (err) {
  fail(`the introspection result does not build a schema: ${err.message}`);
}
// async-graphql answers `__schema { description }` with a fixed text describing the __Schema
// type itself, not a description of ours (the SDL it prints has none), so that one string is
// left out; every type, field, argument, directive and their descriptions are compared.
if (typeof data.__schema.description !== 'string' && data.__schema.description !== null) {
  fail(`__schema.description is ${JSON.stringify(data.__schema.description)}`);
}
const served = printSchema(lexicographicSortSchema(new GraphQLSchema({ ...client.toConfig(), description: undefined })));
const committed = printSchema(lexicographicSortSchema(buildSchema(readFileSync(schemaFile, 'utf8'))));

if (served !== committed) {
  const a = served.split('\n');
  const b = committed.split('\n');
  const line = a.findIndex((text, i) => text !== b[i]);
  const at = line === -1 ? Math.min(a.length, b.length) : line;
  fail(
    `the served schema differs from schema.graphql from sorted line ${at + 1}:\n` +
      `  served:    ${JSON.stringify(a.slice(at, at + 3))}\n` +
      `  committed: ${JSON.stringify(b.slice(at, at + 3))}`,
  );
}
const types = Object.keys(client.getTypeMap()).filter((name) => !name.startsWith('__'));
console.log(`OK: introspection with every option matches schema.graphql (${types.length} types)`);
