// Elements and the small pieces every screen is built of: `h()` builds an element, and a few
// helpers make the panels, badges, times and error boxes the screens share.

// ---------------------------------------------------------------- elements

/** An element: `attrs` keys starting with `on` are listeners, known properties are set as
 *  properties (value, checked, disabled…), the rest as attributes (`false` leaves one out);
 *  children may nest, and null, undefined and false children are skipped. */
export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null) continue;
    if (name.startsWith('on')) element.addEventListener(name.slice(2), value);
    else if (name in element && name !== 'list' && name !== 'form') element[name] = value;
    else if (value !== false) element.setAttribute(name, value === true ? '' : value);
  }
  element.append(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
  return element;
}

/** Replaces `element`'s children with `children`, nested lists flattened and false, null and
 *  undefined left out (as `h()` takes them). */
export function fill(element, ...children) {
  element.replaceChildren(...children.flat(Infinity).filter((child) => child !== null && child !== undefined && child !== false));
}

export const section = (title, ...children) => h('section', { class: 'panel' }, h('h2', {}, title), ...children);
export const pre = (value, testid) => h('pre', { 'data-testid': testid }, typeof value === 'string' ? value : JSON.stringify(value, null, 2));
export const badge = (status, testid) => h('span', { class: `badge ${status}`, 'data-testid': testid }, status);
export const time = (instant) => (instant ? new Date(instant).toLocaleString() : '—');
export const fieldRow = (label, control) => h('label', { class: 'field' }, h('span', {}, label), control);

export function duration(start, end) {
  if (!start || !end) return '—';
  const ms = Date.parse(end) - Date.parse(start);
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(2)} s`;
}

/** An API error as the user should read it: code, message, and each fault at its JSON path. */
export function errorBox(error, onFault) {
  const faults = error.faults ?? [];
  return h('div', { class: 'error', role: 'alert', 'data-testid': 'error' },
    h('strong', {}, error.code ? `${error.code}: ` : ''), error.message,
    faults.length > 0 && h('ul', { class: 'faults', 'data-testid': 'faults' }, faults.map((fault) =>
      h('li', {},
        onFault ? h('button', { type: 'button', class: 'link path', onclick: () => onFault(fault.path) }, fault.path)
          : h('code', { class: 'path' }, fault.path),
        ' ', fault.message))));
}

/** A slot for a result or an error below a form. */
export function messageSlot(testid) {
  const slot = h('div', { class: 'message', 'data-testid': testid });
  slot.show = (content) => slot.replaceChildren(content ?? '');
  slot.ok = (text) => slot.show(h('p', { class: 'ok' }, text));
  slot.fail = (error, onFault) => slot.show(errorBox(error, onFault));
  return slot;
}

/** Runs an action from a button, disabling it meanwhile and reporting a failure in `slot`. */
export async function act(button, slot, action) {
  button.disabled = true;
  try {
    await action();
  } catch (error) {
    slot.fail(error);
  } finally {
    button.disabled = false;
  }
}
