/**
 * The board UI (web/, served at /) in a real headless Chromium driven by playwright-core, against
 * the real server and the real pi with a scripted model: a card from creation to a merged run, two
 * pages kept in step by boardEventBatches (one of them losing its socket), and token mode. Every request
 * outside the server is blocked and recorded, and must not happen. Needs `npm run build` (dist/web).
 */
import { existsSync } from 'node:fs';
import { mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page, type WebSocketRoute } from 'playwright-core';
import type { ModelScript } from './helpers/model-server.js';
import { startAgentTestBed, waitFor, type AgentTestBed } from './helpers/runs.js';
import { git } from './helpers/repo.js';
import { projectRoot, startTestServer, type TestServer } from './helpers/server.js';

const CHROMIUM = '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const SHOTS = path.join(projectRoot, 'test-output', 'board-ui');
const WEB = path.join(projectRoot, 'dist', 'web');

let browser: Browser;
beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)`);
  if (!existsSync(path.join(WEB, 'index.html'))) throw new Error(`${WEB} is missing: run npm run build`);
  await mkdir(SHOTS, { recursive: true });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
});
afterAll(async () => {
  await browser?.close();
});

/** A browser context that may only talk to `server`: anything else is aborted and recorded in `offsite`. */
async function serverOnlyContext(server: string, options: Parameters<Browser['newContext']>[0] = {}): Promise<{ context: BrowserContext; offsite: string[] }> {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 }, ...options });
  const offsite: string[] = [];
  const host = new URL(server).host;
  await context.route(
    (url) => url.host !== host && url.protocol !== 'data:',
    (route) => (offsite.push(route.request().url()), route.abort()),
  );
  return { context, offsite };
}

async function newPage(context: BrowserContext): Promise<Page> {
  const page = await context.newPage();
  page.setDefaultTimeout(15_000); // Playwright's account of what it waited for, before jest's timeout
  return page;
}

const shot = (page: Page, name: string) => page.screenshot({ path: path.join(SHOTS, `${name}.png`) });
const column = (page: Page, name: string) => page.locator(`ol.cards[data-column="${name}"]`);
const cardIn = (page: Page, columnName: string, title: string) => column(page, columnName).locator('li.card', { hasText: title });

/** Drags with the mouse in small steps, as SortableJS's pointer fallback needs. */
async function drag(page: Page, from: ReturnType<Page['locator']>, to: ReturnType<Page['locator']>): Promise<void> {
  const a = (await from.boundingBox())!;
  const b = (await to.boundingBox())!;
  await page.mouse.move(a.x + a.width / 2, a.y + 10);
  await page.mouse.down();
  await page.mouse.move(a.x + a.width / 2 + 10, a.y + 20, { steps: 5 });
  await page.mouse.move(b.x + b.width / 2, b.y + 30, { steps: 20 });
  await page.mouse.up();
}

describe('a card from the board to a merged run, with pi and a scripted model', () => {
  let bed: AgentTestBed;
  let steered!: () => void;
  const steerSent = new Promise<void>((resolve) => (steered = resolve));
  /** Text and a tool call, then a pause until the test has steered, a commit, then an answer that quotes the steer. */
  const script: ModelScript = async (request) => {
    if (request.lastUserText?.startsWith('Feedback:')) return { text: `Refined after: ${request.lastUserText}` };
    if (request.lastUserText?.includes('Talk until stopped')) return { text: 'word '.repeat(2_000), chunkSize: 5, delayMs: 20 };
    if (request.toolResultCount === 0)
      return { text: 'I will make the player jump higher, starting with the physics constants.', toolCalls: [{ name: 'write', arguments: { path: 'jump.txt', content: 'jump height: 2\n' } }], delayMs: 300 };
    if (request.toolResultCount === 1) {
      await steerSent;
      return { toolCalls: [{ name: 'bash', arguments: { command: 'git add -A && git commit -qm "Jump higher"' } }] };
    }
    return { text: `Steered: ${request.lastUserText ?? ''}`, chunkSize: 4, delayMs: 5 };
  };
  beforeAll(async () => {
    // A playtest that says it is up, then runs until stopped.
    bed = await startAgentTestBed(script, { RUNBOARD_PLAYTEST_COMMAND: `${process.execPath} -e "console.log('playtest is up'); setInterval(() => {}, 1000)"` });
  });
  afterAll(async () => {
    steered();
    await bed?.close();
  });

  test('open /, create, drag, start, watch, steer, review, merge', async () => {
    const root = bed.t.url.replace(/\/graphql$/, '/');
    const { context, offsite } = await serverOnlyContext(root);
    const page = await newPage(context);

    await page.goto(root);
    await column(page, 'IN_PROGRESS').waitFor();
    const interactiveMs = await page.evaluate(() => performance.now());
    await shot(page, '1-board');

    await page.getByLabel('New card title').fill('Make the player jump higher');
    await page.getByLabel('Column', { exact: true }).selectOption('TODO');
    await page.getByRole('button', { name: 'Add card' }).click();
    await cardIn(page, 'TODO', 'Make the player jump higher').waitFor();
    await shot(page, '2-card-created');

    await drag(page, cardIn(page, 'TODO', 'Make the player jump higher'), column(page, 'IN_PROGRESS'));
    await cardIn(page, 'IN_PROGRESS', 'Make the player jump higher').waitFor();
    const { cards } = await bed.t.ok(`{ cards(first: 10) { edges { node { id title column } } } }`);
    expect(cards.edges.map((e: any) => e.node.column)).toEqual(['IN_PROGRESS']);
    await shot(page, '3-dragged');

    await cardIn(page, 'IN_PROGRESS', 'Make the player jump higher').getByRole('link', { name: 'Make the player jump higher' }).click();
    const panel = page.getByRole('dialog', { name: 'Card' });
    await waitFor('the default agent to be preselected', async () => ((await panel.getByLabel('Agent').inputValue()) === 'pi' ? true : undefined), 10_000);
    await panel.getByLabel('Prompt').fill('Make the player jump higher. Commit when done.');
    await panel.getByRole('button', { name: 'Start run' }).click();

    // Live: the streamed text and the tool call appear while the run is still working (the model waits for the steer).
    const consoleBox = page.locator('ol.console');
    await consoleBox.locator('li.text', { hasText: 'starting with the physics constants' }).waitFor();
    await consoleBox.locator('li.tool', { hasText: 'jump.txt' }).waitFor();
    expect(await page.locator('.run-view').getAttribute('data-status')).toBe('RUNNING');
    await shot(page, '4-run-live');

    // Steered from a phone-sized page following the same run; the first page sees the message too.
    const phone = await newPage(context);
    await phone.setViewportSize({ width: 390, height: 844 });
    await phone.goto(page.url());
    await phone.locator('ol.console li.tool', { hasText: 'jump.txt' }).waitFor();
    await phone.getByLabel('Message to the agent').fill('jump twice as high');
    expect(await phone.getByRole('button', { name: 'Steer' }).isVisible()).toBe(true);
    await shot(phone, '5a-phone-steering');
    await phone.getByRole('button', { name: 'Steer' }).click();
    await consoleBox.locator('li.user', { hasText: 'jump twice as high' }).waitFor();
    await phone.close();
    steered();
    await consoleBox.locator('li.text', { hasText: 'Steered: jump twice as high' }).waitFor();
    await page.locator('.run-view[data-status="SUCCEEDED"]').waitFor({ timeout: 30_000 });
    await shot(page, '5-steered');

    await page.getByRole('tab', { name: 'Review' }).click();
    await page.locator('.commits', { hasText: 'Jump higher' }).waitFor();
    await page.getByRole('button', { name: 'jump.txt' }).click();
    await page.locator('.file-diff .d2h-file-wrapper', { hasText: 'jump height: 2' }).waitFor();
    await shot(page, '6-diff');

    // main meanwhile got its own jump.txt: the merge is refused, naming the path, and main is left alone.
    await writeFile(path.join(bed.t.repo, 'jump.txt'), 'jump height: 1\n');
    await git(bed.t.repo, 'add', 'jump.txt');
    await git(bed.t.repo, 'commit', '-qm', 'main: jump height 1');
    await page.getByRole('button', { name: 'Merge', exact: true }).click();
    await page.locator('.merge [role="alert"]', { hasText: 'jump.txt' }).waitFor();
    await shot(page, '7a-merge-conflict');
    await git(bed.t.repo, 'reset', '-q', '--hard', 'HEAD~1');

    await page.getByRole('button', { name: 'Merge', exact: true }).click();
    await page.locator('.merge', { hasText: 'Merged as' }).waitFor();
    expect(await page.locator('.merge [role="alert"]').count()).toBe(0);
    await shot(page, '7-merged');

    await page.goto(root);
    await cardIn(page, 'IN_PROGRESS', 'Make the player jump higher').locator('.run-badge', { hasText: 'pi: merged' }).waitFor();
    await shot(page, '8-board-merged');
    await context.close();

    expect(offsite).toEqual([]);
    const assets = await readdir(path.join(WEB, 'assets'));
    const sizes = await Promise.all(assets.map(async (name) => [name, (await stat(path.join(WEB, 'assets', name))).size] as const));
    console.log(`board interactive ${Math.round(interactiveMs)} ms after navigation; assets: ${sizes.map(([n, s]) => `${n} ${s} B`).join(', ')}`);
  }, 90_000);

  test('stop a streaming run, playtest it, refine it', async () => {
    const root = bed.t.url.replace(/\/graphql$/, '/');
    const { context, offsite } = await serverOnlyContext(root);
    const page = await newPage(context);
    const { createCard } = await bed.t.ok(`mutation { createCard(input: { title: "Chatty", column: TODO }) { id } }`);
    await page.goto(`${root}#/card/${encodeURIComponent(createCard.id)}`);
    const panel = page.getByRole('dialog', { name: 'Card' });
    await panel.getByLabel('Prompt').fill('Talk until stopped');
    await panel.getByRole('button', { name: 'Start run' }).click();
    await page.locator('ol.console li.text', { hasText: 'word word' }).waitFor();
    await page.getByRole('button', { name: 'Stop' }).click();
    await page.locator('.run-view[data-status="STOPPED"]').waitFor();
    await page.locator('ol.console li.status', { hasText: 'Status: stopped' }).waitFor();
    expect(await page.getByLabel('Message to the agent').isDisabled()).toBe(true);
    await shot(page, '9-stopped');

    // The playtest: started and stopped from the review, its output in the console.
    await page.getByRole('tab', { name: 'Review' }).click();
    await page.getByRole('button', { name: 'Start playtest' }).click();
    await page.getByRole('button', { name: 'Stop playtest' }).waitFor();
    await page.getByRole('tab', { name: 'Console' }).click();
    await page.locator('ol.console li.playtest', { hasText: 'playtest is up' }).waitFor();
    await page.getByRole('tab', { name: 'Review' }).click();
    await page.getByRole('button', { name: 'Stop playtest' }).click();
    await page.getByRole('button', { name: 'Start playtest' }).waitFor();
    await page.getByRole('tab', { name: 'Console' }).click();
    await page.locator('ol.console li.status', { hasText: 'Playtest ended' }).waitFor();
    await shot(page, '10-playtest');

    // Refine the stopped run with feedback: a new run on the same card resumes the agent's session.
    const stoppedUrl = page.url();
    await page.getByLabel('Feedback for the agent').fill('Feedback: say less');
    await page.getByRole('button', { name: 'Refine with feedback' }).click();
    await waitFor('the refinement to open', async () => (page.url() !== stoppedUrl ? true : undefined), 10_000);
    await page.locator('ol.console li.text', { hasText: 'Refined after: Feedback: say less' }).waitFor();
    await page.locator('.run-view[data-status="SUCCEEDED"]').waitFor();
    await shot(page, '11-refined');
    await context.close();
    expect(offsite).toEqual([]);
  }, 60_000);
});

