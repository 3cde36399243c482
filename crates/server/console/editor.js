// The node editor: the workflow's tree with a place to insert a node before, between and after
// every node of every chain and branch, a palette of the installed node types, moves and
// removals, and a form for the selected node — dedicated ones for the built-ins, one generated
// from the config schema for any other type — whose templatable fields have a variable picker.
// Everything edits the definition object in place and calls `changed()`; faults of a refused
// save are shown on the node and the field they name.

import { api } from './api.js';
import { act, fieldRow, fill, h, messageSlot, pre, section } from './ui.js';

const CALCULATORS = [
  ['equal', '='], ['notEqual', '≠'], ['gt', '>'], ['gte', '≥'], ['lt', '<'], ['lte', '≤'],
  ['includes', 'includes'], ['notIncludes', 'does not include'], ['startsWith', 'starts with'],
  ['notStartsWith', 'does not start with'], ['endsWith', 'ends with'], ['notEndsWith', 'does not end with'],
  ['empty', 'is empty'], ['notEmpty', 'is not empty'], ['in', 'is in'], ['notIn', 'is not in'],
];
const ONE_OPERAND = new Set(['empty', 'notEmpty']);
const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS'];
const CONTENT_TYPES = ['application/json', 'application/x-www-form-urlencoded', 'text/plain'];

/** What a new node of a built-in type starts with. */
const STARTING_CONFIG = {
  condition: () => ({ rejectOnFalse: false, calculation: { group: { type: 'and', calculations: [] } } }),
  response: () => ({ statusCode: 200, body: { ok: true } }),
  'http-request': () => ({ method: 'POST', url: 'https://' }),
  set: () => ({ values: {} }),
  end: () => ({ status: 'resolved' }),
  delay: () => ({ duration: '30s' }),
  loop: () => ({ target: '{{$context.body.items}}' }),
  'json-query': () => ({ expression: '' }),
};

// ---------------------------------------------------------------- paths

/** `path.key` or `path["odd key"]`, as the engine writes template and fault paths. */
export function joinKey(path, key) {
  const plain = /^[\p{L}\p{N}_$-]+$/u.test(key);
  if (!plain) return `${path}[${JSON.stringify(key)}]`;
  return path ? `${path}.${key}` : key;
}

/** Every node with its JSON path and what runs before it: `{node, path, chain, index, before,
 *  loops}`, in tree order. `before` holds the nodes whose outputs it may read (earlier siblings of
 *  it and of each node it is nested in, and those nodes themselves), `loops` the loop nodes around
 *  it. */
export function nodePlaces(nodes) {
  const places = [];
  const walk = (chain, path, before, loops) => {
    chain.forEach((node, index) => {
      const here = `${path}[${index}]`;
      const earlier = [...before, ...chain.slice(0, index)];
      places.push({ node, path: here, chain, index, before: earlier, loops });
      for (const [name, branch] of Object.entries(node.branches ?? {})) {
        walk(branch, `${here}.branches.${name}`, [...earlier, node], node.type === 'loop' ? [...loops, node] : loops);
      }
    });
  };
  walk(nodes, 'nodes', [], []);
  return places;
}

/** A key no node of the workflow has yet: `<type>_<n>`. */
function freshKey(nodes, type) {
  const taken = new Set(nodePlaces(nodes).map((place) => place.node.key));
  const base = type.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 50) || 'node';
  for (let n = 1; ; n++) {
    if (!taken.has(`${base}_${n}`)) return `${base}_${n}`;
  }
}

/** The config a new node of `plugin`'s type starts with: the built-in's, else the defaults its
 *  schema declares. */
function startingConfig(plugin) {
  if (STARTING_CONFIG[plugin.name]) return STARTING_CONFIG[plugin.name]();
  const config = {};
  for (const [name, property] of Object.entries(plugin.configSchema?.properties ?? {})) {
    if (property.default !== undefined) config[name] = property.default;
  }
  return config;
}

// ---------------------------------------------------------------- variables

/** The variables a node's templates may read, in groups: `[{group, items: [{label, template}]}]`. */
export function variablesFor(definition, place, secrets) {
  const request = definition.trigger?.request ?? {};
  const trigger = [];
  for (const entry of request.headers ?? []) {
    trigger.push({ label: `Header: ${entry.alias || entry.key}`, template: `{{${joinKey('$context.headers', entry.key.toLowerCase())}}}` });
  }
  for (const entry of request.query ?? []) {
    trigger.push({ label: `Query: ${entry.alias || entry.key}`, template: `{{$context.query.${entry.key}}}` });
  }
  for (const entry of request.body ?? []) {
    trigger.push({ label: `Body: ${entry.alias || entry.key}`, template: `{{$context.body.${entry.key}}}` });
  }
  trigger.push({ label: 'The whole body', template: '{{$context.body}}' },
    { label: 'The whole query', template: '{{$context.query}}' });
  const nodes = [];
  for (const node of place?.before ?? []) {
    const output = `$jobsMapByNodeKey.${node.key}`;
    nodes.push({ label: `${node.title || node.key} (${node.type})`, template: `{{${output}}}` });
    for (const field of outputFields(node)) {
      nodes.push({ label: `${node.title || node.key} → ${field}`, template: `{{${joinKey(output, field)}}}` });
    }
  }
  const loops = (place?.loops ?? []).flatMap((loop) => ['item', 'index', 'length'].map((field) => (
    { label: `${loop.title || loop.key}: ${field}`, template: `{{$scopes.${loop.key}.${field}}}` })));
  const groups = [
    { group: 'Trigger', items: trigger },
    { group: 'Earlier nodes', items: nodes },
    { group: 'Loop', items: loops },
    { group: 'System', items: [{ label: 'Now', template: '{{$system.now}}' }, { label: 'Execution id', template: '{{$execution.id}}' }] },
    { group: 'Secrets', items: secrets.map((name) => ({ label: name, template: `{{$secrets.${name}}}` })) },
  ];
  return groups.filter((group) => group.items.length > 0);
}

