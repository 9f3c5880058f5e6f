// @urql/core with preferGetMethod: the query travels as GET /graphql?query=... (checked on the
// requests it makes) and comes back with data.
import { Client, fetchExchange, gql } from '@urql/core';
import { baseUrl, createMonitor, deadline, fail } from './lib.mjs';

const base = baseUrl();
deadline(30, 'the urql check');
const monitor = await createMonitor(base, 'urql monitor');

const requests = [];
const client = new Client({
  url: `${base}/graphql`,
  exchanges: [fetchExchange],
  preferGetMethod: true,
  requestPolicy: 'network-only',
  fetch: (input, init = {}) => {
    requests.push({ method: init.method ?? 'GET', url: String(input) });
    return fetch(input, init);
  },
});

const result = await client
  .query(gql`query Monitor($id: ID!) { monitor(id: $id) { id name } }`, { id: monitor.id })
  .toPromise();
if (result.error) fail(`urql's GET query failed: ${result.error.message}`);
if (result.data?.monitor?.name !== 'urql monitor') {
  fail(`urql's GET query returned ${JSON.stringify(result.data)}, not the monitor`);
}
if (requests.length !== 1) fail(`urql made ${requests.length} requests, expected one: ${JSON.stringify(requests)}`);
const [request] = requests;
const url = new URL(request.url);
if (request.method !== 'GET' || !url.searchParams.get('query')?.replace(/\s+/g, '').includes('monitor(id:$id)')) {
  fail(`urql did not send the query over GET: ${JSON.stringify(request)}`);
}
console.log('OK: urql ran a query over GET and got data');