/** A page's socket, proxied so the test can drop it, keep it down, and see every frame the page receives. */
function proxySockets(page: Page) {
  const state = { down: false, frames: [] as string[], routes: [] as WebSocketRoute[] };
  const ready = page.routeWebSocket(/\/graphql$/, (ws) => {
    if (state.down) return void ws.close({ code: 1011, reason: 'test: network down' });
    state.routes.push(ws);
    const server = ws.connectToServer();
    ws.onMessage((message) => server.send(message));
    server.onMessage((message) => {
      state.frames.push(String(message));
      ws.send(message);
    });
  });
  return {
    ready,
    state,
    /** Closes the page's sockets and refuses new ones until `restore`. */
    drop: async () => {
      state.down = true;
      for (const ws of state.routes.splice(0)) await ws.close({ code: 1011, reason: 'test: dropped' });
    },
    restore: () => void (state.down = false),
    /** The board event seqs the page received, in order (a list of them per message). */
    boardSeqs: () =>
      state.frames
        .map((f) => JSON.parse(f))
        .filter((m) => m.type === 'next' && m.payload?.data?.boardEventBatches)
        .flatMap((m) => m.payload.data.boardEventBatches.map((e: { seq: number }) => e.seq)),
  };
}

describe('two pages', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer();
  });
  afterAll(async () => {
    await t?.close();
  });

  test('a move in one appears in the other; a page whose socket drops catches up exactly once', async () => {
    const root = t.url.replace(/\/graphql$/, '/');
    const { context, offsite } = await serverOnlyContext(root);
    const [a, b] = [await newPage(context), await newPage(context)];
    const proxy = proxySockets(a);
    await proxy.ready;
    await Promise.all([a.goto(root), b.goto(root)]);
    await Promise.all([column(a, 'TODO').waitFor(), column(b, 'TODO').waitFor()]);

    await b.getByLabel('New card title').fill('Shared card');
    await b.getByRole('button', { name: 'Add card' }).click();
    await cardIn(a, 'TODO', 'Shared card').waitFor();

    // Keyboard move in page A: Alt+Right to the next column, seen in page B.
    await cardIn(a, 'TODO', 'Shared card').focus();
    await a.keyboard.press('Alt+ArrowRight');
    await cardIn(b, 'IN_PROGRESS', 'Shared card').waitFor();
    await shot(b, 'two-pages-b-after-a-moved');

    // Page A loses its socket; page B goes on changing the board; page A comes back and catches up.
    await proxy.drop();
    await a.locator('.board[data-live="reconnecting"]').waitFor();
    await b.getByLabel('New card title').fill('Made while A was away');
    await b.getByRole('button', { name: 'Add card' }).click();
    await cardIn(b, 'TODO', 'Made while A was away').waitFor();
    await drag(b, cardIn(b, 'IN_PROGRESS', 'Shared card'), column(b, 'REVIEW'));
    await cardIn(b, 'REVIEW', 'Shared card').waitFor();
    expect(await cardIn(a, 'REVIEW', 'Shared card').count()).toBe(0);
    proxy.restore();
    await cardIn(a, 'REVIEW', 'Shared card').waitFor({ timeout: 15_000 });
    await cardIn(a, 'TODO', 'Made while A was away').waitFor();
    await a.locator('.board[data-live="live"]').waitFor();
    await shot(a, 'two-pages-a-caught-up');

    // Exactly once: the events page A received are each seq once, in order, across the reconnect.
    const seqs = proxy.boardSeqs();
    expect(seqs).toEqual([...new Set(seqs)].sort((x, y) => x - y));
    const lastSeq = await b.locator('.board').getAttribute('data-seq');
    expect(seqs[seqs.length - 1]).toBe(Number(lastSeq));
    expect(await a.locator('li.card', { hasText: 'Made while A was away' }).count()).toBe(1);

    // Editing in page B (title, tag, reference, comment) shows in page A's board without a reload.
    await cardIn(b, 'TODO', 'Made while A was away').getByRole('link').click();
    const panel = b.getByRole('dialog', { name: 'Card' });
    await panel.getByLabel('Title').fill('Edited in B');
    await panel.getByRole('button', { name: 'Save' }).click();
    await panel.getByLabel('Tag', { exact: true }).fill('physics');
    await panel.getByRole('button', { name: 'Add tag' }).click();
    await panel.locator('.tags li', { hasText: 'physics' }).waitFor();
    await panel.getByLabel('Reference target').fill('src/player.rs');
    await panel.getByRole('button', { name: 'Add reference' }).click();
    await panel.locator('.references li', { hasText: 'src/player.rs' }).waitFor();
    await panel.getByLabel('Comment', { exact: true }).fill('Mind the ceiling');
    await panel.getByRole('button', { name: 'Add comment' }).click();
    await panel.locator('.comments li', { hasText: 'Mind the ceiling' }).waitFor();
    await cardIn(a, 'TODO', 'Edited in B').locator('.tags li', { hasText: 'physics' }).waitFor();
    await panel.locator('select option', { hasText: '(default)' }).waitFor({ state: 'attached' });
    await shot(b, 'two-pages-b-card-edited');
    await context.close();
    expect(offsite).toEqual([]);
  }, 60_000);
});