/** The fields a built-in node's output is known to have. */
function outputFields(node) {
  switch (node.type) {
    case 'condition': return ['result'];
    case 'http-request': return node.config?.onlyData ? [] : ['status', 'data', 'headers'];
    case 'set': return Object.keys(node.config?.values ?? {});
    case 'loop': return ['items'];
    default: return [];
  }
}

/** A select that inserts the chosen variable's template into `field` at its cursor. */
function variablePicker(field, variables, changed) {
  const picker = h('select', {
    class: 'picker', title: 'Insert a variable', 'data-testid': 'var-picker',
    onchange: () => {
      if (!picker.value) return;
      const at = field.selectionStart ?? field.value.length;
      const end = field.selectionEnd ?? at;
      field.value = `${field.value.slice(0, at)}${picker.value}${field.value.slice(end)}`;
      field.setSelectionRange?.(at + picker.value.length, at + picker.value.length);
      picker.value = '';
      field.dispatchEvent(new Event('input'));
      changed?.();
    },
  }, h('option', { value: '' }, '{x} variable…'),
  variables.map((group) => h('optgroup', { label: group.group },
    group.items.map((item) => h('option', { value: item.template }, item.label)))));
  return picker;
}

// ---------------------------------------------------------------- fields

/** Builds the fields of one node's form; each field knows its JSON path (for faults) and the
 *  variables its templates may use. */
class Fields {
  constructor(path, variables, changed) {
    this.path = path;
    this.variables = variables;
    this.changed = changed;
  }

  /** A labelled field at `sub` (below the node's path) around `control`. */
  field(label, sub, control, help) {
    return h('div', { class: 'form-field', 'data-path': `${this.path}.${sub}` },
      fieldRow(label, control), help && h('p', { class: 'help' }, help),
      h('p', { class: 'field-fault error-text', hidden: true }));
  }

  /** A text input (with a variable picker) for `object[name]`. */
  text(label, object, name, { sub = `config.${name}`, help, templated = true, testid = name, placeholder } = {}) {
    const input = h('input', {
      value: object[name] ?? '', placeholder, 'data-testid': `field-${testid}`,
      oninput: () => { object[name] = input.value; this.changed(); },
    });
    const control = templated ? h('span', { class: 'with-picker' }, input, variablePicker(input, this.variables)) : input;
    return this.field(label, sub, control, help);
  }

  /** A number input for `object[name]` (empty removes it). */
  number(label, object, name, { sub = `config.${name}`, help, testid = name } = {}) {
    const input = h('input', {
      type: 'number', value: object[name] ?? '', 'data-testid': `field-${testid}`,
      oninput: () => {
        if (input.value === '') delete object[name];
        else object[name] = Number(input.value);
        this.changed();
      },
    });
    return this.field(label, sub, input, help);
  }

  /** A checkbox for `object[name]`. */
  check(label, object, name, { sub = `config.${name}`, help, testid = name } = {}) {
    const input = h('input', {
      type: 'checkbox', checked: Boolean(object[name]), 'data-testid': `field-${testid}`,
      onchange: () => { object[name] = input.checked; this.changed(); },
    });
    return h('div', { class: 'form-field', 'data-path': `${this.path}.${sub}` },
      h('label', { class: 'check' }, input, ' ', label), help && h('p', { class: 'help' }, help),
      h('p', { class: 'field-fault error-text', hidden: true }));
  }

  /** A select of `options` (`[value, label]` or values) for `object[name]`. */
  choice(label, object, name, options, { sub = `config.${name}`, help, testid = name } = {}) {
    const select = h('select', {
      'data-testid': `field-${testid}`,
      onchange: () => { object[name] = select.value; this.changed(); },
    }, options.map((option) => {
      const [value, text] = Array.isArray(option) ? option : [option, option];
      return h('option', { value, selected: object[name] === value }, text);
    }));
    return this.field(label, sub, select, help);
  }

  /** Any JSON for `object[name]`, written as JSON or, with `text`, as plain text (a string). */
  json(label, object, name, { sub = `config.${name}`, help, testid = name, textAllowed = true } = {}) {
    const value = object[name];
    const asText = textAllowed && typeof value === 'string';
    const kind = h('select', { 'data-testid': `field-${testid}-kind`, onchange: () => apply() },
      textAllowed && h('option', { value: 'text', selected: asText }, 'text'),
      h('option', { value: 'json', selected: !asText }, 'JSON'));
    const area = h('textarea', {
      rows: 4, spellcheck: false, 'data-testid': `field-${testid}`,
      value: value === undefined ? '' : asText ? value : JSON.stringify(value, null, 2),
      oninput: () => apply(),
    });
    const problem = h('span', { class: 'error-text' });
    const apply = () => {
      problem.textContent = '';
      if (kind.value === 'text') object[name] = area.value;
      else if (area.value.trim() === '') delete object[name];
      else {
        try {
          object[name] = JSON.parse(area.value);
        } catch (error) {
          problem.textContent = `not JSON yet: ${error.message}`;
          return;
        }
      }
      this.changed();
    };
    return this.field(label, sub, h('div', { class: 'stack' },
      h('div', { class: 'inline' }, kind, variablePicker(area, this.variables), problem), area), help);
  }

