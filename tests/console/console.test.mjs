// End-to-end tests of the web console (issue 8): a real `hookflow serve` and headless Chromium
// driven by playwright-core, asserting on what the user sees.
//
// Run:   cd tests/console && npm ci && npm test
// Env:   HOOKFLOW_BIN          the engine binary (default $CARGO_TARGET_DIR/debug/hookflow,
//                              CARGO_TARGET_DIR defaulting to ~/.cache/hookflow/target)
//        CHROMIUM              the browser (default /usr/bin/chromium, Debian's `chromium`)
//        HOOKFLOW_TEST_PLUGIN  the component to upload (default the `misbehave` test fixture,
//                              $CARGO_TARGET_DIR/wasm-guests/fixtures/wasm32-wasip2/release/fixture_misbehave.wasm)
//        HOOKFLOW_SCREENSHOTS  a directory: save screenshots of the console's screens there as PNGs (docs/console)

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';

import { chromium } from 'playwright-core';

const TARGET = process.env.CARGO_TARGET_DIR ?? path.join(homedir(), '.cache/hookflow/target');
const BIN = process.env.HOOKFLOW_BIN ?? path.join(TARGET, 'debug/hookflow');
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const PLUGIN = process.env.HOOKFLOW_TEST_PLUGIN
  ?? path.join(TARGET, 'wasm-guests/fixtures/wasm32-wasip2/release/fixture_misbehave.wasm');
const SCREENSHOTS = process.env.HOOKFLOW_SCREENSHOTS;
const WAIT = 15_000;

/** A sync workflow whose condition picks a Response node. */
const PAY_CALLBACK = {
  key: 'pay-callback',
  title: 'Payment callback',
  sync: true,
  nodes: [{
    key: 'check', type: 'condition',
    config: {
      rejectOnFalse: false,
      calculation: { group: { type: 'and', calculations: [{ calculator: 'equal', operands: ['{{$context.body.status}}', 'paid'] }] } },
    },
    branches: {
      true: [{ key: 'ok', type: 'response', config: { statusCode: 200, body: { ok: true, order: '{{$context.body.order.id}}' } } }],
      false: [{ key: 'fail', type: 'response', config: { statusCode: 400, body: { ok: false } } }],
    },
  }],
};

// ------------------------------------------------------------------ helpers

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

/** Starts `hookflow serve` on a free loopback port with a fresh data dir and opens the console
 *  in a fresh Chromium profile. `close()` undoes it all. */
async function start({ args = [] } = {}) {
  assert.ok(existsSync(BIN), `no engine binary at ${BIN}: build it (cargo build) or set HOOKFLOW_BIN`);
  assert.ok(existsSync(CHROMIUM), `no browser at ${CHROMIUM}: apt-get install chromium, or set CHROMIUM`);
  const temp = mkdtempSync(path.join(tmpdir(), 'hookflow-console-'));
  const port = await freePort();
  const engine = `http://127.0.0.1:${port}`;
  const server = spawn(BIN, ['serve', '--listen', `127.0.0.1:${port}`, '--data', path.join(temp, 'data'), ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: withoutToken(process.env),
  });
  let log = '';
  server.stderr.on('data', (chunk) => { log += chunk; });
  const exited = new Promise((resolve) => server.on('exit', resolve));
  const closers = [async () => {
    server.kill('SIGTERM');
    await exited;
    rmSync(temp, { recursive: true, force: true });
  }];
  // Every closer runs even when one throws (a page error must not leave the server running).
  const close = async () => {
    const failures = [];
    for (const closer of closers.reverse()) {
      try {
        await closer();
      } catch (error) {
        failures.push(error);
      }
    }
    if (failures.length > 0) throw failures[0];
  };
  try {
    await waitForHealth(engine, server, () => log);
    const context = await chromium.launchPersistentContext(path.join(temp, 'profile'), {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--disable-background-networking',
        '--disable-component-update', '--disable-sync', '--no-first-run'],
      viewport: { width: 1280, height: 900 },
      permissions: ['clipboard-read', 'clipboard-write'],
    });
    closers.push(() => context.close());
    const page = context.pages()[0] ?? await context.newPage();
    page.setDefaultTimeout(WAIT);
    const errors = [];
    page.on('pageerror', (error) => errors.push(error));
    closers.push(async () => assert.deepEqual(errors, [], 'the page threw'));
    return { engine, page, close };
  } catch (error) {
    await close();
    throw error;
  }
}