describe('token mode', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({ env: { RUNBOARD_TOKEN: 'board-secret' } });
  });
  afterAll(async () => {
    await t?.close();
  });

  test('only the page shell loads without the token; the page works once it is entered', async () => {
    const root = t.url.replace(/\/graphql$/, '/');
    const shell = await fetch(root);
    expect(shell.status).toBe(200);
    expect(shell.headers.get('content-type')).toContain('text/html');
    const asset = /src="(\/assets\/[^"]+\.js)"/.exec(await shell.text())?.[1];
    expect((await fetch(new URL(asset!, root))).status).toBe(200);
    // Only the page's own files are public: a path it does not serve still needs the token.
    expect((await fetch(new URL('/assets/not-built.js', root))).status).toBe(401);
    const api = await fetch(t.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: '{ agents { name } }' }) });
    expect(api.status).toBe(401);

    const { context, offsite } = await serverOnlyContext(root);
    const page = await newPage(context);
    await page.goto(root);
    await page.getByLabel(/needs its token/).fill('wrong');
    await page.getByRole('button', { name: 'Open the board' }).click();
    await page.getByRole('alert').filter({ hasText: 'That token was refused.' }).waitFor();
    await page.getByLabel(/needs its token/).fill('board-secret');
    await page.getByRole('button', { name: 'Open the board' }).click();
    await column(page, 'TODO').waitFor();
    // A card made here shows up through boardEvents, so the WebSocket authenticated too.
    await page.getByLabel('New card title').fill('Behind a token');
    await page.getByRole('button', { name: 'Add card' }).click();
    await cardIn(page, 'TODO', 'Behind a token').waitFor();
    await shot(page, 'token-mode');
    // Kept for the tab: a reload does not ask again.
    await page.reload();
    await cardIn(page, 'TODO', 'Behind a token').waitFor();
    await context.close();
    expect(offsite).toEqual([]);
  }, 45_000);
});