  /** `[{name, value}]` rows for `object[name]` (headers, params). */
  pairs(label, object, name, { sub = `config.${name}`, testid = name } = {}) {
    object[name] ??= [];
    const rows = h('tbody', {});
    const draw = () => rows.replaceChildren(...object[name].map((pair, index) => {
      const key = h('input', { value: pair.name ?? '', 'aria-label': 'name', oninput: () => { pair.name = key.value; this.changed(); } });
      const value = h('input', { value: typeof pair.value === 'string' ? pair.value : JSON.stringify(pair.value ?? ''), 'aria-label': 'value', oninput: () => { pair.value = value.value; this.changed(); } });
      return h('tr', { 'data-path': `${this.path}.${sub}[${index}]` },
        h('td', {}, key), h('td', {}, h('span', { class: 'with-picker' }, value, variablePicker(value, this.variables))),
        h('td', {}, h('button', { type: 'button', class: 'link', onclick: () => { object[name].splice(index, 1); draw(); this.changed(); } }, 'Remove')));
    }));
    draw();
    return this.field(label, sub, h('div', { 'data-testid': `field-${testid}` },
      h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'Name'), h('th', {}, 'Value'), h('th', {}))), rows),
      h('button', { type: 'button', 'data-testid': `add-${testid}`, onclick: () => { object[name].push({ name: '', value: '' }); draw(); this.changed(); } }, '+ Add')));
  }
}

// ---------------------------------------------------------------- node forms

/** The form of a node of `node.type`. */
function configForm(node, plugin, fields, sync) {
  node.config ??= {};
  const config = node.config;
  switch (node.type) {
    case 'condition': return conditionForm(config, fields);
    case 'response': return [
      fields.number('Status code', config, 'statusCode', { help: '100 to 599; default 200' }),
      fields.pairs('Headers', config, 'headers'),
      fields.json('Body', config, 'body', { help: 'Text is sent as text/plain, JSON as application/json (unless a Content-Type header says otherwise).' }),
      sync ? fields.check('Answer, then go on with the next node', config, 'continue') : null,
    ];
    case 'http-request': return [
      fields.choice('Method', config, 'method', METHODS),
      fields.text('URL', config, 'url', { placeholder: 'https://api.example.com/orders' }),
      fields.pairs('Query parameters', config, 'params'),
      fields.pairs('Headers', config, 'headers'),
      fields.choice('Content type', config, 'contentType', CONTENT_TYPES),
      fields.json('Data', config, 'data', { help: 'The request body; none for GET or HEAD.' }),
      fields.number('Timeout (ms)', config, 'timeout', { help: 'For the whole call; default 5000.' }),
      fields.check('Output only the response body', config, 'onlyData'),
      fields.check('Go on when the call fails or answers outside 2xx', config, 'ignoreFail'),
    ];
    case 'set': return setForm(config, fields);
    case 'end': return [fields.choice('End the execution as', config, 'status', [['resolved', 'resolved (success)'], ['failed', 'failed']])];
    case 'delay': return [fields.text('Wait', config, 'duration', { templated: false, help: 'A number with a unit: 500ms, 30s, 5m, 2h, 1d (at most 366 days).' })];
    case 'loop': return [fields.text('Loop over', config, 'target', { help: 'An array runs the body once per item; a number n runs it n times.' })];
    case 'json-query': return [
      fields.text('JMESPath expression', config, 'expression', { templated: false, placeholder: 'items[?qty > `1`].sku' }),
      fields.text('Source', config, 'source', { help: 'Default: the whole context.' }),
    ];
    default: return schemaForm(config, plugin?.configSchema ?? {}, fields);
  }
}

/** NocoBase's basic calculation: "fail when false" or branch, and a group of conditions. */
function conditionForm(config, fields) {
  config.calculation ??= { group: { type: 'and', calculations: [] } };
  config.calculation.group ??= { type: 'and', calculations: [] };
  return [
    fields.check('Fail the execution when false (otherwise take branch "true" or "false")', config, 'rejectOnFalse'),
    h('div', { class: 'form-field', 'data-path': `${fields.path}.config.calculation` },
      h('span', { class: 'label' }, 'Calculation'),
      groupEditor(config.calculation.group, fields, 'config.calculation.group', 'group'),
      h('p', { class: 'field-fault error-text', hidden: true })),
  ];
}

/** One and/or group of conditions and nested groups. */
function groupEditor(group, fields, sub, testid) {
  group.type ??= 'and';
  group.calculations ??= [];
  const box = h('div', { class: 'group', 'data-testid': testid, 'data-path': `${fields.path}.${sub}` });
  const draw = () => {
    const type = h('select', { 'data-testid': `${testid}-type`, onchange: () => { group.type = type.value; fields.changed(); } },
      h('option', { value: 'and', selected: group.type === 'and' }, 'all of (and)'),
      h('option', { value: 'or', selected: group.type === 'or' }, 'any of (or)'));
    const items = group.calculations.map((item, index) => {
      const here = `${sub}.calculations[${index}]`;
      const remove = h('button', { type: 'button', class: 'link', 'data-testid': `${testid}-remove-${index}`, onclick: () => { group.calculations.splice(index, 1); draw(); fields.changed(); } }, 'Remove');
      if (item.group) {
        return h('div', { class: 'group-item' }, groupEditor(item.group, fields, `${here}.group`, `${testid}-${index}`), remove);
      }
      item.operands ??= ['', ''];
      const operand = (position) => {
        const input = h('input', {
          value: item.operands[position] ?? '', 'data-testid': `${testid}-${index}-operand-${position}`,
          oninput: () => { item.operands[position] = input.value; fields.changed(); },
        });
        return h('span', { class: 'with-picker', 'data-path': `${fields.path}.${here}.operands[${position}]` }, input, variablePicker(input, fields.variables));
      };
      const calculator = h('select', {
        'data-testid': `${testid}-${index}-calculator`,
        onchange: () => {
          item.calculator = calculator.value;
          if (ONE_OPERAND.has(item.calculator)) item.operands.length = 1;
          draw();
          fields.changed();
        },
      }, CALCULATORS.map(([name, label]) => h('option', { value: name, selected: item.calculator === name }, label)));
      return h('div', { class: 'calculation', 'data-testid': `${testid}-${index}`, 'data-path': `${fields.path}.${here}` },
        operand(0), calculator, !ONE_OPERAND.has(item.calculator) && operand(1), remove);
    });
    box.replaceChildren(
      h('div', { class: 'inline' }, 'Holds when ', type),
      ...items,
      h('div', { class: 'actions' },
        h('button', { type: 'button', 'data-testid': `${testid}-add`, onclick: () => { group.calculations.push({ calculator: 'equal', operands: ['', ''] }); draw(); fields.changed(); } }, '+ Condition'),
        h('button', { type: 'button', 'data-testid': `${testid}-add-group`, onclick: () => { group.calculations.push({ group: { type: 'and', calculations: [] } }); draw(); fields.changed(); } }, '+ Group')));
  };
  draw();
  return box;
}

