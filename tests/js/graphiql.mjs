// GraphiQL in Debian's Chromium (headless, through playwright-core), offline: every request
// that is not to 127.0.0.1 is aborted and reported, as are failed requests, console errors
// (CSP violations among them) and page errors. Checks that GraphiQL loads, the Docs pane
// lists Query, a query typed into the editor runs and shows data, and a subscription shows a
// result of a check run over HTTP while it is open.
// Usage: node graphiql.mjs BASE_URL   (CHROMIUM overrides /usr/bin/chromium)
import { chromium } from 'playwright-core';
import { baseUrl, createMonitor, deadline, fail, runCheck, sleep } from './lib.mjs';

const base = baseUrl();
deadline(120, 'the GraphiQL check');
const monitor = await createMonitor(base, 'graphiql monitor');

const problems = [];
let served = 0;
const browser = await chromium
  .launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-background-networking', '--disable-gpu'],
  })
  .catch((err) => fail(`Chromium did not start: ${err.message}`));

/** Closes the browser and fails with `message` and anything the page reported. */
async function failWith(message) {
  const report = problems.length ? `\n  the page reported:\n    ${problems.join('\n    ')}` : '';
  await browser.close().catch(() => {});
  fail(`${message}${report}`);
}

/** Waits for `check` to return a truthy value, polling, up to `ms`. */
async function eventually(what, ms, check) {
  const until = Date.now() + ms;
  let last;
  while (Date.now() < until) {
    last = await check().catch((err) => ({ error: err.message }));
    if (last && !last.error) return last;
    await sleep(100);
  }
  return failWith(`${what} (last seen: ${JSON.stringify(last)})`);
}

try {
  const page = await browser.newPage();
  await page.route('**', (route) => {
    const url = new URL(route.request().url());
    if (url.hostname === '127.0.0.1' || url.protocol === 'data:' || url.protocol === 'blob:') {
      served += 1;
      return route.continue();
    }
    problems.push(`aborted a request off this machine: ${url.href}`);
    return route.abort('blockedbyclient');
  });
  page.on('requestfailed', (request) => {
    problems.push(`request failed: ${request.url()} (${request.failure()?.errorText})`);
  });
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`console error: ${message.text()}`);
  });
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));

  // A browser asks for HTML, so it gets GraphiQL.
  const response = await page.goto(`${base}/graphql`, { waitUntil: 'load' });
  if (response.status() !== 200) await failWith(`GET /graphql answered ${response.status()} to the browser`);
  if ((await page.title()) !== 'Monitor Manager') await failWith(`the page's title is "${await page.title()}"`);
  await page
    .locator('.graphiql-container')
    .waitFor({ timeout: 20000 })
    .catch(() => failWith('GraphiQL did not render'));

  // The Docs pane lists the root type Query (it comes from introspection).
  await page.getByRole('button', { name: 'Show Documentation Explorer' }).click();
  await eventually('the Docs pane did not list Query', 20000, async () => {
    const docs = await page.locator('.graphiql-doc-explorer-content').innerText({ timeout: 1000 });
    return /query:\s*Query\b/.test(docs) || { error: docs.slice(0, 300) };
  });

  /** Replaces the query editor's text by typing `text` into it, then runs it. */
  async function runInEditor(text) {
    await page.locator('.graphiql-query-editor .CodeMirror').click();
    await page.keyboard.press('Control+A');
    await page.keyboard.press('Delete');
    // insertText types the text as one input: no auto-closed brackets doubling it.
    await page.keyboard.insertText(text);
    const typed = await page.locator('.graphiql-query-editor .CodeMirror').evaluate((el) => el.CodeMirror.getValue());
    if (typed !== text) await failWith(`the editor holds ${JSON.stringify(typed)} after typing`);
    // GraphiQL parses the editor's text a moment after a change, and picks HTTP or the
    // WebSocket from that parse: run only once it has caught up, as a person would.
    await sleep(1000);
    await page.locator('.graphiql-execute-button').click();
  }
  const responseText = () => page.locator('.graphiql-response .CodeMirror').evaluate((el) => el.CodeMirror.getValue());

  await runInEditor(`{ monitor(id: "${monitor.id}") { id name } }`);
  await eventually('the query did not show data', 20000, async () => {
    const text = await responseText();
    return (text.includes('"name": "graphiql monitor"') && !text.includes('"errors"')) || { error: text };
  });

  // The subscription runs over graphql-ws at /graphql/ws; checks are run over HTTP until one
  // shows in the response pane (the subscription may take a moment to start).
  await runInEditor('subscription { checkResults { id } }');
  const triggered = [];
  await eventually('the subscription showed no check result', 30000, async () => {
    triggered.push(await runCheck(base, monitor.id));
    await sleep(300);
    const text = await responseText();
    return triggered.some((id) => text.includes(`"id": "${id}"`)) || { error: text };
  });

  if (problems.length) await failWith('GraphiQL worked, but the page reported problems');
  if (served < 5) await failWith(`only ${served} requests went through the offline filter`);
  await browser.close();
  console.log(`OK: GraphiQL loaded offline (${served} requests, all to 127.0.0.1), listed Query, ran a query and showed a subscription result`);
} catch (err) {
  await failWith(`the browser session failed: ${err.stack ?? err}`);
}
