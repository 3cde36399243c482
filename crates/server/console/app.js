// The hookflow web console: a hash-routed page over the admin API (docs/operating.md).
// No framework and no build step: `h()` builds elements, each screen is an async function that
// returns one, and every action re-reads what it changed from the API. `ui.js` holds the
// element helpers, `api.js` the admin API and its token, `editor.js` the node editor and
// `dashboard.js` the charts.

import { ApiError, api, listAll, onForgetToken } from './api.js';
import { activityPanel } from './dashboard.js';
import { nodeEditor, settingsPanel } from './editor.js';
import { act, badge, duration, errorBox, fieldRow, fill, h, messageSlot, pre, section, time } from './ui.js';

const MASK = '********';
const FINAL = new Set(['resolved', 'failed', 'error', 'aborted', 'canceled']);
const STATUSES = ['queued', 'started', ...FINAL];

const view = document.getElementById('view');

// ---------------------------------------------------------------- routing

let renders = 0;

/** Renders the screen the hash names: `#/dashboard`, `#/workflows[/key]`,
 *  `#/executions[/id][?filters]`, `#/refusals[?filters]`, `#/plugins`. */
async function route() {
  const shown = location.hash;
  const [path, query = ''] = (shown.slice(1) || '/workflows').split('?');
  const [screen, id] = path.split('/').filter(Boolean).map(decodeURIComponent);
  const params = new URLSearchParams(query);
  const pages = {
    workflows: () => (id ? workflowPage(id) : workflowsPage()),
    executions: () => (id ? executionPage(id) : executionsPage(params)),
    refusals: () => refusalsPage(params),
    dashboard: () => dashboardPage(),
    plugins: () => pluginsPage(),
  };
  for (const link of document.querySelectorAll('[data-nav]')) {
    link.classList.toggle('active', link.dataset.nav === screen);
  }
  const render = ++renders;
  view.replaceChildren(h('p', { class: 'muted' }, 'Loading…'));
  let content;
  try {
    content = await (pages[screen] ?? pages.workflows)();
  } catch (error) {
    content = errorBox(error);
  }
  if (render === renders) {
    view.replaceChildren(content);
    // The hash this content answers, for tests and scripts that wait for a screen.
    view.dataset.shown = shown;
  }
}

/** Whether the screen that started a render is still shown (for polling). */
const current = (render) => render === renders;

window.addEventListener('hashchange', route);
onForgetToken(route);
route();

// ---------------------------------------------------------------- workflows

async function workflowsPage() {
  const workflows = await listAll('/api/workflows');
  const message = messageSlot('workflows-message');
  const rows = workflows.map((workflow) => {
    // The listing carries each workflow's newest execution.
    const newest = workflow.lastExecution;
    const last = h('td', { 'data-testid': `last-${workflow.key}` }, newest
      ? h('a', { href: `#/executions/${newest.id}` }, badge(newest.status), ' ', time(newest.createdAt))
      : h('span', { class: 'muted' }, 'never run'));
    const toggle = toggleButton(workflow, message, `toggle-${workflow.key}`);
    return h('tr', { 'data-testid': `workflow-${workflow.key}` },
      h('td', {}, h('a', { href: `#/workflows/${encodeURIComponent(workflow.key)}` }, h('code', {}, workflow.key))),
      h('td', {}, workflow.title),
      h('td', {}, workflow.sync ? 'sync' : 'async'),
      h('td', { 'data-testid': `enabled-${workflow.key}` }, workflow.enabled ? 'enabled' : 'disabled'),
      last,
      h('td', {}, toggle));
  });
  return h('div', {},
    h('h1', {}, 'Workflows'),
    message,
    rows.length === 0 ? h('p', { class: 'muted', 'data-testid': 'no-workflows' }, 'No workflows yet: create one below.')
      : h('table', { 'data-testid': 'workflows' },
        h('thead', {}, h('tr', {}, ['Key', 'Title', 'Mode', 'State', 'Last execution', ''].map((c) => h('th', {}, c)))),
        h('tbody', {}, rows)),
    createPanel());
}

/** Create a workflow from a small form or from a JSON definition. */
function createPanel() {
  const message = messageSlot('create-message');
  const created = (workflow) => { location.hash = `#/workflows/${encodeURIComponent(workflow.key)}`; };

  const key = h('input', { name: 'key', placeholder: 'generated when empty', 'data-testid': 'create-key' });
  const title = h('input', { name: 'title', 'data-testid': 'create-title' });
  const sync = h('input', { type: 'checkbox', name: 'sync', 'data-testid': 'create-sync' });
  const formButton = h('button', { class: 'primary', 'data-testid': 'create-submit' }, 'Create');
  const form = h('form', {
    class: 'stack',
    onsubmit: (event) => {
      event.preventDefault();
      const definition = { title: title.value, sync: sync.checked, nodes: [] };
      if (key.value.trim()) definition.key = key.value.trim();
      act(formButton, message, async () => created(await api('POST', '/api/workflows', definition)));
    },
  },
  fieldRow('Key', key), fieldRow('Title', title),
  h('label', { class: 'check' }, sync, ' Sync: the caller waits for the run and its Response node'),
  h('div', { class: 'actions' }, formButton));

  const json = h('textarea', { rows: 12, spellcheck: false, 'data-testid': 'create-json', placeholder: '{"key": "…", "sync": true, "nodes": […]}' });
  const jsonButton = h('button', {
    type: 'button', class: 'primary', 'data-testid': 'create-json-submit',
    onclick: () => act(jsonButton, message, async () => {
      try {
        created(await api('POST', '/api/workflows', json.value));
      } catch (error) {
        message.fail(error, (path) => selectPath(json, path));
      }
    }),
  }, 'Create from JSON');

  return section('New workflow',
    h('div', { class: 'columns' },
      h('div', {}, h('h3', {}, 'Form'), form),
      h('div', { class: 'stack' }, h('h3', {}, 'JSON definition'), json, h('div', { class: 'actions' }, jsonButton))),
    message);
}

/** Disables an enabled workflow or enables a disabled one, then shows the screen again. */
function toggleButton(workflow, slot, testid) {
  const button = h('button', {
    type: 'button', 'data-testid': testid,
    onclick: () => act(button, slot, async () => {
      await api('POST', `/api/workflows/${encodeURIComponent(workflow.key)}/${workflow.enabled ? 'disable' : 'enable'}`);
      route();
    }),
  }, workflow.enabled ? 'Disable' : 'Enable');
  return button;
}