/** The environment minus an admin token the caller may have set: tests choose their own. */
function withoutToken({ HOOKFLOW_ADMIN_TOKEN, ...env }) {
  return env;
}

async function waitForHealth(origin, server, log) {
  for (const deadline = Date.now() + WAIT; Date.now() < deadline;) {
    assert.equal(server.exitCode, null, `hookflow serve exited:\n${log()}`);
    try {
      if ((await fetch(`${origin}/healthz`)).ok) return;
    } catch { /* not listening yet */ }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.fail(`hookflow serve did not answer /healthz within ${WAIT} ms:\n${log()}`);
}

/** Waits until the element's visible text matches `pattern`, and returns that text. */
async function see(locator, pattern) {
  const deadline = Date.now() + WAIT;
  let text = '';
  while (Date.now() < deadline) {
    text = await locator.innerText({ timeout: WAIT }).catch(() => '');
    if (pattern.test(text)) return text;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.fail(`expected ${pattern} in ${locator}, saw: ${JSON.stringify(text)}`);
}

async function screenshot(page, name, part) {
  if (!SCREENSHOTS) return;
  mkdirSync(SCREENSHOTS, { recursive: true });
  const file = path.join(SCREENSHOTS, `${name}.png`);
  // A part is cut from the whole page, so the save bar stuck to the window's bottom stays out of it.
  await page.evaluate(() => window.scrollTo(0, 0));
  const clip = part ? await part.boundingBox() : undefined;
  await page.screenshot({ path: file, fullPage: true, clip });
}

// ------------------------------------------------------------------ tests

describe('console without a token (loopback)', () => {
  let app;
  let page;
  let url;
  let firstExecution;
  before(async () => {
    app = await start();
    page = app.page;
    url = `${app.engine}/api/webhook:trigger/${PAY_CALLBACK.key}`;
  });
  after(async () => app?.close());

  it('creates a workflow from the form and lists it', async () => {
    const response = await page.goto(`${app.engine}/console/`);
    assert.equal(response.status(), 200, `GET /console/ answered ${response.status()}`);
    await see(page.getByTestId('no-workflows'), /No workflows yet/);
    await page.getByTestId('create-key').fill('ping');
    await page.getByTestId('create-title').fill('Ping');
    await page.getByTestId('create-submit').click();
    await page.waitForURL(/#\/workflows\/ping$/);
    await see(page.getByTestId('workflow-state'), /enabled/);
    await page.getByTestId('nav-workflows').click();
    await see(page.getByTestId('workflow-ping'), /ping\s+Ping\s+async\s+enabled\s+never run/);
  });

  it('shows JSON validation faults at their path, then creates from JSON', async () => {
    const bad = { ...PAY_CALLBACK, nodes: [{ ...PAY_CALLBACK.nodes[0], type: 'nope' }] };
    await page.getByTestId('create-json').fill(JSON.stringify(bad, null, 2));
    await page.getByTestId('create-json-submit').click();
    await see(page.getByTestId('create-message'), /validation_failed/);
    await see(page.getByTestId('faults'), /nodes\[0\]\.type unknown node type "nope"/);
    // The fault's path selects the faulty value in the editor.
    await page.getByTestId('faults').getByRole('button', { name: 'nodes[0].type' }).click();
    const selected = await page.getByTestId('create-json').evaluate((t) => t.value.slice(t.selectionStart, t.selectionEnd));
    assert.equal(selected, '"nope"');

    await page.getByTestId('create-json').fill(JSON.stringify(PAY_CALLBACK, null, 2));
    await page.getByTestId('create-json-submit').click();
    await page.waitForURL(/#\/workflows\/pay-callback$/);
    await see(page.getByTestId('node-check'), /check\s+condition/);
    await see(page.getByTestId('branch-check-true'), /ok\s+response/);
    await see(page.getByTestId('branch-check-false'), /fail\s+response/);
  });

  it('copies the webhook URL', async () => {
    assert.equal(await page.getByTestId('webhook-url').inputValue(), url);
    await page.getByTestId('copy-url').click();
    await see(page.getByTestId('copy-status'), /Copied/);
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), url);
  });

  it('parses example query and body into paths, prunes one, and saves', async () => {
    await page.getByTestId('parse-query-example').fill('https://shop.example/callback?source=shop&ref=1');
    await page.getByTestId('parse-query').click();
    await see(page.getByTestId('parse-query-message'), /2 paths found/);

    await page.getByTestId('parse-body-example').fill('{"status": "paid", "order": {"id": 7, "items": [{"sku": "A"}]}}');
    await page.getByTestId('parse-body').click();
    await see(page.getByTestId('parse-body-message'), /6 paths found/);
    const keys = await page.getByTestId('vars-body').getByTestId('var-key').evaluateAll((inputs) => inputs.map((i) => i.value));
    assert.deepEqual(keys, ['status', 'order', 'order.id', 'order.items', 'order.items[0]', 'order.items[0].sku']);
    await page.getByTestId('var-body-order.items[0]').getByTestId('var-remove').click();
    await page.getByTestId('var-body-order.id').getByTestId('var-alias').fill('Order id');
    await page.getByTestId('save-trigger').click();

    await see(page.getByTestId('save-message'), /Saved version 2/);
    const saved = await page.getByTestId('vars-body').getByTestId('var-key').evaluateAll((inputs) => inputs.map((i) => i.value));
    assert.deepEqual(saved, ['status', 'order', 'order.id', 'order.items', 'order.items[0].sku']);
    assert.equal(await page.getByTestId('var-body-order.id').getByTestId('var-alias').inputValue(), 'Order id');
    assert.match(await page.getByTestId('definition-json').inputValue(), /"key": "source"[\s\S]*"alias": "Order id"/);
  });

  it('sends a test request and shows the answer and the execution with its jobs', async () => {
    await page.getByTestId('test-query').fill('source=console');
    await page.getByTestId('test-body').fill('{"status": "paid", "order": {"id": 7}}');
    await page.getByTestId('test-send').click();
    await see(page.getByTestId('test-status'), /^200/);
    await see(page.getByTestId('test-response-body'), /"ok": true,\s+"order": 7/);
    await see(page.getByTestId('test-execution-status'), /resolved/);
    await see(page.getByTestId('test-execution').getByTestId('job-check'), /check\s+condition\s+resolved/);
    await see(page.getByTestId('test-execution').getByTestId('job-ok'), /ok\s+response\s+resolved/);
    firstExecution = await page.getByTestId('open-execution').innerText();
    await page.getByTestId('test-response-headers').evaluate((pre) => { pre.parentElement.open = true; });
    await see(page.getByTestId('test-response-headers'), new RegExp(`x-hookflow-execution: ${firstExecution}`));
    await screenshot(page, 'workflow-detail');
  });

  it('shows the faults of an edited definition at their JSON path', async () => {
    const editor = page.getByTestId('definition-json');
    const text = await editor.inputValue();
    await editor.fill(text.replace('"type": "response"', '"type": "nope"'));
    await page.getByTestId('save-json').click();
    await see(page.getByTestId('json-message'), /validation_failed[\s\S]*nodes\[0\]\.branches\.false\[0\]\.type unknown node type "nope"/);
    await page.getByTestId('json-message').getByRole('button', { name: 'nodes[0].branches.false[0].type' }).click();
    assert.equal(await editor.evaluate((t) => t.value.slice(t.selectionStart, t.selectionEnd)), '"nope"');
  });

  it('opens the execution along the node tree', async () => {
    await page.getByTestId('open-execution').click();
    await page.waitForURL(new RegExp(`#/executions/${firstExecution}$`));
    await see(page.getByTestId('execution-status'), /resolved/);
    await see(page.getByTestId('execution-trigger'), /"source": "console"/);
    const check = page.getByTestId('node-check');
    await see(check.getByTestId('job-status'), /resolved/);
    await see(check, /→ true/);
    await see(page.getByTestId('node-fail'), /not run/);
    const ok = page.getByTestId('node-ok');
    await ok.getByText('Input (resolved)').click();
    await see(ok.getByTestId('job-input'), /"order": 7/);
    await screenshot(page, 'execution-detail');
  });

  it('re-runs the execution', async () => {
    await page.getByTestId('rerun').click();
    await page.waitForURL((u) => /#\/executions\/\w+$/.test(u.hash) && !u.hash.endsWith(firstExecution));
    await see(page.getByTestId('execution-status'), /resolved/);
    await see(page.getByTestId('execution-trigger'), /"source": "console"/);
  });

  it('filters the execution list', async () => {
    await page.getByTestId('nav-executions').click();
    await page.getByTestId('filter-workflow').selectOption('pay-callback');
    await page.getByTestId('filter-status').selectOption('resolved');
    await page.getByTestId('filter-apply').click();
    await page.waitForURL(/#\/executions\?workflow=pay-callback&status=resolved$/);
    // The URL changes before the filtered screen replaces the unfiltered one.
    await page.waitForSelector('#view[data-shown="#/executions?workflow=pay-callback&status=resolved"]');
    await see(page.getByTestId('executions'), /pay-callback/);
    // The filtered page replaces the previous one when its answer arrives: wait for its rows.
    await page.waitForFunction(
      () => document.querySelectorAll('[data-testid="executions"] tbody tr').length === 2, null, { timeout: 10_000 });
    assert.equal(await page.getByTestId('executions').locator('tbody tr').count(), 2);
    await page.getByTestId('filter-status').selectOption('failed');
    await page.getByTestId('filter-apply').click();
    await see(page.getByTestId('no-executions'), /No executions match/);
  });

  it('keeps a stored Basic auth password when the trigger settings are saved', async () => {
    const created = await fetch(`${app.engine}/api/workflows`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({
        key: 'guarded', sync: true, trigger: { basicAuth: { username: 'shop', password: 's3cret' } },
        nodes: [{ key: 'hi', type: 'response', config: { body: 'hi' } }],
      }),
    });
    assert.equal(created.status, 201, await created.text());
    await page.goto(`${app.engine}/console/#/workflows/guarded`);
    assert.equal(await page.getByTestId('auth-password').inputValue(), '', 'the stored password is not shown');
    await page.getByTestId('parse-query-example').fill('?ref=1');
    await page.getByTestId('parse-query').click();
    await see(page.getByTestId('parse-query-message'), /1 path found/);
    await page.getByTestId('save-trigger').click();
    await see(page.getByTestId('save-message'), /Saved version 2/);
    await page.getByTestId('test-password').fill('wrong');
    await page.getByTestId('test-send').click();
    await see(page.getByTestId('test-status'), /^401/);
    await page.getByTestId('test-password').fill('s3cret');
    await page.getByTestId('test-send').click();
    await see(page.getByTestId('test-status'), /^200/);
    await see(page.getByTestId('test-response-body'), /^hi$/);
  });

  it('refuses to save over a change made since the page was loaded', async () => {
    await page.goto(`${app.engine}/console/#/workflows/guarded`);
    await see(page.getByTestId('workflow-state'), /enabled/);
    // Someone else saves a new version meanwhile.
    const current = await (await fetch(`${app.engine}/api/workflows/guarded`)).json();
    const { version, url: _, createdAt, updatedAt, ...definition } = current;
    const changed = await fetch(`${app.engine}/api/workflows/guarded`, {
      method: 'PUT', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ ...definition, title: 'Changed elsewhere' }),
    });
    assert.equal(changed.status, 200, await changed.text());
    await page.getByTestId('save-trigger').click();
    await see(page.getByTestId('trigger-message'), new RegExp(`conflict: .*at version ${version + 1}, not ${version}`));
  });

  it('lists versions and restores one', async () => {
    await page.reload();
    await see(page.getByTestId('version-3'), /v3 \(current\)\s+Changed elsewhere/);
    await page.getByTestId('restore-1').click();
    await see(page.getByTestId('save-message'), /Restored version 1 as version 4/);
    await see(page.getByTestId('version-4'), /v4 \(current\)/);
    const current = await (await fetch(`${app.engine}/api/workflows/guarded`)).json();
    assert.equal(current.title || '', '', 'version 1 had no title');
  });

  it('lists workflows with their last execution, and disables one', async () => {
    await page.getByTestId('nav-workflows').click();
    await see(page.getByTestId('workflow-pay-callback'), /pay-callback\s+Payment callback\s+sync\s+enabled\s+resolved/);
    await screenshot(page, 'workflows');
    await page.getByTestId('toggle-pay-callback').click();
    await see(page.getByTestId('enabled-pay-callback'), /disabled/);
    assert.equal((await fetch(url, { method: 'POST' })).status, 404, 'a disabled webhook answers 404');
    await page.getByTestId('toggle-pay-callback').click();
    await see(page.getByTestId('enabled-pay-callback'), /enabled/);
  });

  it('uploads a plugin', async () => {
    assert.ok(existsSync(PLUGIN), `no component to upload at ${PLUGIN}: build the test fixtures (cargo test -p hookflow-tests) or set HOOKFLOW_TEST_PLUGIN`);
    await page.getByTestId('nav-plugins').click();
    await see(page.getByTestId('plugin-condition'), /condition[\s\S]*built-in[\s\S]*Branches: true, false/);
    await page.getByTestId('plugin-name').fill('misbehave');
    await page.getByTestId('plugin-file').setInputFiles(PLUGIN);
    await page.getByTestId('plugin-upload').click();
    await see(page.getByTestId('plugin-message'), /Installed misbehave/);
    await see(page.getByTestId('plugin-misbehave'), /misbehave[\s\S]*uploaded/);
    await page.getByTestId('plugin-misbehave').getByText('Config schema').click();
    await screenshot(page, 'plugins');

    // The editor's palette offers it next to the built-ins, each with its description.
    await page.goto(`${app.engine}/console/#/workflows/pay-callback`);
    await page.getByTestId('insert-nodes-0').click();
    await see(page.getByTestId('palette-misbehave'), /misbehave\s+\(uploaded\)/);
    await see(page.getByTestId('palette-condition'), /Compares values and picks branch true or false/);
    await page.getByTestId('palette-cancel').click();
    await page.getByTestId('nav-plugins').click();

    // Something that is no component is refused, and the refusal is shown.
    await page.getByTestId('plugin-name').fill('junk');
    await page.getByTestId('plugin-file').setInputFiles({ name: 'junk.wasm', mimeType: 'application/wasm', buffer: Buffer.from('\0asm but not really') });
    await page.getByTestId('plugin-upload').click();
    await see(page.getByTestId('plugin-message'), /validation_failed/);
  });

  it('shows refused requests, and re-runs the failures of a filtered list', async () => {
    const strict = {
      key: 'strict', sync: true,
      nodes: [{ key: 'paid', type: 'condition', config: { rejectOnFalse: true,
        calculation: { group: { type: 'and', calculations: [{ calculator: 'equal', operands: ['{{$context.body.status}}', 'paid'] }] } } } }],
    };
    const created = await fetch(`${app.engine}/api/workflows`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(strict) });
    assert.equal(created.status, 201);
    const trigger = `${app.engine}/api/webhook:trigger/strict`;
    assert.equal((await fetch(trigger, { method: 'PUT' })).status, 405);
    for (let n = 0; n < 3; n += 1) {
      const failed = await fetch(trigger, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"status": "open"}' });
      assert.equal(failed.status, 500);
    }

    await page.getByTestId('nav-refusals').click();
    await see(page.getByTestId('refusals'), /strict\s+405 method_not_allowed\s+127\.0\.0\.1\s+webhooks accept POST only, not PUT/);
    await screenshot(page, 'refusals');
    await page.goto(`${app.engine}/console/#/workflows/strict`);
    await see(page.getByTestId('workflow-refusals'), /405 method_not_allowed/);

    await page.goto(`${app.engine}/console/#/executions?workflow=strict&status=failed`);
    await see(page.getByTestId('redrive-button'), /Re-run these 3/);
    page.once('dialog', (dialog) => dialog.accept());
    await page.getByTestId('redrive-button').click();
    await see(page.getByTestId('redrive-message'), /Re-ran 3 of 3 matching executions/);
    const listed = await (await fetch(`${app.engine}/api/executions?workflow=strict&status=failed&limit=500`)).json();
    const earliest = listed.items[listed.items.length - 1];
    assert.ok(earliest.rerunAs, 'the first failure names its rerun');
    await page.goto(`${app.engine}/console/#/executions/${earliest.id}`);
    await see(page.getByTestId('rerun-as'), new RegExp(earliest.rerunAs));
  });
});

