// Apollo Client with automatic persisted queries (createPersistedQueryLink + HttpLink), over
// POST and with useGETForHashedQueries. For one query text, the first run sends the hash
// alone and gets PERSISTED_QUERY_NOT_FOUND, the link retries with the full query, and a
// second run is sent by hash alone and succeeds. Every request is recorded by a custom fetch
// and its response read back, so each step is checked on the wire.
import { ApolloClient, HttpLink, InMemoryCache, gql } from '@apollo/client';
import { createPersistedQueryLink } from '@apollo/client/link/persisted-queries';
import { baseUrl, createMonitor, deadline, fail } from './lib.mjs';

const base = baseUrl();
deadline(30, 'the Apollo APQ check');
const monitor = await createMonitor(base, 'apollo monitor');

/** SHA-256 of the query text, lowercase hex, as APQ expects. */
async function sha256(text) {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text));
  return Buffer.from(digest).toString('hex');
}

/** One recorded exchange: what was sent (method, query text or not, hash) and what came back. */
function describe(method, url, body) {
  const fromUrl = new URL(url).searchParams;
  const sent = body ? JSON.parse(body) : {
    query: fromUrl.get('query') ?? undefined,
    extensions: fromUrl.get('extensions') ? JSON.parse(fromUrl.get('extensions')) : undefined,
  };
  return {
    method,
    query: typeof sent.query === 'string' && sent.query.length > 0 ? sent.query : null,
    hash: sent.extensions?.persistedQuery?.sha256Hash,
  };
}

async function scenario(useGETForHashedQueries, query) {
  const label = useGETForHashedQueries ? 'with useGETForHashedQueries' : 'over POST';
  const exchanges = [];
  const recordingFetch = async (url, init = {}) => {
    const response = await fetch(url, init);
    const text = await response.clone().text();
    let codes = [];
    try {
      codes = (JSON.parse(text).errors ?? []).map((e) => e.extensions?.code);
    } catch {
      fail(`${label}: ${init.method} ${url} answered ${response.status} with a body that is not JSON`);
    }
    exchanges.push({ ...describe(init.method ?? 'GET', String(url), init.body), status: response.status, codes });
    return response;
  };
  const client = new ApolloClient({
    cache: new InMemoryCache(),
    link: createPersistedQueryLink({ sha256, useGETForHashedQueries }).concat(
      new HttpLink({ uri: `${base}/graphql`, fetch: recordingFetch }),
    ),
  });
  const document = gql(query);

  for (const run of ['first', 'second']) {
    let result;
    try {
      result = await client.query({ query: document, variables: { id: monitor.id }, fetchPolicy: 'no-cache' });
    } catch (err) {
      fail(`${label}: the ${run} run failed: ${err.message}; requests: ${JSON.stringify(exchanges)}`);
    }
    const names = Object.values(result.data ?? {}).map((m) => m?.name);
    if (names[0] !== 'apollo monitor') {
      fail(`${label}: the ${run} run returned ${JSON.stringify(result.data)}, not the monitor`);
    }
  }

  // The hash is of the query text as Apollo prints it, which the retry carries.
  const hash = exchanges[1]?.query ? await sha256(exchanges[1].query) : 'the retry carried no query';
  const hashedMethod = useGETForHashedQueries ? 'GET' : 'POST';
  const expected = [
    { method: hashedMethod, hasQuery: false, hash, notFound: true },
    { method: 'POST', hasQuery: true, hash, notFound: false },
    { method: hashedMethod, hasQuery: false, hash, notFound: false },
  ];
  const seen = exchanges.map(({ method, query: sentQuery, hash: sent, codes }) => ({
    method,
    hasQuery: sentQuery !== null,
    hash: sent,
    notFound: codes.includes('PERSISTED_QUERY_NOT_FOUND'),
  }));
  if (JSON.stringify(seen) !== JSON.stringify(expected)) {
    fail(
      `${label}: the requests were not hash, full query, hash:\n` +
        `  expected ${JSON.stringify(expected)}\n  saw      ${JSON.stringify(exchanges)}`,
    );
  }
  const failed = exchanges.slice(1).find((e) => e.status !== 200 || e.codes.length > 0);
  if (failed) fail(`${label}: a request after the retry failed: ${JSON.stringify(failed)}`);
  console.log(`OK: Apollo APQ ${label}: not found, retried with the query, then served by hash`);
}

// Two query texts, so the GET scenario starts from a hash the server has not seen.
await scenario(false, 'query ApolloPost($id: ID!) { monitor(id: $id) { id name } }');
await scenario(true, 'query ApolloGet($id: ID!) { byGet: monitor(id: $id) { id name } }');