/** `set`'s values: a name and a value (a template, or JSON) each. */
function setForm(config, fields) {
  config.values ??= {};
  const rows = h('div', { 'data-testid': 'field-values' });
  const draw = () => rows.replaceChildren(...Object.entries(config.values).map(([name, value], index) => {
    const key = h('input', {
      value: name, 'aria-label': 'name', 'data-testid': `value-name-${index}`,
      onchange: () => {
        const entries = Object.entries(config.values);
        entries[index][0] = key.value;
        config.values = Object.fromEntries(entries);
        fields.changed();
      },
    });
    const input = h('input', {
      value: typeof value === 'string' ? value : JSON.stringify(value), 'aria-label': 'value', 'data-testid': `value-${index}`,
      oninput: () => { config.values[key.value] = input.value; fields.changed(); },
    });
    return h('div', { class: 'inline', 'data-path': `${fields.path}.config.values.${name}` }, key, ' = ',
      h('span', { class: 'with-picker' }, input, variablePicker(input, fields.variables)),
      h('button', { type: 'button', class: 'link', onclick: () => { delete config.values[key.value]; draw(); fields.changed(); } }, 'Remove'));
  }));
  draw();
  return [fields.field('Values (the output object)', 'config.values', h('div', {}, rows,
    h('button', { type: 'button', 'data-testid': 'add-value', onclick: () => {
      let n = Object.keys(config.values).length + 1;
      while (`value${n}` in config.values) n++;
      config.values[`value${n}`] = '';
      draw();
      fields.changed();
    } }, '+ Value')))];
}

/** A form from a config JSON Schema: a field per property, by its type. */
function schemaForm(config, schema, fields) {
  const properties = Object.entries(schema.properties ?? {});
  if (properties.length === 0) return [fields.json('Config', node0(config), 'config', { sub: 'config', textAllowed: false })];
  return properties.map(([name, property]) => {
    const label = property.title ?? name;
    const options = { help: property.description };
    if (property.enum) return fields.choice(label, config, name, property.enum.map(String), options);
    switch (property.type) {
      case 'string': return fields.text(label, config, name, options);
      case 'integer': case 'number': return fields.number(label, config, name, options);
      case 'boolean': return fields.check(label, config, name, options);
      case 'array':
        if (property.items?.properties?.name && property.items?.properties?.value) return fields.pairs(label, config, name);
        return fields.json(label, config, name, { ...options, textAllowed: false });
      default: return fields.json(label, config, name, options);
    }
  });
}

/** A holder whose `config` is the node's config, so the whole config can be one JSON field. */
function node0(config) {
  const holder = {};
  Object.defineProperty(holder, 'config', {
    get: () => config,
    set: (value) => {
      for (const key of Object.keys(config)) delete config[key];
      Object.assign(config, value ?? {});
    },
  });
  return holder;
}

// ---------------------------------------------------------------- the editor

/** The Nodes panel: the editable tree, the palette and the selected node's form.
 *  `context`: `{definition, plugins, secrets, sync, changed, sample}`, where `sample()` gives the
 *  trigger and outputs a node test runs on, and `workflowKey` names the stored workflow. */