/** The fields the API adds to a definition. */
function definitionOf(workflow) {
  const { version, url, createdAt, updatedAt, ...definition } = workflow;
  return structuredClone(definition);
}

async function workflowPage(key) {
  const [workflow, plugins, secrets] = await Promise.all([
    api('GET', `/api/workflows/${encodeURIComponent(key)}`),
    listAll('/api/plugins'),
    api('GET', '/api/secrets').then((page) => page.items.map((secret) => secret.name), () => []),
  ]);
  const definition = definitionOf(workflow);
  const message = messageSlot('save-message');
  const editor = jsonEditor(definition);
  // What the last test run gave each node, for testing one node on it.
  let lastTest = null;

  /** Saves a definition (object or JSON text) as the next version and shows the page again;
   *  a refusal shows in `slot`, and its faults on the nodes and fields they name. */
  async function save(body, slot, onFault) {
    try {
      // If-Match: refused (409 conflict) when the workflow changed since this page was loaded.
      const saved = await api('PUT', `/api/workflows/${encodeURIComponent(key)}`, body, { 'If-Match': `"${workflow.version}"` });
      await showAgain(`Saved version ${saved.version}.`);
    } catch (error) {
      slot.fail(error, onFault);
      if (error.faults) nodes.showFaults(error.faults);
    }
  }

  // The forms edit `definition` in place; the JSON view follows unless it holds edits of its own.
  const unsaved = h('span', { class: 'unsaved', 'data-testid': 'unsaved', hidden: true }, 'Unsaved changes');
  const changed = () => {
    unsaved.hidden = false;
    if (!editor.dirty) editor.show(definition);
  };
  const saveBar = messageSlot('workflow-save-message');
  const saveWorkflow = h('button', {
    type: 'button', class: 'primary', 'data-testid': 'save-workflow',
    onclick: () => (!editor.dirty || confirm('The JSON definition below has unsaved edits, which saving the forms discards. Save anyway?'))
      && act(saveWorkflow, saveBar, () => save(definition, saveBar, (path) => selectPath(editor.textarea, path))),
  }, 'Save workflow');
  const nodes = nodeEditor({
    definition, plugins, secrets, sync: workflow.sync, workflowKey: key, changed,
    sample: () => lastTest ?? { trigger: { headers: {}, query: {}, body: {} }, jobs: {} },
  });

  /** Shows the page again, freshly loaded, with `note` above it. */
  async function showAgain(note) {
    const page = await workflowPage(key);
    page.querySelector('[data-testid="save-message"]').ok(note);
    view.replaceChildren(page);
  }
  editor.onsave = (text) => save(text, editor.message, (path) => selectPath(editor.textarea, path));

  const enable = toggleButton(workflow, message, 'toggle-enabled');
  const remove = h('button', {
    type: 'button', class: 'danger', 'data-testid': 'delete-workflow',
    onclick: () => confirm(`Delete workflow ${key}? Its executions stay readable.`) && act(remove, message, async () => {
      await api('DELETE', `/api/workflows/${encodeURIComponent(key)}`);
      location.hash = '#/workflows';
    }),
  }, 'Delete');

  return h('div', {},
    h('h1', {}, workflow.title || key, ' ',
      h('span', { class: 'muted' }, `v${workflow.version} · ${workflow.sync ? 'sync' : 'async'} · `),
      h('span', { 'data-testid': 'workflow-state' }, workflow.enabled ? 'enabled' : 'disabled')),
    h('div', { class: 'actions' }, enable, remove,
      h('a', { href: `#/executions?workflow=${encodeURIComponent(key)}`, 'data-testid': 'workflow-executions' }, 'Executions →')),
    message,
    h('div', { class: 'save-bar' }, saveWorkflow, ' ', unsaved, saveBar),
    urlPanel(workflow.url),
    triggerPanel(definition, editor, (slot) => save(definition, slot, (path) => selectPath(editor.textarea, path)), changed),
    nodes,
    settingsPanel(definition, changed, secrets),
    testPanel(workflow, (execution) => {
      if (!execution) return;
      lastTest = { trigger: execution.trigger, jobs: Object.fromEntries(execution.jobs.map((job) => [job.nodeKey, job.output])) };
    }),
    activityPanel(key),
    refusalsPanel(key),
    editor.panel,
    versionsPanel(key, message, showAgain));
}

/** The stored versions, newest first, each with its definition and a button that makes it
 *  current again (as a new version; enabled state and secrets stay as they are today). */
function versionsPanel(key, message, showAgain) {
  const list = h('div', { 'data-testid': 'versions' }, h('p', { class: 'muted' }, 'Loading…'));
  api('GET', `/api/workflows/${encodeURIComponent(key)}/versions`).then((page) => {
    list.replaceChildren(h('table', {},
      h('thead', {}, h('tr', {}, ['Version', 'Title', 'Nodes', ''].map((c) => h('th', {}, c)))),
      h('tbody', {}, page.items.map((item) => {
        const restore = !item.current && h('button', {
          type: 'button', 'data-testid': `restore-${item.version}`,
          onclick: () => act(restore, message, async () => {
            const restored = await api('POST', `/api/workflows/${encodeURIComponent(key)}/versions/${item.version}/restore`);
            await showAgain(`Restored version ${item.version} as version ${restored.version}.`);
          }),
        }, 'Restore');
        return h('tr', { 'data-testid': `version-${item.version}` },
          h('td', {}, `v${item.version}`, item.current ? ' (current)' : ''),
          h('td', {}, item.definition.title ?? ''),
          h('td', {}, h('details', {}, h('summary', {}, String(item.definition.nodes.length)), pre(item.definition))),
          h('td', {}, restore));
      }))));
  }, (error) => list.replaceChildren(errorBox(error)));
  return section('Versions', list);
}

