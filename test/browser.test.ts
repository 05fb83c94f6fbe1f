/**
 * GraphiQL in a real headless Chromium (Debian's `chromium`, driven by playwright-core): the page
 * works offline, runs the board query over HTTP, and shows runEvents arriving live over graphql-ws.
 * Chromium missing is a failure, not a skip: `.ci/run` installs it.
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { decodeGlobalID, encodeGlobalID } from '@pothos/plugin-relay';
import { parse, validate } from 'graphql';
import { chromium, type Browser, type Page } from 'playwright-core';
import { EXAMPLE_OPERATIONS } from '../src/plugins/graphiql.js';
import { schema } from '../src/schema/index.js';
import { projectRoot, startTestServer, type TestServer } from './helpers/server.js';

const CHROMIUM = '/usr/bin/chromium';
// playwright-core gives every launch a fresh temporary profile (its own --user-data-dir) and refuses one in `args`.
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const SCREENSHOT = path.join(projectRoot, 'test-output', 'graphiql.png');

let t: TestServer;
let browser: Browser;
beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)`);
  [t, browser] = await Promise.all([startTestServer(), chromium.launch({ executablePath: CHROMIUM, args: ARGS })]);
});
afterAll(async () => {
  await browser?.close();
  await t?.close();
});

/** Runs one named operation of the editor's document through the run button's menu. */
async function runOperation(page: Page, operation: string): Promise<void> {
  await page.locator('.graphiql-execute-button').click();
  await page.getByRole('menuitem', { name: operation, exact: true }).click();
}

/** Replaces the Variables editor's text, as typing it would. */
async function setVariables(page: Page, variables: Record<string, unknown>): Promise<void> {
  await page.evaluate((text) => {
    const monaco = (window as any).__MONACO;
    const model = monaco.editor.getModels().find((m: any) => m.uri.toString().endsWith('-variables.json'));
    model.setValue(text);
  }, JSON.stringify(variables));
}

const responsePane = (page: Page, text: string) => page.locator('.graphiql-response', { hasText: text });

test('GraphiQL offline: the board query, then runEvents arriving live over WebSocket', async () => {
  const card = await t.ok(`mutation { createCard(input: { title: "Jump higher", column: TODO }) { id } }`);
  // A run as the run manager would have started it, so the test can write its events.
  const run = await t.server.orchestrator.db.client.run.create({ data: { cardId: decodeGlobalID(card.createCard.id).id, prompt: 'p', status: 'RUNNING' } });

  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const requests: string[] = [];
  const framesReceived: string[] = [];
  context.on('request', (request) => requests.push(request.url()));
  const page = await context.newPage();
  page.setDefaultTimeout(10_000); // fail with Playwright's account of what it waited for, before jest's 30 s
  page.on('websocket', (socket) => {
    requests.push(socket.url());
    socket.on('framereceived', ({ payload }) => framesReceived.push(String(payload)));
  });

  await page.goto(t.url);
  await page.locator('.graphiql-execute-button').waitFor();
  // The page opens on the example operations.
  await page.locator('.graphiql-query-editor', { hasText: 'query Board' }).waitFor();

  await runOperation(page, 'Board');
  await responsePane(page, '"Jump higher"').waitFor();
  expect(await page.locator('.graphiql-response').innerText()).toContain(card.createCard.id);

  await setVariables(page, { runId: encodeGlobalID('Run', run.id) });
  await runOperation(page, 'RunEvents');
  // The first event proves the subscription is streaming; the second is written after it was shown, so it can only arrive live.
  await t.server.orchestrator.eventLog.append(run.id, [{ type: 'assistant_text', data: { text: 'first words from the agent' } }]);
  await responsePane(page, 'first words from the agent').waitFor();
  await t.server.orchestrator.eventLog.append(run.id, [{ type: 'assistant_text', data: { text: 'live words from the agent' } }]);
  await responsePane(page, 'live words from the agent').waitFor();
  expect(framesReceived.some((frame) => frame.includes('live words from the agent'))).toBe(true);

  await mkdir(path.dirname(SCREENSHOT), { recursive: true });
  await page.screenshot({ path: SCREENSHOT });
  await context.close();

  // Nothing left the machine: every request (page, assets, workers, the WebSocket) went to the test server.
  const origin = new URL(t.url);
  const offsite = requests.filter((url) => {
    const parsed = new URL(url.startsWith('blob:') ? url.slice('blob:'.length) : url);
    return parsed.protocol !== 'data:' && parsed.host !== origin.host;
  });
  expect(offsite).toEqual([]);
  expect(requests).toContain(t.url.replace(/^http/, 'ws'));
});

test('the example operations GraphiQL opens with are valid against the schema', () => {
  expect(validate(schema, parse(EXAMPLE_OPERATIONS))).toEqual([]);
});