export function nodeEditor(context) {
  const { definition, plugins } = context;
  definition.nodes ??= [];
  const byName = new Map(plugins.map((plugin) => [plugin.name, plugin]));
  const treeSlot = h('div', { 'data-testid': 'node-editor' });
  const formSlot = h('div', { 'data-testid': 'node-form-slot' });
  const palette = h('dialog', { class: 'palette', 'data-testid': 'palette' });
  let selected = null;
  let moving = null;
  let faults = [];

  const changed = () => {
    context.changed();
    drawTree();
  };

  function insert(chain, index, plugin) {
    const node = { key: freshKey(definition.nodes, plugin.name), type: plugin.name, config: startingConfig(plugin) };
    if (plugin.branches.length > 0) node.branches = Object.fromEntries(plugin.branches.map((name) => [name, []]));
    chain.splice(index, 0, node);
    selected = node;
    changed();
    drawForm();
  }

  function openPalette(chain, index) {
    palette.replaceChildren(
      h('h2', {}, 'Add a node'),
      h('div', { class: 'palette-list' }, plugins.map((plugin) => h('button', {
        type: 'button', class: 'palette-item', 'data-testid': `palette-${plugin.name}`,
        onclick: () => { palette.close(); insert(chain, index, plugin); },
      }, h('strong', {}, plugin.name), plugin.builtin ? '' : h('span', { class: 'muted' }, ' (uploaded)'),
      h('span', { class: 'muted' }, plugin.configSchema?.description ?? plugin.configSchema?.title ?? ''),
      plugin.branches.length > 0 && h('span', { class: 'muted' }, `Branches: ${plugin.branches.join(', ')}`)))),
      h('div', { class: 'actions' }, h('button', { type: 'button', 'data-testid': 'palette-cancel', onclick: () => palette.close() }, 'Cancel')));
    palette.showModal();
  }

  /** The place before `index` of `chain`: a "+" that opens the palette, or (while a node is
   *  being moved) a "move here". */
  function gap(chain, index, path) {
    const testid = `insert-${path}-${index}`;
    if (moving) {
      const own = moving.chain === chain && (index === moving.index || index === moving.index + 1);
      return h('li', { class: 'gap' }, !own && h('button', {
        type: 'button', class: 'link move-here', 'data-testid': `move-here-${path}-${index}`,
        onclick: () => {
          const [node] = moving.chain.splice(moving.index, 1);
          const shift = moving.chain === chain && moving.index < index ? 1 : 0;
          chain.splice(index - shift, 0, node);
          moving = null;
          changed();
        },
      }, '⇢ move here'));
    }
    return h('li', { class: 'gap' }, h('button', { type: 'button', class: 'insert', title: 'Add a node here', 'data-testid': testid, onclick: () => openPalette(chain, index) }, '+'));
  }

  function drawChain(chain, path) {
    const items = [gap(chain, 0, path)];
    chain.forEach((node, index) => {
      const here = `${path}[${index}]`;
      const nodeFaults = faults.filter((fault) => fault.node === node);
      const box = h('div', {
        class: `box editable${node === selected ? ' selected' : ''}${nodeFaults.length ? ' has-fault' : ''}`,
        'data-testid': `node-${node.key}`,
      },
      h('div', { class: 'node-head' },
        h('button', { type: 'button', class: 'link', 'data-testid': `edit-${node.key}`, onclick: () => { selected = node; drawTree(); drawForm(); } }, h('code', {}, node.key)),
        ' ', h('span', { class: 'type' }, node.type)),
      node.title && h('div', { class: 'muted' }, node.title),
      nodeFaults.length > 0 && h('div', { class: 'error-text', 'data-testid': `node-fault-${node.key}` }, nodeFaults.map((fault) => fault.message).join('; ')),
      h('div', { class: 'node-actions' },
        h('button', { type: 'button', class: 'link', title: 'Move up', disabled: index === 0, 'data-testid': `up-${node.key}`, onclick: () => { chain.splice(index - 1, 0, ...chain.splice(index, 1)); changed(); } }, '↑'),
        h('button', { type: 'button', class: 'link', title: 'Move down', disabled: index === chain.length - 1, 'data-testid': `down-${node.key}`, onclick: () => { chain.splice(index + 1, 0, ...chain.splice(index, 1)); changed(); } }, '↓'),
        h('button', { type: 'button', class: 'link', title: 'Move elsewhere', 'data-testid': `move-${node.key}`, onclick: () => { moving = moving?.node === node ? null : { node, chain, index }; drawTree(); } }, moving?.node === node ? 'cancel move' : 'move'),
        h('button', {
          type: 'button', class: 'link danger', title: 'Remove', 'data-testid': `remove-${node.key}`,
          onclick: () => {
            const nested = Object.values(node.branches ?? {}).reduce((sum, branch) => sum + branch.length, 0);
            if (nested > 0 && !confirm(`Remove ${node.key} and the ${nested} node(s) in its branches?`)) return;
            chain.splice(index, 1);
            if (selected === node) { selected = null; drawForm(); }
            changed();
          },
        }, 'remove')));
      items.push(h('li', { class: 'node' }, box,
        Object.keys(node.branches ?? {}).length > 0 && h('div', { class: 'branches' },
          Object.entries(node.branches).map(([name, branch]) => h('div', { class: 'branch', 'data-testid': `branch-${node.key}-${name}` },
            h('div', { class: 'branch-name' }, name),
            drawChain(branch, `${here}.branches.${name}`))))));
      items.push(gap(chain, index + 1, path));
    });
    return h('ol', { class: 'chain editing' }, items);
  }

  function drawTree() {
    fill(treeSlot,
      definition.nodes.length === 0 && h('p', { class: 'muted', 'data-testid': 'no-nodes' }, 'No nodes yet: press + to add the first.'),
      moving && h('p', { class: 'muted' }, `Moving ${moving.node.key}: choose where it goes.`),
      drawChain(definition.nodes, 'nodes'));
  }

  function drawForm() {
    const place = selected && nodePlaces(definition.nodes).find((candidate) => candidate.node === selected);
    if (!place) {
      formSlot.replaceChildren();
      return;
    }
    const node = place.node;
    const variables = variablesFor(definition, place, context.secrets);
    const fields = new Fields(place.path, variables, () => context.changed());
    const key = h('input', {
      value: node.key, 'data-testid': 'node-key',
      onchange: () => { node.key = key.value.trim(); changed(); drawForm(); },
    });
    const title = h('input', { value: node.title ?? '', 'data-testid': 'node-title', oninput: () => { if (title.value) node.title = title.value; else delete node.title; changed(); } });
    const form = h('div', { class: 'node-form', 'data-testid': 'node-form' },
      h('h3', {}, 'Node ', h('code', {}, node.key), ' ', h('span', { class: 'type' }, node.type)),
      h('div', { class: 'columns' },
        fields.field('Key', 'key', key, 'Names its output: {{$jobsMapByNodeKey.<key>}}.'),
        fields.field('Title', 'title', title)),
      configForm(node, byName.get(node.type), fields, context.sync),
      nodeTest(context, node, place),
      h('div', { class: 'actions' }, h('button', { type: 'button', 'data-testid': 'node-done', onclick: () => { selected = null; drawTree(); drawForm(); } }, 'Done')));
    formSlot.replaceChildren(form);
    markFaults(form, faults);
  }

  palette.addEventListener('close', () => palette.replaceChildren());
  drawTree();
  const panel = section('Nodes',
    h('p', { class: 'muted' }, 'Press + to add a node there; select a node to configure it. Changes are saved with “Save workflow”.'),
    treeSlot, formSlot, palette);
  /** Shows the faults of a refused save on their nodes and fields, selecting the first faulty node. */
  panel.showFaults = (refused) => {
    const places = nodePlaces(definition.nodes);
    const within = (path, place) => path === place.path || path.startsWith(`${place.path}.`) || path.startsWith(`${place.path}[`);
    // Each fault belongs to the deepest node whose path holds it.
    faults = refused.filter((fault) => fault.path.startsWith('nodes')).map((fault) => {
      const owner = places.filter((place) => within(fault.path, place)).sort((a, b) => b.path.length - a.path.length)[0];
      return { ...fault, node: owner?.node };
    });
    const first = faults.find((fault) => fault.node);
    if (first) selected = first.node;
    drawTree();
    drawForm();
  };
  return panel;
}