/** The webhook URL and its copy button (the first trigger setting). */
function urlPanel(url) {
  const input = h('input', { readOnly: true, value: url, 'data-testid': 'webhook-url', onfocus: () => input.select() });
  const copied = h('span', { class: 'muted', 'data-testid': 'copy-status' });
  const copy = h('button', {
    type: 'button', 'data-testid': 'copy-url',
    onclick: async () => {
      try {
        await navigator.clipboard.writeText(url);
      } catch {
        // No clipboard API (plain HTTP on a non-loopback host): copy the selected input.
        input.select();
        document.execCommand('copy');
      }
      copied.textContent = 'Copied';
      setTimeout(() => { copied.textContent = ''; }, 2000);
    },
  }, 'Copy');
  return section('Webhook URL',
    h('div', { class: 'inline' }, input, copy, copied),
    h('p', { class: 'muted' }, 'POST only: other methods get 405.'));
}

/** Trigger settings: Basic auth, request variables with parse-from-example, async response. */
function triggerPanel(definition, editor, save, changed) {
  const trigger = definition.trigger;
  trigger.request ??= {};

  const auth = trigger.basicAuth;
  const username = h('input', { value: auth?.username ?? '', 'data-testid': 'auth-username', oninput: () => setAuth() });
  // The stored password is never shown: an empty field keeps it (the API takes the mask back as
  // "unchanged"), anything typed replaces it.
  const password = h('input', {
    type: 'password', placeholder: auth ? 'unchanged' : '', 'data-testid': 'auth-password', oninput: () => setAuth(),
  });
  const useAuth = h('input', { type: 'checkbox', checked: Boolean(auth), 'data-testid': 'auth-enabled', onchange: () => setAuth() });
  function setAuth() {
    username.disabled = password.disabled = !useAuth.checked;
    if (useAuth.checked) trigger.basicAuth = { username: username.value, password: password.value || (auth ? MASK : '') };
    else delete trigger.basicAuth;
    changed();
  }
  username.disabled = password.disabled = !auth;

  const lists = ['headers', 'query', 'body'].map((part) => {
    trigger.request[part] ??= [];
    return variableList(trigger.request[part], part, changed);
  });
  const [headers, query, body] = lists;

  const queryExample = h('input', { placeholder: 'https://example.com/hook?source=shop&ref=1', 'data-testid': 'parse-query-example' });
  const bodyExample = h('textarea', { rows: 5, spellcheck: false, placeholder: '{"status": "paid", "order": {"id": 1}}', 'data-testid': 'parse-body-example' });
  const parseQuery = parseButton('parse-query', query, () => api('POST', '/api/parse/query', { example: queryExample.value }));
  const parseBody = parseButton('parse-body', body, () => {
    let example;
    try {
      example = JSON.parse(bodyExample.value);
    } catch (error) {
      throw new ApiError(0, { code: 'invalid_json', message: `the example is not JSON: ${error.message}` });
    }
    return api('POST', '/api/parse/body', { example });
  });

  const saved = messageSlot('trigger-message');
  const saveButton = h('button', {
    type: 'button', class: 'primary', 'data-testid': 'save-trigger',
    onclick: () => (!editor.dirty || confirm('The JSON definition below has unsaved edits, which saving the trigger settings discards. Save anyway?'))
      && act(saveButton, saved, () => save(saved)),
  }, 'Save trigger settings');

  return section('Trigger',
    h('h3', {}, 'Security'),
    h('label', { class: 'check' }, useAuth, ' HTTP Basic authentication'),
    h('div', { class: 'columns' }, fieldRow('Username', username), fieldRow('Password', password)),
    auth && h('p', { class: 'muted' }, 'Leave the password empty to keep the stored one.'),
    h('h3', {}, 'Request headers'),
    h('p', { class: 'muted' }, 'Only these headers reach the workflow, as {{$context.headers.<lower-case name>}}.'),
    headers,
    h('h3', {}, 'Query parameters'),
    h('div', { class: 'inline' }, queryExample, parseQuery), query.message,
    query,
    h('h3', {}, 'Body (JSON)'),
    h('div', { class: 'stack' }, bodyExample, h('div', {}, parseBody)), body.message,
    body,
    definition.sync
      ? h('p', { class: 'muted' }, 'Sync workflow: the caller gets what a Response node sets (or 200 with the execution id).')
      : responseSettings(trigger, changed),
    h('div', { class: 'actions' }, saveButton), saved);
}

/** A "Parse" button that replaces a list's entries with an example's paths (keeping the aliases
 *  of entries that stay). */
function parseButton(testid, list, parse) {
  const button = h('button', {
    type: 'button', 'data-testid': testid,
    onclick: () => act(button, list.message, async () => {
      const { paths } = await parse();
      list.replace(paths);
      list.message.ok(`${paths.length} path${paths.length === 1 ? '' : 's'} found; remove those you do not need.`);
    }),
  }, 'Parse');
  return button;
}

/** An editable, prunable list of `{key, alias}` entries, changed in place. */
function variableList(entries, part, changed) {
  const body = h('tbody', {});
  const container = h('div', { class: 'variables' },
    h('table', { 'data-testid': `vars-${part}` },
      h('thead', {}, h('tr', {}, h('th', {}, part === 'headers' ? 'Header' : 'Path'), h('th', {}, 'Alias'), h('th', {}))),
      body),
    h('button', { type: 'button', 'data-testid': `add-${part}`, onclick: () => { entries.push({ key: '' }); draw(); changed(); } }, '+ Add'));
  container.message = messageSlot(`parse-${part}-message`);

  function draw() {
    container.querySelector('table').hidden = entries.length === 0;
    body.replaceChildren(...entries.map((entry, index) => h('tr', { 'data-testid': `var-${part}-${entry.key}` },
      h('td', {}, h('input', { value: entry.key, 'aria-label': 'key', 'data-testid': 'var-key', oninput: (e) => { entry.key = e.target.value; changed(); } })),
      h('td', {}, h('input', {
        value: entry.alias ?? '', 'aria-label': 'alias', 'data-testid': 'var-alias',
        oninput: (e) => {
          if (e.target.value) entry.alias = e.target.value;
          else delete entry.alias;
          changed();
        },
      })),
      h('td', {}, h('button', { type: 'button', class: 'link', title: 'Remove', 'data-testid': 'var-remove', onclick: () => { entries.splice(index, 1); draw(); changed(); } }, 'Remove')))));
  }
  container.replace = (paths) => {
    const aliases = new Map(entries.map((entry) => [entry.key, entry.alias]));
    entries.splice(0, entries.length, ...paths.map(({ key }) => (aliases.get(key) ? { key, alias: aliases.get(key) } : { key })));
    draw();
    changed();
  };
  draw();
  return container;
}

