// A graphql-ws client that retries forever (short waits) keeps its subscription across a
// server restart on the same port and database, by itself. Talks to tests/suite/clients.rs by lines:
//   stdout `SUBSCRIBED`  an event arrived: the Rust side may now restart the server
//   stdin  `RESTARTED`   the new server is listening on the same port
//   stdout `OK ...`      the client reconnected, resubscribed and got an event of the new server
// Usage: node graphql-ws-restart.mjs BASE_URL
import { createInterface } from 'node:readline';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { baseUrl, createMonitor, deadline, fail, runCheck, sleep } from './lib.mjs';

const base = baseUrl();
deadline(60, 'the graphql-ws restart check');
const monitor = await createMonitor(base, 'graphql-ws monitor');

const closes = [];
let connections = 0;
const received = new Set();
const client = createClient({
  url: `${base.replace(/^http/, 'ws')}/graphql/ws`,
  webSocketImpl: WebSocket,
  retryAttempts: 1000,
  shouldRetry: () => true,
  retryWait: () => sleep(200),
  on: {
    connected: () => {
      connections += 1;
    },
    closed: (event) => {
      if (event && typeof event.code === 'number') closes.push(event.code);
    },
  },
});
client.subscribe(
  {
    query: 'subscription ($id: ID) { checkResults(monitorId: $id) { id monitorId } }',
    variables: { id: monitor.id },
  },
  {
    next: (message) => {
      if (message.errors) fail(`the subscription got errors: ${JSON.stringify(message.errors)}`);
      const result = message.data?.checkResults;
      if (result?.monitorId !== monitor.id) fail(`an event of another monitor: ${JSON.stringify(message)}`);
      received.add(result.id);
    },
    error: (err) => fail(`the subscription ended with an error: ${err?.message ?? JSON.stringify(err)}`),
    complete: () => fail('the server completed the subscription instead of closing the socket'),
  },
);

/** Runs checks until one of them arrives over the subscription; returns that result's id. */
async function checkUntilReceived(what) {
  for (let attempt = 0; attempt < 50; attempt += 1) {
    const id = await runCheck(base, monitor.id);
    for (let i = 0; i < 10; i += 1) {
      if (received.has(id)) return id;
      await sleep(50);
    }
  }
  return fail(`${what}: no check result arrived over the subscription`);
}

await checkUntilReceived('before the restart');
const lines = createInterface({ input: process.stdin });
const restarted = new Promise((resolve) => {
  lines.on('line', (line) => line.trim() === 'RESTARTED' && resolve());
});
console.log('SUBSCRIBED');
await restarted;

await checkUntilReceived('after the restart');
if (connections < 2) fail(`the client connected ${connections} time(s); it never reconnected`);
if (!closes.includes(1012)) {
  fail(`the server's shutdown closed the socket with ${JSON.stringify(closes)}, not 1012 (Service Restart)`);
}
console.log(`OK: resubscribed after the restart (close codes ${JSON.stringify(closes)}, ${connections} connections)`);
lines.close();
await client.dispose();
process.exit(0);