/** Shows each fault under the field whose path is the longest prefix of the fault's. */
function markFaults(form, faults) {
  const fields = [...form.querySelectorAll('[data-path]')];
  for (const fault of faults) {
    const owner = fields
      .filter((field) => fault.path === field.dataset.path || fault.path.startsWith(`${field.dataset.path}.`) || fault.path.startsWith(`${field.dataset.path}[`))
      .sort((a, b) => b.dataset.path.length - a.dataset.path.length)[0];
    if (!owner) continue;
    owner.classList.add('has-fault');
    const slot = owner.querySelector('.field-fault') ?? owner.closest('.form-field')?.querySelector('.field-fault');
    if (slot) {
      slot.hidden = false;
      slot.textContent = [slot.textContent, fault.message].filter(Boolean).join('; ');
      slot.dataset.testid = 'field-fault';
      slot.setAttribute('data-testid', 'field-fault');
    }
  }
}

// ---------------------------------------------------------------- test one node

/** "Test this node": the node as it stands in the form, on a sample (from the last test run,
 *  editable), showing its resolved config, output and directive. */
function nodeTest(context, node, place) {
  const sample = h('textarea', { rows: 6, spellcheck: false, 'data-testid': 'node-test-sample' });
  const result = h('div', { 'data-testid': 'node-test-result' });
  const message = messageSlot('node-test-message');
  const resetSample = () => {
    const { trigger, jobs } = context.sample();
    const earlier = Object.fromEntries(place.before.filter((before) => before.key in jobs).map((before) => [before.key, jobs[before.key]]));
    sample.value = JSON.stringify({ trigger, jobs: earlier }, null, 2);
  };
  resetSample();
  const run = h('button', {
    type: 'button', 'data-testid': 'node-test-run',
    onclick: () => act(run, message, async () => {
      message.show();
      let given;
      try {
        given = JSON.parse(sample.value || '{}');
      } catch (error) {
        throw new Error(`the sample is not JSON: ${error.message}`);
      }
      const trial = await api('POST', `/api/workflows/${encodeURIComponent(context.workflowKey)}/nodes/${encodeURIComponent(node.key)}/test`,
        { trigger: given.trigger ?? {}, jobs: given.jobs ?? {}, scopes: given.scopes ?? {}, type: node.type, config: node.config ?? {} });
      fill(result,
        h('p', {}, 'Status ', h('strong', { 'data-testid': 'node-test-status' }, trial.status),
          trial.directive && h('span', { class: 'muted', 'data-testid': 'node-test-directive' }, ` → ${describeDirective(trial.directive)}`)),
        trial.error && h('p', { class: 'error-text', 'data-testid': 'node-test-error' }, trial.error),
        h('details', { open: true }, h('summary', {}, 'Config (resolved)'), pre(trial.config, 'node-test-config')),
        h('details', { open: true }, h('summary', {}, 'Output'), pre(trial.output, 'node-test-output')));
    }),
  }, 'Test this node');
  return h('details', { class: 'node-test' },
    h('summary', { 'data-testid': 'node-test-open' }, 'Test this node on a sample'),
    h('p', { class: 'muted' }, 'The trigger and earlier outputs it reads (from the last test run when there is one):'),
    sample, h('div', { class: 'actions' }, run, h('button', { type: 'button', onclick: resetSample }, 'Reset sample')), message, result);
}

function describeDirective(directive) {
  switch (directive.type) {
    case 'branch': return `branch "${directive.branch}"`;
    case 'respond': return `answers ${directive.status}${directive.continue ? ' and goes on' : ''}`;
    case 'end': return `ends the execution ${directive.status}`;
    default: return 'next node';
  }
}

// ---------------------------------------------------------------- trigger and options settings

const MASK = '********';
const SIGNATURES = {
  'hmac-sha256': 'HMAC-SHA256 of the body in a header (GitHub, Shopify, Meta, X…)',
  'standard-webhooks': 'Standard Webhooks (and Svix: Clerk, Resend…)',
  stripe: 'Stripe',
  slack: 'Slack',
  zoom: 'Zoom',
  twilio: 'Twilio',
};
const HANDSHAKES = {
  slack: 'Slack url_verification', 'microsoft-graph': 'Microsoft Graph validationToken', meta: 'Meta / WhatsApp hub.challenge',
  zoom: 'Zoom endpoint.url_validation', x: 'X CRC', cloudevents: 'CloudEvents OPTIONS',
};
const HANDSHAKE_SECRETS = { meta: ['verifyToken', 'Verify token'], zoom: ['secretToken', 'Secret token'], x: ['consumerSecret', 'Consumer secret'] };
const FINAL_STATUSES = ['resolved', 'failed', 'error', 'aborted', 'canceled'];

