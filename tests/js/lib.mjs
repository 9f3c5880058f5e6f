// What every client script shares: the server's base URL from the command line, failing with
// one clear line (non-zero exit), plain GraphQL over POST and a monitor to query.

/** Prints `message` as the reason for failing and exits 1. */
export function fail(message) {
  console.error(`FAILED: ${message}`);
  process.exit(1);
}

/** The server's base URL (`http://127.0.0.1:PORT`), the script's first argument. */
export function baseUrl() {
  const base = process.argv[2];
  if (!base || !/^https?:\/\//.test(base)) {
    fail(`usage: node ${process.argv[1]} http://127.0.0.1:PORT`);
  }
  return base.replace(/\/+$/, '');
}

/** Ends the script with a failure if it has not finished within `seconds`. */
export function deadline(seconds, what) {
  setTimeout(() => fail(`${what} did not finish within ${seconds} s`), seconds * 1000).unref();
}

/** `POST /graphql` with JSON; returns `data`, failing on a non-200 status or any error. */
export async function graphql(base, query, variables = {}) {
  const response = await fetch(`${base}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({ query, variables }),
  }).catch((err) => fail(`POST ${base}/graphql failed: ${err.cause?.message ?? err.message}`));
  const text = await response.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    fail(`POST /graphql answered ${response.status} with a body that is not JSON: ${text.slice(0, 200)}`);
  }
  if (response.status !== 200 || body.errors) {
    fail(`POST /graphql answered ${response.status}: ${text.slice(0, 500)}`);
  }
  return body.data;
}

/** Creates a paused monitor of the server's own `/healthz` (checks are UP and fast). */
export async function createMonitor(base, name) {
  const data = await graphql(
    base,
    `mutation ($input: CreateMonitorInput!) { createMonitor(input: $input) { id name } }`,
    { input: { name, url: `${base}/healthz`, timeoutSeconds: 5, intervalSeconds: 3600, active: false } },
  );
  return data.createMonitor;
}

/** Runs a check of monitor `id` now; returns the check result's id. */
export async function runCheck(base, id) {
  const data = await graphql(base, `mutation ($id: ID!) { runCheck(id: $id) { id } }`, { id });
  return data.runCheck.id;
}

/** Resolves after `ms` milliseconds. */
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