describe('console as the editor', () => {
  let app;
  let page;
  before(async () => {
    app = await start({ args: ['--secret', 'SHOP_TOKEN=tok-not-for-eyes'] });
    page = app.page;
  });
  after(async () => app?.close());

  /** The variable picker next to the element `testid` names. */
  const pickerOf = (testid) => page.getByTestId(testid).locator('xpath=..').getByTestId('var-picker');

  it('builds the seed example from an empty workflow without JSON, tests it and sees it on the dashboard', async () => {
    await page.goto(`${app.engine}/console/#/workflows`);
    await page.getByTestId('create-key').fill('seed');
    await page.getByTestId('create-title').fill('Payment callback');
    await page.getByTestId('create-sync').check();
    await page.getByTestId('create-submit').click();
    await page.waitForURL(/#\/workflows\/seed$/);
    await see(page.getByTestId('no-nodes'), /No nodes yet/);

    // The request's variables, by alias: parsed from an example body.
    await page.getByTestId('parse-body-example').fill('{"status": "paid", "order": {"id": 7}}');
    await page.getByTestId('parse-body').click();
    await see(page.getByTestId('parse-body-message'), /3 paths found/);
    await page.getByTestId('var-body-status').getByTestId('var-alias').fill('Payment status');

    // A condition from the palette: status (picked by its alias) equals "paid".
    await page.getByTestId('insert-nodes-0').click();
    await page.getByTestId('palette-condition').click();
    await see(page.getByTestId('node-form'), /Node condition_1 condition/);
    await page.getByTestId('group-add').click();
    await pickerOf('group-0-operand-0').selectOption({ label: 'Body: Payment status' });
    assert.equal(await page.getByTestId('group-0-operand-0').inputValue(), '{{$context.body.status}}');
    await page.getByTestId('group-0-calculator').selectOption('equal');
    await page.getByTestId('group-0-operand-1').fill('paid');

    // A success answer in branch "true", a failure in branch "false".
    await page.getByTestId('insert-nodes[0].branches.true-0').click();
    await page.getByTestId('palette-response').click();
    await see(page.getByTestId('node-form'), /Node response_1 response/);
    await page.getByTestId('field-statusCode').fill('200');
    await page.getByTestId('field-body').fill('{"ok": true, "order": "{{$context.body.order.id}}"}');
    await page.getByTestId('insert-nodes[0].branches.false-0').click();
    await page.getByTestId('palette-response').click();
    await see(page.getByTestId('node-form'), /Node response_2 response/);
    await page.getByTestId('field-statusCode').fill('400');
    await page.getByTestId('field-body').fill('{"ok": false}');
    await see(page.getByTestId('unsaved'), /Unsaved changes/);
    // The JSON view follows the forms.
    assert.match(await page.getByTestId('definition-json').inputValue(), /"operands": \[\s*"\{\{\$context\.body\.status\}\}",\s*"paid"\s*\]/);

    // A fault of a refused save is shown on its field, then fixed.
    await page.getByTestId('edit-condition_1').click();
    await page.getByTestId('group-0-operand-1').fill('{{$context.body.status');
    await page.getByTestId('save-workflow').click();
    await see(page.getByTestId('node-fault-condition_1'), /template/);
    await see(page.getByTestId('node-form').getByTestId('field-fault'), /template/);
    await page.getByTestId('group-0-operand-1').fill('paid');
    await page.getByTestId('save-workflow').click();
    await see(page.getByTestId('save-message'), /Saved version 2/);
    await see(page.getByTestId('branch-condition_1-true'), /response_1\s+response/);

    // A test run on a sample, with no sender.
    await page.getByTestId('test-body').fill('{"status": "paid", "order": {"id": 7}}');
    await page.getByTestId('test-run').click();
    await see(page.getByTestId('test-execution-status'), /resolved/);
    await see(page.getByTestId('test-execution').getByTestId('job-response_1'), /response_1\s+response\s+resolved/);
    const executionId = await page.getByTestId('open-execution').innerText();
    const execution = await (await fetch(`${app.engine}/api/executions/${executionId}`)).json();
    assert.equal(execution.test, true);
    assert.deepEqual(execution.jobs[1].output.body, { ok: true, order: 7 });

    // One node tried on the test run's sample.
    await page.getByTestId('edit-condition_1').click();
    await page.getByTestId('node-test-open').click();
    await page.getByTestId('node-test-run').click();
    await see(page.getByTestId('node-test-status'), /resolved/);
    await see(page.getByTestId('node-test-directive'), /branch "true"/);
    await see(page.getByTestId('node-test-output'), /"result": true/);
    await screenshot(page, 'workflow-editor', page.getByTestId('node-form').locator('xpath=ancestor::section[1]'));

    // The dashboard: the test run, counted.
    await see(page.getByTestId('activity-summary'), /1 executions \(1 resolved\)/);
    await page.getByTestId('nav-dashboard').click();
    await see(page.getByTestId('dashboard-summary'), /1 executions \(1 resolved\)/);
    assert.equal(await page.getByTestId('dashboard-charts').locator('canvas').count() >= 3, true, 'three charts drawn');
    await screenshot(page, 'dashboard');
  });

  it('moves and removes nodes, and keeps the tree a user sees in step with what is saved', async () => {
    await page.goto(`${app.engine}/console/#/workflows/seed`);
    await page.getByTestId('insert-nodes-1').click();
    await page.getByTestId('palette-set').click();
    await page.getByTestId('add-value').click();
    // The picker offers what this place can read: the condition's result, the system's values and
    // the secrets' names, never their values.
    const offered = await pickerOf('value-0').locator('option').allInnerTexts();
    for (const label of ['condition_1 → result', 'Execution id', 'Now', 'SHOP_TOKEN']) {
      assert.ok(offered.includes(label), `${label} in ${offered}`);
    }
    assert.equal((await page.content()).includes('tok-not-for-eyes'), false, 'no secret value in the page');
    await pickerOf('value-0').selectOption({ label: 'Execution id' });
    assert.equal(await page.getByTestId('value-0').inputValue(), '{{$execution.id}}');
    await page.getByTestId('up-set_1').click();
    await page.getByTestId('save-workflow').click();
    await see(page.getByTestId('save-message'), /Saved version 3/);
    let stored = await (await fetch(`${app.engine}/api/workflows/seed`)).json();
    assert.deepEqual(stored.nodes.map((node) => node.key), ['set_1', 'condition_1']);
    assert.deepEqual(stored.nodes[0].config, { values: { value1: '{{$execution.id}}' } });

    await page.getByTestId('move-set_1').click();
    await page.getByTestId('move-here-nodes[1].branches.false-1').click();
    await page.getByTestId('remove-response_2').click();
    await page.getByTestId('save-workflow').click();
    await see(page.getByTestId('save-message'), /Saved version 4/);
    stored = await (await fetch(`${app.engine}/api/workflows/seed`)).json();
    assert.deepEqual(stored.nodes.map((node) => node.key), ['condition_1']);
    assert.deepEqual(stored.nodes[0].branches.false.map((node) => node.key), ['set_1']);
  });

  it('sets the trigger\'s security and the options from forms', async () => {
    await page.goto(`${app.engine}/console/#/workflows/seed`);
    await page.getByTestId('use-signature').check();
    await page.getByTestId('field-signature-header').fill('X-Hub-Signature-256');
    await page.getByTestId('field-signature-prefix').fill('sha256=');
    await page.getByTestId('add-signature-secret').click();
    await page.getByTestId('signature-secret-0').fill('first-secret');
    await page.getByTestId('field-on-failure').fill('seed-alerts');
    await page.getByTestId('use-rate-limit').check();
    await page.getByTestId('field-rate-requests').fill('50');
    await page.getByTestId('save-workflow').click();
    await see(page.getByTestId('save-message'), /Saved version 5/);
    const stored = await (await fetch(`${app.engine}/api/workflows/seed`)).json();
    const { type, header, prefix, secrets } = stored.trigger.signature;
    assert.deepEqual({ type, header, prefix, secrets }, { type: 'hmac-sha256', header: 'X-Hub-Signature-256', prefix: 'sha256=', secrets: ['********'] });
    assert.equal(stored.options.onFailure, 'seed-alerts');
    assert.deepEqual(stored.options.rateLimit, { requests: 50, per: '1s' });
    // Saved again untouched, the stored secret stays (the form sends the mask back).
    await page.getByTestId('field-rate-requests').fill('60');
    await page.getByTestId('save-workflow').click();
    await see(page.getByTestId('save-message'), /Saved version 6/);
    const signed = await fetch(`${app.engine}/api/webhook:trigger/seed`, { method: 'POST', body: '{}', headers: { 'X-Hub-Signature-256': 'sha256=00' } });
    assert.equal(signed.status, 401, 'a wrong signature is refused: the secret is still set');
  });

  it('follows new executions on the live list without a reload', async () => {
    const created = await fetch(`${app.engine}/api/workflows`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ key: 'followed', nodes: [{ key: 'mark', type: 'set', config: { values: { seen: 'yes' } } }] }),
    });
    assert.equal(created.status, 201, await created.text());
    await page.goto(`${app.engine}/console/#/executions?workflow=followed`);
    await see(page.getByTestId('live'), /live/);
    await see(page.getByTestId('no-executions'), /No executions match/);
    const sent = await fetch(`${app.engine}/api/webhook:trigger/followed`, { method: 'POST', body: '{}' });
    const id = sent.headers.get('x-hookflow-execution');
    assert.ok(id, `an execution id (status ${sent.status})`);
    // Read again every few seconds: the new execution shows up on the page as it is.
    await see(page.getByTestId('executions'), new RegExp(id));
  });
});