/** Secrets as password inputs: a stored one shows as the mask, which saving keeps; anything typed
 *  replaces it. */
function secretList(fields, object, name, sub, testid) {
  object[name] ??= [];
  const rows = h('div', { 'data-testid': `field-${testid}` });
  const draw = () => rows.replaceChildren(...object[name].map((secret, index) => {
    const input = h('input', {
      type: 'password', value: secret === MASK ? '' : secret, placeholder: secret === MASK ? 'stored (unchanged)' : '',
      'aria-label': 'secret', 'data-testid': `${testid}-${index}`,
      oninput: () => { object[name][index] = input.value || (secret === MASK ? MASK : ''); fields.changed(); },
    });
    return h('div', { class: 'inline', 'data-path': `${fields.path}.${sub}[${index}]` }, input,
      h('button', { type: 'button', class: 'link', onclick: () => { object[name].splice(index, 1); draw(); fields.changed(); } }, 'Remove'));
  }));
  draw();
  return fields.field('Secrets (several while rotating)', sub, h('div', {}, rows,
    h('button', { type: 'button', 'data-testid': `add-${testid}`, onclick: () => { object[name].push(''); draw(); fields.changed(); } }, '+ Secret')));
}

/** A section that exists only when its checkbox is on: `make()` gives its starting value. */
function optional(fields, label, holder, name, make, form, testid) {
  const body = h('div', { class: 'subform' });
  const toggle = h('input', {
    type: 'checkbox', checked: holder[name] !== undefined, 'data-testid': `use-${testid}`,
    onchange: () => {
      if (toggle.checked) holder[name] = make();
      else delete holder[name];
      draw();
      fields.changed();
    },
  });
  const draw = () => fill(body, holder[name] !== undefined && form(holder[name]));
  draw();
  return h('div', { class: 'optional' }, h('label', { class: 'check' }, toggle, ' ', label), body);
}

