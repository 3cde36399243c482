// The admin API as the console calls it: same origin, `Authorization: Bearer <token>` from this
// tab's session storage, asking for the token (the page's dialog) when a call is refused with 401.

const TOKEN_KEY = 'hookflow.adminToken';

// ---------------------------------------------------------------- the admin API

export class ApiError extends Error {
  constructor(status, error) {
    super(error.message ?? `HTTP ${status}`);
    this.status = status;
    this.code = error.code;
    this.faults = error.faults;
  }
}

async function errorOf(response) {
  const text = await response.text();
  try {
    return new ApiError(response.status, JSON.parse(text).error ?? {});
  } catch {
    return new ApiError(response.status, { message: text || response.statusText });
  }
}

/** Calls the admin API with `extraHeaders`. A refusal a token can cure (401) asks for the token
 *  and tries again; `403 admin_disabled` (no token is configured and the request is not the
 *  operator's own on loopback) cannot be. A file goes as a component, a string as it is, anything
 *  else as JSON. */
export async function api(method, path, body, extraHeaders = {}) {
  for (;;) {
    const headers = { ...extraHeaders };
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = `Bearer ${token}`;
    const binary = body instanceof Blob;
    if (binary) headers['Content-Type'] = 'application/wasm';
    else if (body !== undefined) headers['Content-Type'] = 'application/json';
    const payload = body === undefined || binary || typeof body === 'string' ? body : JSON.stringify(body);
    const response = await fetch(path, { method, headers, body: payload });
    if (response.status === 401) {
      const error = await errorOf(response);
      if (await askToken(error)) continue;
      throw error;
    }
    if (!response.ok) throw await errorOf(response);
    return response.status === 204 ? null : response.json();
  }
}

/** Every page of a listing. */
export async function listAll(path) {
  const items = [];
  let cursor = null;
  do {
    const separator = path.includes('?') ? '&' : '?';
    const page = await api('GET', `${path}${separator}limit=500${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    items.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor);
  return items;
}

// ---------------------------------------------------------------- the token

const tokenDialog = document.getElementById('token-dialog');
const forgetToken = document.getElementById('forget-token');
let tokenAnswer = null;

/** Shows the token form once for all the calls waiting on it; true when a token was given. */
function askToken(error) {
  const message = document.getElementById('token-error');
  message.hidden = !sessionStorage.getItem(TOKEN_KEY) && error.code === 'unauthorized';
  message.textContent = `${error.code ?? 'error'}: ${error.message}`;
  tokenAnswer ??= new Promise((resolve) => {
    tokenDialog.addEventListener('close', () => {
      tokenAnswer = null;
      const token = tokenDialog.querySelector('input').value.trim();
      tokenDialog.querySelector('input').value = '';
      if (tokenDialog.returnValue !== 'ok' || !token) return resolve(false);
      sessionStorage.setItem(TOKEN_KEY, token);
      forgetToken.hidden = false;
      resolve(true);
    }, { once: true });
    tokenDialog.returnValue = '';
    tokenDialog.showModal();
  });
  return tokenAnswer;
}

document.getElementById('token-cancel').addEventListener('click', () => tokenDialog.close('cancel'));

forgetToken.hidden = !sessionStorage.getItem(TOKEN_KEY);

/** Wires the "Forget token" button; `then` runs once the token is gone (the page shows again). */
export function onForgetToken(then) {
  forgetToken.addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    forgetToken.hidden = true;
    then();
  });
}