describe('console with an admin token, executions not run (--workers 0)', () => {
  let app;
  before(async () => { app = await start({ args: ['--admin-token', 'console-secret', '--workers', '0'] }); });
  after(async () => app?.close());

  it('asks for the token, refuses a wrong one, then works', async () => {
    const { page } = app;
    await page.goto(`${app.engine}/console/#/workflows`);
    const dialog = page.getByTestId('token-dialog');
    await dialog.waitFor({ state: 'visible' });
    assert.equal(await page.getByTestId('token-error').isVisible(), false, 'no error before a token was tried');
    await page.getByTestId('token-input').fill('wrong');
    await page.getByTestId('token-submit').click();
    await page.getByTestId('token-error').waitFor({ state: 'visible' });
    await see(page.getByTestId('token-error'), /unauthorized/);
    // Enter signs in (the form's default button).
    await page.getByTestId('token-input').fill('console-secret');
    await page.getByTestId('token-input').press('Enter');
    await see(page.getByTestId('no-workflows'), /No workflows yet/);
    await dialog.waitFor({ state: 'hidden' });

    // Kept for the session: a reload does not ask again.
    await page.reload();
    await see(page.getByTestId('no-workflows'), /No workflows yet/);
    assert.equal(await dialog.isVisible(), false);
  });

  it('sets the async response, and cancels a queued execution', async () => {
    const { page } = app;
    await page.getByTestId('create-key').fill('later');
    await page.getByTestId('create-submit').click();
    await page.waitForURL(/#\/workflows\/later$/);
    await page.getByTestId('response-status').fill('202');
    await page.getByTestId('response-body').fill('accepted');
    await page.getByTestId('save-trigger').click();
    await see(page.getByTestId('save-message'), /Saved version 2/);

    await page.getByTestId('test-send').click();
    await see(page.getByTestId('test-status'), /^202/);
    await see(page.getByTestId('test-response-body'), /^accepted$/);
    await see(page.getByTestId('test-execution-status'), /queued/);
    await page.getByTestId('open-execution').click();
    await see(page.getByTestId('execution-status'), /queued/);
    await page.getByTestId('cancel').click();
    await see(page.getByTestId('execution-status'), /canceled/);

    // A finished execution can be deleted (after a confirmation).
    page.once('dialog', (dialog) => dialog.accept());
    await page.getByTestId('delete-execution').click();
    await page.waitForURL(/#\/executions\?workflow=later$/);
    await see(page.getByTestId('no-executions'), /No executions/);
  });
});