/** The trigger's security and delivery settings and the workflow's options, as forms. */
export function settingsPanel(definition, changed, secrets) {
  definition.trigger ??= {};
  definition.options ??= {};
  const trigger = definition.trigger;
  const options = definition.options;
  const t = new Fields('trigger', [], changed);
  const o = new Fields('options', [], changed);

  const signature = optional(t, 'Requests are signed', trigger, 'signature', () => ({ type: 'hmac-sha256', header: 'X-Signature', secrets: [] }), (sig) => {
    const body = h('div', {});
    const draw = () => fill(body,
      t.choice('Scheme', sig, 'type', Object.entries(SIGNATURES), { sub: 'signature.type', testid: 'signature-type' }),
      sig.type === 'hmac-sha256' && [
        t.text('Header', sig, 'header', { sub: 'signature.header', templated: false, testid: 'signature-header' }),
        t.text('Prefix', sig, 'prefix', { sub: 'signature.prefix', templated: false, testid: 'signature-prefix', placeholder: 'sha256=' }),
        t.choice('Encoding', sig, 'encoding', ['hex', 'base64'], { sub: 'signature.encoding', testid: 'signature-encoding' }),
      ],
      ['standard-webhooks', 'stripe', 'slack', 'zoom'].includes(sig.type)
        && t.number('Tolerance (seconds)', sig, 'toleranceSeconds', { sub: 'signature.toleranceSeconds', testid: 'signature-tolerance', help: 'default 300' }),
      secretList(t, sig, 'secrets', 'signature.secrets', 'signature-secret'));
    body.addEventListener('change', (event) => {
      if (event.target.dataset.testid !== 'field-signature-type') return;
      for (const key of Object.keys(sig)) if (!['type', 'secrets'].includes(key)) delete sig[key];
      if (sig.type === 'hmac-sha256') sig.header = 'X-Signature';
      draw();
    });
    draw();
    return body;
  }, 'signature');

  const apiKey = optional(t, 'An API key (for senders that cannot sign)', trigger, 'apiKey', () => ({ header: 'X-Api-Key', keys: [] }), (key) => {
    const where = { in: key.query !== undefined ? 'query' : 'header', name: key.query ?? key.header ?? '' };
    const set = () => {
      delete key.header;
      delete key.query;
      key[where.in] = where.name;
      changed();
    };
    const place = h('select', { 'data-testid': 'field-api-key-in', onchange: () => { where.in = place.value; set(); } },
      h('option', { value: 'header', selected: where.in === 'header' }, 'in a header'),
      h('option', { value: 'query', selected: where.in === 'query' }, 'in the query'));
    const name = h('input', { value: where.name, 'data-testid': 'field-api-key-name', oninput: () => { where.name = name.value; set(); } });
    return [t.field('Sent', 'apiKey', h('div', { class: 'inline' }, place, name)), secretList(t, key, 'keys', 'apiKey.keys', 'api-key')];
  }, 'api-key');

  const allowlistText = h('textarea', {
    rows: 2, value: (trigger.ipAllowlist ?? []).join('\n'), placeholder: '203.0.113.0/24\n2001:db8::/32', 'data-testid': 'field-ip-allowlist',
    oninput: () => {
      const entries = allowlistText.value.split(/[\s,]+/).filter(Boolean);
      if (entries.length) trigger.ipAllowlist = entries;
      else delete trigger.ipAllowlist;
      changed();
    },
  });

  const handshake = optional(t, 'Answer a sender\'s endpoint check (handshake)', trigger, 'handshake', () => ({ type: 'slack' }), (shake) => {
    const body = h('div', {});
    const draw = () => {
      const secret = HANDSHAKE_SECRETS[shake.type];
      fill(body,
        t.choice('Sender', shake, 'type', Object.entries(HANDSHAKES), { sub: 'handshake.type', testid: 'handshake-type' }),
        secret && t.field(secret[1], `handshake.${secret[0]}`, h('input', {
          type: 'password', placeholder: shake[secret[0]] === MASK ? 'stored (unchanged)' : '', 'data-testid': 'field-handshake-secret',
          oninput: (event) => { shake[secret[0]] = event.target.value || MASK; changed(); },
        })));
    };
    body.addEventListener('change', (event) => {
      if (event.target.dataset.testid !== 'field-handshake-type') return;
      for (const key of Object.keys(shake)) if (key !== 'type') delete shake[key];
      const secret = HANDSHAKE_SECRETS[shake.type];
      if (secret) shake[secret[0]] = '';
      draw();
    });
    draw();
    return body;
  }, 'handshake');

  const idempotency = optional(t, 'Repeated deliveries start nothing (idempotency)', trigger, 'idempotency', () => ({ header: 'Idempotency-Key' }), (spec) => {
    const where = { in: spec.bodyPath !== undefined ? 'bodyPath' : 'header' };
    const name = h('input', {
      value: spec.bodyPath ?? spec.header ?? '', 'data-testid': 'field-idempotency-name',
      oninput: () => { delete spec.header; delete spec.bodyPath; spec[where.in] = name.value; changed(); },
    });
    const place = h('select', {
      'data-testid': 'field-idempotency-in',
      onchange: () => { where.in = place.value; delete spec.header; delete spec.bodyPath; spec[where.in] = name.value; changed(); },
    }, h('option', { value: 'header', selected: where.in === 'header' }, 'a header'),
    h('option', { value: 'bodyPath', selected: where.in === 'bodyPath' }, 'a body path'));
    return [t.field('The key is', 'idempotency', h('div', { class: 'inline' }, place, name)),
      t.number('Remembered for (seconds)', spec, 'ttlSeconds', { sub: 'idempotency.ttlSeconds', testid: 'idempotency-ttl', help: 'default 86400' })];
  }, 'idempotency');

  const retention = h('div', { class: 'inline', 'data-path': 'options.deleteExecutionOnStatus', 'data-testid': 'field-delete-on-status' },
    FINAL_STATUSES.map((status) => {
      const box = h('input', {
        type: 'checkbox', checked: (options.deleteExecutionOnStatus ?? []).includes(status),
        onchange: () => {
          const chosen = new Set(options.deleteExecutionOnStatus ?? []);
          if (box.checked) chosen.add(status);
          else chosen.delete(status);
          if (chosen.size) options.deleteExecutionOnStatus = FINAL_STATUSES.filter((s) => chosen.has(s));
          else delete options.deleteExecutionOnStatus;
          changed();
        },
      });
      return h('label', { class: 'check' }, box, ` ${status}`);
    }));

  const retry = optional(o, 'Retry failed executions', options, 'retry', () => ({ maxAttempts: 5, initialDelay: '10s', maxDelay: '1h' }), (spec) => [
    o.number('Attempts in all', spec, 'maxAttempts', { sub: 'retry.maxAttempts', testid: 'retry-attempts' }),
    o.text('First wait', spec, 'initialDelay', { sub: 'retry.initialDelay', templated: false, testid: 'retry-initial' }),
    o.text('Longest wait', spec, 'maxDelay', { sub: 'retry.maxDelay', templated: false, testid: 'retry-max' }),
  ], 'retry');
  const rateLimit = optional(o, 'Limit the request rate', options, 'rateLimit', () => ({ requests: 100, per: '1s' }), (spec) => [
    o.number('Requests', spec, 'requests', { sub: 'rateLimit.requests', testid: 'rate-requests' }),
    o.text('Per', spec, 'per', { sub: 'rateLimit.per', templated: false, testid: 'rate-per' }),
    o.number('Burst', spec, 'burst', { sub: 'rateLimit.burst', testid: 'rate-burst', help: 'default: as many as requests' }),
  ], 'rate-limit');
  const onFailure = o.text('On failure, start workflow', options, 'onFailure', { sub: 'onFailure', templated: false, testid: 'on-failure', help: 'The key of an async workflow; it gets the failed execution as its body.' });
  const limits = [
    ['maxJobs', 'Most jobs per execution'], ['maxRecordBytes', 'Most recorded bytes per execution'],
    ['maxRunTimeMs', 'Most node time per execution (ms)'], ['maxQueued', 'Most queued executions'],
    ['maxConcurrency', 'Most executions running at once'],
  ].map(([name, label]) => o.number(label, options, name, { sub: name, testid: name, help: 'empty: the server\'s default' }));

  return section('Settings',
    h('h3', {}, 'Who may call'),
    signature, apiKey,
    t.field('Only these client addresses (IPs or CIDR blocks; empty: any)', 'ipAllowlist', allowlistText),
    handshake,
    h('h3', {}, 'Delivery'),
    idempotency,
    definition.sync && t.number('Answer 202 after (ms), then go on', trigger, 'syncDeadlineMs', { sub: 'syncDeadlineMs', testid: 'sync-deadline' }),
    h('h3', {}, 'When executions fail'),
    !definition.sync && retry, onFailure,
    h('h3', {}, 'Limits and history'),
    rateLimit,
    o.field('Delete executions that end', 'deleteExecutionOnStatus', retention),
    h('details', {}, h('summary', {}, 'Per-execution limits'), limits),
    h('p', { class: 'muted' }, secrets.length ? `Secrets for templates: ${secrets.join(', ')} ({{$secrets.NAME}}).` : ''));
}