/** The async answer: status, headers and body (text or JSON). */
function responseSettings(trigger, changed) {
  const response = trigger.response ?? { statusCode: 200, headers: [], body: 'ok' };
  const update = () => { trigger.response = response; changed(); };
  const status = h('input', { type: 'number', min: 100, max: 599, value: response.statusCode, 'data-testid': 'response-status', oninput: () => { response.statusCode = Number(status.value); update(); } });
  const asJson = typeof response.body !== 'string';
  const kind = h('select', { 'data-testid': 'response-body-kind', onchange: () => setBody() },
    h('option', { value: 'text', selected: !asJson }, 'text'), h('option', { value: 'json', selected: asJson }, 'JSON'));
  const bodyText = h('textarea', { rows: 3, spellcheck: false, value: asJson ? JSON.stringify(response.body, null, 2) : response.body, 'data-testid': 'response-body', oninput: () => setBody() });
  const bodyError = h('span', { class: 'error-text' });
  function setBody() {
    bodyError.textContent = '';
    if (kind.value === 'text') response.body = bodyText.value;
    else {
      try {
        response.body = JSON.parse(bodyText.value);
      } catch (error) {
        bodyError.textContent = `not JSON: ${error.message}`;
        return;
      }
    }
    update();
  }
  response.headers ??= [];
  const headerRows = h('tbody', {});
  const drawHeaders = () => headerRows.replaceChildren(...response.headers.map((header, index) => h('tr', {},
    h('td', {}, h('input', { value: header.name, 'aria-label': 'name', oninput: (e) => { header.name = e.target.value; update(); } })),
    h('td', {}, h('input', { value: header.value, 'aria-label': 'value', oninput: (e) => { header.value = e.target.value; update(); } })),
    h('td', {}, h('button', { type: 'button', class: 'link', onclick: () => { response.headers.splice(index, 1); drawHeaders(); update(); } }, 'Remove')))));
  drawHeaders();
  return h('div', {},
    h('h3', {}, 'Response (async)'),
    h('p', { class: 'muted' }, 'Sent at once, before the workflow runs in the background.'),
    fieldRow('Status code', status),
    h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'Header'), h('th', {}, 'Value'), h('th', {}))), headerRows),
    h('button', { type: 'button', onclick: () => { response.headers.push({ name: '', value: '' }); drawHeaders(); update(); } }, '+ Add header'),
    h('div', { class: 'inline' }, fieldRow('Body as', kind), bodyError),
    bodyText);
}

/** The whole definition as JSON text, saved as it is; faults link to their place in the text. */
function jsonEditor(definition) {
  const textarea = h('textarea', { rows: 24, spellcheck: false, class: 'code', 'data-testid': 'definition-json' });
  const message = messageSlot('json-message');
  // `dirty`: the text holds edits of its own, which the trigger form must not overwrite.
  const editor = {
    textarea, message, dirty: false,
    show: (value) => { textarea.value = JSON.stringify(value, null, 2); editor.dirty = false; },
  };
  textarea.addEventListener('input', () => { editor.dirty = true; });
  const saveButton = h('button', {
    type: 'button', class: 'primary', 'data-testid': 'save-json',
    onclick: () => act(saveButton, message, async () => {
      message.show();
      await editor.onsave(textarea.value);
    }),
  }, 'Save definition');
  editor.show(definition);
  editor.panel = section('Definition (JSON)',
    h('p', { class: 'muted' }, 'The trigger form above writes here until you edit the text; saving stores the text as the next version.'),
    textarea, h('div', { class: 'actions' }, saveButton), message);
  return editor;
}

/** Selects the text of the value at a fault's JSON path (`nodes[0].branches.true[1].type`), or
 *  of its nearest enclosing value. */
function selectPath(textarea, path) {
  let spans;
  try {
    JSON.parse(textarea.value);
    spans = valueSpans(textarea.value);
  } catch {
    return textarea.focus();
  }
  const segments = path.match(/\[[^\]]*\]|[^.[\]]+/g) ?? [];
  for (let n = segments.length; n >= 0; n--) {
    const span = spans.get(segments.slice(0, n).join('.').replaceAll('.[', '['));
    if (span) {
      textarea.focus();
      textarea.setSelectionRange(...span);
      // Scroll the selection into view: the line's share of the text's height.
      const line = textarea.value.slice(0, span[0]).split('\n').length;
      textarea.scrollTop = (line / textarea.value.split('\n').length) * textarea.scrollHeight - textarea.clientHeight / 2;
      return;
    }
  }
}

/** The [start, end] offsets of every value of valid JSON text, by path as the engine writes it. */
function valueSpans(text) {
  const spans = new Map();
  let at = 0;
  const space = () => { while (/\s/.test(text[at])) at++; };
  const string = () => {
    const start = at++;
    while (text[at] !== '"') at += text[at] === '\\' ? 2 : 1;
    return JSON.parse(text.slice(start, ++at));
  };
  const join = (path, key) => (typeof key === 'number' ? `${path}[${key}]`
    : /^[^.[\]"]+$/.test(key) ? (path ? `${path}.${key}` : key) : `${path}[${JSON.stringify(key)}]`);
  const value = (path) => {
    space();
    const start = at;
    if (text[at] === '{' || text[at] === '[') {
      const object = text[at++] === '{';
      space();
      for (let index = 0; text[at] !== (object ? '}' : ']'); index++) {
        space();
        let key = index;
        if (object) {
          key = string();
          space();
          at++; // the colon
        }
        value(join(path, key));
        space();
        if (text[at] === ',') at++;
        space();
      }
      at++;
    } else if (text[at] === '"') {
      string();
    } else {
      while (at < text.length && !/[\s,\]}]/.test(text[at])) at++;
    }
    spans.set(path, [start, at]);
  };
  value('');
  return spans;
}

// ---------------------------------------------------------------- the node tree

/** A chain of nodes as nested boxes, branches side by side; `annotate(node)` adds content to a
 *  node's box (the jobs of an execution). */
function tree(nodes, annotate = () => null) {
  return h('ol', { class: 'chain' }, nodes.map((node) => h('li', { class: 'node' },
    h('div', { class: 'box', 'data-testid': `node-${node.key}` },
      h('div', { class: 'node-head' }, h('code', {}, node.key), ' ', h('span', { class: 'type' }, node.type)),
      node.title && h('div', { class: 'muted' }, node.title),
      annotate(node)),
    Object.keys(node.branches ?? {}).length > 0 && h('div', { class: 'branches' },
      Object.entries(node.branches).map(([name, chain]) => h('div', { class: 'branch', 'data-testid': `branch-${node.key}-${name}` },
        h('div', { class: 'branch-name' }, name),
        chain.length ? tree(chain, annotate) : h('p', { class: 'muted' }, '(empty: continues)')))))));
}

// ---------------------------------------------------------------- send test request

/** POSTs an example to the workflow's own URL (same origin) and shows the answer and the
 *  execution it started (named by the `X-Hookflow-Execution` header). */
function testPanel(workflow, onTested) {
  const path = new URL(workflow.url, location.origin);
  const query = h('input', { placeholder: 'source=test&ref=1', 'data-testid': 'test-query' });
  const headers = h('textarea', { rows: 2, spellcheck: false, placeholder: 'X-Request-Id: 42', 'data-testid': 'test-headers' });
  const body = h('textarea', { rows: 6, spellcheck: false, value: '{}', 'data-testid': 'test-body' });
  const auth = workflow.trigger.basicAuth;
  const user = h('input', { value: auth?.username ?? '', 'data-testid': 'test-username' });
  const password = h('input', { type: 'password', 'data-testid': 'test-password' });
  const result = h('div', { 'data-testid': 'test-result' });
  const message = messageSlot('test-message');

  const send = h('button', {
    type: 'button', class: 'primary', 'data-testid': 'test-send',
    onclick: () => act(send, message, async () => {
      message.show();
      result.replaceChildren(h('p', { class: 'muted' }, 'Sending…'));
      const sent = new Headers({ 'Content-Type': 'application/json' });
      for (const line of headers.value.split('\n').filter((l) => l.includes(':'))) {
        const colon = line.indexOf(':');
        sent.set(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
      }
      if (auth) sent.set('Authorization', `Basic ${base64Utf8(`${user.value}:${password.value}`)}`);
      const search = query.value.trim().replace(/^\?/, '');
      const started = performance.now();
      const response = await fetch(`${path.pathname}${search ? `?${search}` : ''}`, {
        method: 'POST', headers: sent, body: body.value,
        // Never the browser's own Basic credentials for this origin: only what the panel sets.
        credentials: 'omit',
      });
      const elapsed = Math.round(performance.now() - started);
      const text = await response.text();
      let shown = text;
      try {
        shown = JSON.stringify(JSON.parse(text), null, 2);
      } catch { /* not JSON: shown as text */ }
      const id = response.headers.get('x-hookflow-execution');
      const execution = h('div', { 'data-testid': 'test-execution' });
      result.replaceChildren(
        h('p', {}, 'Status ', h('strong', { 'data-testid': 'test-status' }, `${response.status} ${response.statusText}`), h('span', { class: 'muted' }, ` in ${elapsed} ms`)),
        h('details', {}, h('summary', {}, 'Response headers'),
          pre([...response.headers].map(([name, value]) => `${name}: ${value}`).join('\n'), 'test-response-headers')),
        h('h3', {}, 'Response body'), pre(shown, 'test-response-body'),
        h('h3', {}, 'Execution'), execution);
      if (!id) {
        execution.replaceChildren(h('p', { class: 'muted' }, 'The request started no execution.'));
        return;
      }
      onTested(await followExecution(id, execution));
    }),
  }, 'Send');

  // A test run: the workflow on this sample, with no HTTP checks (auth, signature, key).
  const testRun = h('button', {
    type: 'button', 'data-testid': 'test-run',
    onclick: () => act(testRun, message, async () => {
      message.show();
      let sample;
      try {
        sample = body.value.trim() ? JSON.parse(body.value) : null;
      } catch (error) {
        throw new ApiError(0, { code: 'invalid_json', message: `the body is not JSON: ${error.message}` });
      }
      const sent = {};
      for (const line of headers.value.split('\n').filter((l) => l.includes(':'))) {
        const colon = line.indexOf(':');
        sent[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
      const ran = await api('POST', `/api/workflows/${encodeURIComponent(workflow.key)}/test`,
        { headers: sent, query: query.value.trim().replace(/^\?/, ''), body: sample });
      const execution = h('div', { 'data-testid': 'test-execution' });
      result.replaceChildren(h('h3', {}, 'Test run'), execution);
      onTested(await followExecution(ran.id, execution));
    }),
  }, 'Test run (no sender)');

  return section('Test',
    h('p', { class: 'muted' }, h('strong', {}, 'Send'), ' POSTs to ', h('code', {}, path.pathname),
      ' on this origin with Content-Type: application/json, as a sender would; ', h('strong', {}, 'Test run'),
      ' runs the workflow on the same sample without the request checks (marked as a test).'),
    fieldRow('Query string', query),
    fieldRow('Headers (one per line)', headers),
    auth && h('div', { class: 'columns' }, fieldRow('Basic auth user', user), fieldRow('Basic auth password', password)),
    fieldRow('Body', body),
    h('div', { class: 'actions' }, send, testRun),
    message, result);
}

/** Base64 of a string's UTF-8 bytes (Basic auth's charset="UTF-8"; `btoa` alone takes Latin-1). */
function base64Utf8(text) {
  return btoa(String.fromCharCode(...new TextEncoder().encode(text)));
}

/** Shows an execution's summary and jobs in `slot`, polling until it has finished; returns it
 *  as last read. */
async function followExecution(id, slot) {
  const render = renders;
  let execution = null;
  for (let attempt = 0; attempt < 60 && current(render); attempt++) {
    execution = await api('GET', `/api/executions/${encodeURIComponent(id)}`);
    slot.replaceChildren(
      h('p', {}, h('a', { href: `#/executions/${id}`, 'data-testid': 'open-execution' }, h('code', {}, id)), ' ',
        badge(execution.status, 'test-execution-status'), execution.test && h('span', { class: 'muted' }, ' test run')),
      jobsTable(execution.jobs));
    if (FINAL.has(execution.status)) break;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  return execution;
}

function jobsTable(jobs) {
  if (jobs.length === 0) return h('p', { class: 'muted' }, 'No jobs.');
  return h('table', { 'data-testid': 'jobs' },
    h('thead', {}, h('tr', {}, ['Node', 'Type', 'Status', 'Duration', 'Error'].map((c) => h('th', {}, c)))),
    h('tbody', {}, jobs.map((job) => h('tr', { 'data-testid': `job-${job.nodeKey}` },
      h('td', {}, h('code', {}, job.nodeKey)), h('td', {}, job.type), h('td', {}, badge(job.status)),
      h('td', {}, duration(job.startedAt, job.finishedAt)), h('td', { class: 'error-text' }, job.error ?? '')))));
}

// ---------------------------------------------------------------- executions

async function executionsPage(params) {
  const filters = new URLSearchParams();
  for (const name of ['workflow', 'status', 'since', 'until', 'deadLetter', 'cursor']) {
    if (params.get(name)) filters.set(name, params.get(name));
  }
  filters.set('limit', params.get('limit') || '50');
  const [page, workflows] = await Promise.all([
    api('GET', `/api/executions?${filters}`),
    listAll('/api/workflows'),
  ]);

  const workflow = workflowSelect(workflows, params.get('workflow'), 'filter-workflow');
  const status = h('select', { name: 'status', 'data-testid': 'filter-status' },
    h('option', { value: '' }, 'all'),
    STATUSES.map((s) => h('option', { value: s, selected: s === params.get('status') }, s)));
  const local = (instant) => (instant ? new Date(Date.parse(instant) - new Date().getTimezoneOffset() * 60000).toISOString().slice(0, 16) : '');
  const since = h('input', { type: 'datetime-local', value: local(params.get('since')) });
  const until = h('input', { type: 'datetime-local', value: local(params.get('until')) });
  const deadLetter = h('input', { type: 'checkbox', 'data-testid': 'filter-dead-letter', checked: params.get('deadLetter') === 'true' });
  const form = h('form', {
    class: 'filters',
    onsubmit: (event) => {
      event.preventDefault();
      const next = new URLSearchParams();
      if (workflow.value) next.set('workflow', workflow.value);
      if (status.value) next.set('status', status.value);
      // The API takes RFC 3339 instants in UTC.
      if (since.value) next.set('since', new Date(since.value).toISOString());
      if (until.value) next.set('until', new Date(until.value).toISOString());
      if (deadLetter.checked) next.set('deadLetter', 'true');
      location.hash = `#/executions?${next}`;
    },
  },
  fieldRow('Workflow', workflow), fieldRow('Status', status), fieldRow('Since', since), fieldRow('Until', until),
  fieldRow('Dead letters only', deadLetter),
  h('button', { class: 'primary', 'data-testid': 'filter-apply' }, 'Filter'),
  h('button', { type: 'button', onclick: () => route() }, 'Refresh'));

  const newest = new URLSearchParams(params);
  newest.delete('cursor');
  const older = new URLSearchParams(params);
  older.set('cursor', page.nextCursor ?? '');
  // The newest page follows what happens: it is read again every few seconds while shown.
  const live = !params.get('cursor');
  let list = executionsTable(page.items);
  if (live) {
    const render = renders;
    const refresh = async () => {
      if (!current(render) || !list.isConnected) return;
      if (document.visibilityState === 'visible') {
        const fresh = await api('GET', `/api/executions?${filters}`).catch(() => null);
        if (fresh && current(render)) {
          const next = executionsTable(fresh.items);
          list.replaceWith(next);
          list = next;
        }
      }
      setTimeout(refresh, LIVE_MS);
    };
    setTimeout(refresh, LIVE_MS);
  }
  return h('div', {},
    h('h1', {}, 'Executions', live && h('span', { class: 'live', 'data-testid': 'live' }, ' live')),
    form,
    redrivePanel(params),
    list,
    h('p', { class: 'actions' },
      params.get('cursor') && h('a', { href: `#/executions?${newest}` }, '← Newest'),
      page.nextCursor && h('a', { href: `#/executions?${older}`, 'data-testid': 'older' }, 'Older →')));
}

/** How often the newest page of executions is read again. */
const LIVE_MS = 3000;

function executionsTable(items) {
  if (items.length === 0) return h('p', { class: 'muted', 'data-testid': 'no-executions' }, 'No executions match.');
  return h('table', { 'data-testid': 'executions' },
    h('thead', {}, h('tr', {}, ['Id', 'Workflow', 'Version', 'Status', 'Created', 'Duration'].map((c) => h('th', {}, c)))),
    h('tbody', {}, items.map((execution) => h('tr', { 'data-testid': `execution-${execution.id}` },
      h('td', {}, h('a', { href: `#/executions/${execution.id}` }, h('code', {}, execution.id))),
      h('td', {}, h('a', { href: `#/workflows/${encodeURIComponent(execution.workflow)}` }, execution.workflow)),
      h('td', {}, `v${execution.version}`),
      h('td', {}, badge(execution.status), execution.deadLetter && h('span', { class: 'muted' }, ' dead letter'),
        execution.attempt > 1 && h('span', { class: 'muted' }, ` attempt ${execution.attempt}`),
        execution.test && h('span', { class: 'muted' }, ' test')),
      h('td', {}, time(execution.createdAt)),
      h('td', {}, duration(execution.createdAt, execution.finishedAt))))));
}

/** A filter's choice of workflow: all, or one of `workflows`. */
function workflowSelect(workflows, selected, testid) {
  return h('select', { name: 'workflow', 'data-testid': testid },
    h('option', { value: '' }, 'all'),
    workflows.map((w) => h('option', { value: w.key, selected: w.key === selected }, w.key)));
}

/** On a list filtered to finished executions: how many a redrive would re-run (a dry run), and
 *  a button that re-runs them ("Re-run these 312"). */
function redrivePanel(params) {
  const status = params.get('status');
  // Unfiltered, a dry run would read every failure kept: offered once the list is narrowed.
  if (!params.get('workflow') && !status && params.get('deadLetter') !== 'true') return null;
  if (status && !FINAL.has(status)) return null;
  const filter = { dryRun: true };
  if (params.get('workflow')) filter.workflow = params.get('workflow');
  if (status) filter.status = [status];
  if (params.get('deadLetter') === 'true') filter.deadLetter = true;
  if (params.get('since')) filter.since = params.get('since');
  if (params.get('until')) filter.until = params.get('until');
  const message = messageSlot('redrive-message');
  const slot = h('div', { class: 'actions', 'data-testid': 'redrive' });
  api('POST', '/api/executions/rerun', filter).then(({ matched }) => {
    if (matched === 0) return;
    const what = status ? `${status} executions` : 'failed, errored and aborted executions';
    const button = h('button', {
      type: 'button', class: 'primary', 'data-testid': 'redrive-button',
      onclick: () => confirm(`Re-run ${matched} ${what} on their workflows' current versions?`) && act(button, message, async () => {
        const done = await api('POST', '/api/executions/rerun', { ...filter, dryRun: false });
        button.remove();
        message.ok(`Re-ran ${done.queued.length} of ${done.matched} matching executions.`);
      }),
    }, `Re-run these ${matched}`);
    slot.replaceChildren(button, h('span', { class: 'muted' }, ` ${what} matching the filter, not re-run before`));
  }, (error) => message.fail(error));
  return h('div', {}, slot, message);
}

async function executionPage(id) {
  const render = renders;
  const execution = await api('GET', `/api/executions/${encodeURIComponent(id)}`);
  // The tree of the version that ran; a deleted workflow leaves the jobs alone.
  const definition = await api('GET', `/api/workflows/${encodeURIComponent(execution.workflow)}/versions`)
    .then(({ items }) => items.find((v) => v.version === execution.version)?.definition, () => null);
  const message = messageSlot('execution-message');
  const shown = new Set();
  const jobsOf = (node) => {
    const jobs = execution.jobs.filter((job) => job.nodeKey === node.key);
    jobs.forEach((job) => shown.add(job));
    return jobs.length === 0 ? h('div', { class: 'muted not-run' }, 'not run') : jobs.map(jobDetail);
  };
  const nodes = definition ? tree(definition.nodes, jobsOf) : null;
  const others = execution.jobs.filter((job) => !shown.has(job));

  const rerun = h('button', {
    type: 'button', class: 'primary', 'data-testid': 'rerun',
    onclick: () => act(rerun, message, async () => {
      const next = await api('POST', `/api/executions/${encodeURIComponent(id)}/rerun`);
      location.hash = `#/executions/${next.id}`;
    }),
  }, 'Re-run');
  const remove = FINAL.has(execution.status) && h('button', {
    type: 'button', class: 'danger', 'data-testid': 'delete-execution',
    onclick: () => confirm(`Delete execution ${id} and its jobs?`) && act(remove, message, async () => {
      await api('DELETE', `/api/executions/${encodeURIComponent(id)}`);
      location.hash = `#/executions?workflow=${encodeURIComponent(execution.workflow)}`;
    }),
  }, 'Delete');
  const cancel = !FINAL.has(execution.status) && h('button', {
    type: 'button', class: 'danger', 'data-testid': 'cancel',
    onclick: () => act(cancel, message, async () => {
      await api('POST', `/api/executions/${encodeURIComponent(id)}/cancel`);
      route();
    }),
  }, 'Cancel');

  // An unfinished execution refreshes itself while it is shown.
  if (!FINAL.has(execution.status)) {
    setTimeout(() => current(render) && route(), 1000);
  }

  return h('div', {},
    h('h1', {}, 'Execution ', h('code', { 'data-testid': 'execution-id' }, execution.id), ' ', badge(execution.status, 'execution-status')),
    h('p', {},
      'Workflow ', h('a', { href: `#/workflows/${encodeURIComponent(execution.workflow)}`, 'data-testid': 'execution-workflow' }, execution.workflow),
      ` v${execution.version} · created ${time(execution.createdAt)} · finished ${time(execution.finishedAt)} · ${duration(execution.createdAt, execution.finishedAt)}`),
    attemptsLine(execution),
    h('div', { class: 'actions' }, rerun, cancel, remove), message,
    execution.error && h('p', { class: 'error-text', 'data-testid': 'execution-error' }, execution.error),
    section('Trigger data', pre(execution.trigger, 'execution-trigger')),
    section('Jobs along the nodes',
      nodes ?? h('p', { class: 'muted' }, `Version ${execution.version} of the workflow is gone; the jobs as they ran:`),
      others.length > 0 && h('div', {}, nodes && h('h3', {}, 'Jobs of nodes not in this version'), others.map(jobDetail))));
}

/** Attempts, a waiting retry, a dead letter, a rerun or a failure hook's origin, when any. */
function attemptsLine(execution) {
  const parts = [];
  if (execution.attempt > 1 || execution.deadLetter) parts.push(`attempt ${execution.attempt}`);
  if (execution.retryAt) parts.push(`next attempt ${time(execution.retryAt)}`);
  if (execution.deadLetter) parts.push('a dead letter: no attempt left');
  const links = [];
  if (execution.rerunAs) links.push(' · re-run as ', h('a', { href: `#/executions/${execution.rerunAs}`, 'data-testid': 'rerun-as' }, h('code', {}, execution.rerunAs)));
  if (execution.failureOf) links.push(' · failure hook of ', h('a', { href: `#/executions/${execution.failureOf}` }, h('code', {}, execution.failureOf)));
  if (parts.length === 0 && links.length === 0) return null;
  return h('p', { 'data-testid': 'execution-attempts' }, parts.join(' · '), ...links);
}

/** One job: status, duration, and its resolved input, output and error. */
function jobDetail(job) {
  return h('div', { class: 'job', 'data-testid': `job-${job.nodeKey}` },
    h('div', {}, badge(job.status, 'job-status'), ' ', duration(job.startedAt, job.finishedAt),
      job.next && typeof job.next === 'object' && job.next.branch && h('span', { class: 'muted' }, ` → ${job.next.branch}`),
      job.next === 'end' && h('span', { class: 'muted' }, ' → end')),
    job.error && h('div', { class: 'error-text', 'data-testid': 'job-error' }, job.error),
    h('details', {}, h('summary', {}, 'Input (resolved)'), pre(job.input, 'job-input')),
    h('details', {}, h('summary', {}, 'Output'), pre(job.output, 'job-output')));
}

// ---------------------------------------------------------------- dashboard

/** Every workflow's activity, and the newest refusals. */
async function dashboardPage() {
  const refusals = await api('GET', '/api/refusals?limit=5');
  return h('div', {},
    h('h1', {}, 'Dashboard'),
    activityPanel(null, { title: 'All workflows', testid: 'dashboard' }),
    section('Newest refusals', refusalsTable(refusals.items, 'dashboard-refusals'),
      h('a', { href: '#/refusals' }, 'All refusals →')));
}

// ---------------------------------------------------------------- refusals

/** The refusal log, newest first, filtered by workflow and code. */
async function refusalsPage(params) {
  const filters = new URLSearchParams();
  for (const name of ['workflow', 'code', 'cursor']) {
    if (params.get(name)) filters.set(name, params.get(name));
  }
  filters.set('limit', '50');
  const [page, workflows] = await Promise.all([api('GET', `/api/refusals?${filters}`), listAll('/api/workflows')]);
  const workflow = workflowSelect(workflows, params.get('workflow'), 'refusals-workflow');
  const code = h('input', { name: 'code', value: params.get('code') ?? '', placeholder: 'invalid_signature', 'data-testid': 'refusals-code' });
  const form = h('form', {
    class: 'filters',
    onsubmit: (event) => {
      event.preventDefault();
      const next = new URLSearchParams();
      if (workflow.value) next.set('workflow', workflow.value);
      if (code.value.trim()) next.set('code', code.value.trim());
      location.hash = `#/refusals?${next}`;
    },
  }, fieldRow('Workflow', workflow), fieldRow('Code', code),
  h('button', { class: 'primary', 'data-testid': 'refusals-apply' }, 'Filter'),
  h('button', { type: 'button', onclick: () => route() }, 'Refresh'));
  const older = new URLSearchParams(params);
  older.set('cursor', page.nextCursor ?? '');
  return h('div', {},
    h('h1', {}, 'Refusals'),
    h('p', { class: 'muted' }, 'Trigger requests the engine refused, with why: a sender whose signing secret changed shows up here first.'),
    form,
    refusalsTable(page.items, 'refusals'),
    page.nextCursor && h('p', { class: 'actions' }, h('a', { href: `#/refusals?${older}` }, 'Older →')));
}

/** The newest refusals of one workflow, on its page. */
function refusalsPanel(key) {
  const list = h('div', { 'data-testid': 'workflow-refusals' }, h('p', { class: 'muted' }, 'Loading…'));
  api('GET', `/api/refusals?workflow=${encodeURIComponent(key)}&limit=10`).then((page) => {
    fill(list, refusalsTable(page.items, 'workflow-refusals-table'),
      page.items.length > 0 && h('a', { href: `#/refusals?workflow=${encodeURIComponent(key)}` }, 'All refusals →'));
  }, (error) => list.replaceChildren(errorBox(error)));
  return section('Refused requests', list);
}

function refusalsTable(items, testid) {
  if (items.length === 0) return h('p', { class: 'muted', 'data-testid': `${testid}-none` }, 'No refused requests.');
  return h('table', { 'data-testid': testid },
    h('thead', {}, h('tr', {}, ['Time', 'Workflow', 'Answer', 'Client', 'Reason', 'Headers'].map((c) => h('th', {}, c)))),
    h('tbody', {}, items.map((refusal) => h('tr', { 'data-testid': `refusal-${refusal.id}` },
      h('td', {}, time(refusal.time)),
      h('td', {}, h('a', { href: `#/workflows/${encodeURIComponent(refusal.workflow)}` }, refusal.workflow)),
      h('td', {}, `${refusal.status} `, h('code', { 'data-testid': 'refusal-code' }, refusal.code)),
      h('td', {}, refusal.client),
      h('td', { 'data-testid': 'refusal-reason' }, refusal.reason),
      h('td', {}, Object.keys(refusal.headers).length ? pre(refusal.headers) : '—')))));
}

// ---------------------------------------------------------------- plugins

async function pluginsPage() {
  const plugins = await listAll('/api/plugins');
  const message = messageSlot('plugin-message');

  const name = h('input', { placeholder: 'node type name', required: true, pattern: '[a-z][a-z0-9_\\-]{0,63}', title: '1 to 64 of a-z 0-9 _ -, starting with a letter', 'data-testid': 'plugin-name' });
  const file = h('input', {
    type: 'file', accept: '.wasm,application/wasm', required: true, 'data-testid': 'plugin-file',
    onchange: () => { if (!name.value && file.files[0]) name.value = file.files[0].name.replace(/\.wasm$/, '').toLowerCase(); },
  });
  const upload = h('button', { class: 'primary', 'data-testid': 'plugin-upload' }, 'Upload');
  const form = h('form', {
    class: 'filters',
    onsubmit: (event) => {
      event.preventDefault();
      act(upload, message, async () => {
        const plugin = await api('PUT', `/api/plugins/${encodeURIComponent(name.value)}`, file.files[0]);
        const page = await pluginsPage();
        page.querySelector('[data-testid="plugin-message"]').ok(`Installed ${plugin.name} ${plugin.version}.`);
        view.replaceChildren(page);
      });
    },
  }, fieldRow('Name', name), fieldRow('Component (.wasm)', file), upload);

  return h('div', {},
    h('h1', {}, 'Plugins'),
    section('Upload a node component',
      h('p', { class: 'muted' }, 'A WebAssembly component of the hookflow:node world; it is checked before it is installed. The same name replaces an uploaded one.'),
      form, message),
    h('div', { 'data-testid': 'plugins' }, plugins.map((plugin) => pluginCard(plugin, message))));
}

function pluginCard(plugin, message) {
  const remove = !plugin.builtin && h('button', {
    type: 'button', class: 'danger', 'data-testid': `delete-plugin-${plugin.name}`,
    onclick: () => confirm(`Delete plugin ${plugin.name}?`) && act(remove, message, async () => {
      await api('DELETE', `/api/plugins/${encodeURIComponent(plugin.name)}`);
      route();
    }),
  }, 'Delete');
  return h('div', { class: 'panel', 'data-testid': `plugin-${plugin.name}` },
    h('h3', {}, h('code', {}, plugin.name), ' ', h('span', { class: 'muted' }, plugin.version), ' ',
      h('span', { class: 'badge' }, plugin.builtin ? 'built-in' : 'uploaded'), ' ', remove),
    h('p', { class: 'muted' },
      plugin.branches.length ? `Branches: ${plugin.branches.join(', ')}. ` : 'No branches. ',
      plugin.mayRespond ? 'May answer the caller. ' : '',
      'SHA-256 ', h('code', {}, plugin.digest.slice(0, 16)), '…'),
    h('details', {}, h('summary', {}, 'Config schema'), pre(plugin.configSchema)));
}
