// Small helpers shared by every page: DOM building, the API client, formatting, URL state.
// No framework and no build step: the files are served as they are, as ES modules.

/** Builds an element. `attrs`: properties and attributes (`class`, `on*` handlers, `data-*`,
 *  `aria-*`); children: nodes, strings, numbers, arrays, null/false (skipped). */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = value;
    else if (key.startsWith('data-') || key.startsWith('aria-') || key === 'role' || key === 'for' || key === 'tabindex') el.setAttribute(key, value);
    else if (key in el) el[key] = value;
    else el.setAttribute(key, value);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// ---- API client ---------------------------------------------------------------------------

let csrfToken = null;
let pending = 0;

export function setCsrf(token) { csrfToken = token; }

function busy(delta) {
  pending += delta;
  document.body.classList.toggle('busy', pending > 0);
}

export class ApiError extends Error {
  constructor(status, message, retryAfter) {
    super(message);
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

/** Calls the API; resolves with the JSON answer, rejects with an ApiError carrying the
 *  server's message. A 401 sends the browser to the sign-in page. */
export async function api(path, options = {}) {
  const headers = { Accept: 'application/json' };
  if (options.body !== undefined) headers['Content-Type'] = 'application/json';
  if (options.method && options.method !== 'GET' && csrfToken) headers['X-CSRF-Token'] = csrfToken;
  busy(1);
  let response;
  try {
    response = await fetch(path, {
      method: options.method || 'GET',
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      credentials: 'same-origin',
      signal: options.signal,
    });
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new ApiError(0, 'Signet cannot be reached. Check that the server is running, then try again.');
  } finally {
    busy(-1);
  }
  const text = await response.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch { body = null; }
  if (!response.ok) {
    const message = body && body.error && body.error.message ? body.error.message : `${response.status} ${response.statusText}`;
    if (response.status === 401 && !options.noRedirect) {
      window.dispatchEvent(new CustomEvent('signet:signed-out', { detail: message }));
    }
    throw new ApiError(response.status, message, response.headers.get('Retry-After'));
  }
  return body;
}

/** What to tell the user for a failed call: the server's reason plus what to do next. */
export function explain(err) {
  if (err.status === 403) return `${err.message} Your role does not include this; ask a Global administrator.`;
  if (err.status === 429 || err.status === 503) return `${err.message} Signet is busy; try again in ${err.retryAfter || 'a few'} seconds.`;
  if (err.status === 400) return `${err.message} Change or remove the filter that is named.`;
  return err.message;
}

export function errorBox(err, retry) {
  return h('div', { class: 'error-state', role: 'alert' },
    h('strong', {}, 'Could not load this. '), explain(err),
    retry ? h('button', { class: 'link', onclick: retry }, ' Try again') : null);
}

export function loading(text = 'Loading…') {
  return h('div', { class: 'loading', role: 'status' }, h('span', { class: 'spinner', 'aria-hidden': 'true' }), text);
}

// ---- formatting -----------------------------------------------------------------------------

/** The browser's own time zone. */
export const BROWSER_ZONE = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
const ZONE_KEY = 'signet.timeZone';

/** The zone chosen in this browser (the header's picker), if any and still known. */
export function chosenZone() {
  try {
    const zone = localStorage.getItem(ZONE_KEY);
    if (!zone) return null;
    new Intl.DateTimeFormat(undefined, { timeZone: zone });
    return zone;
  } catch { return null; }
}

/** The zone dates are shown in and reports count days, weeks and hours on (the API's `tz`):
 * the one chosen in the header, or the browser's. */
export const ZONE = chosenZone() || BROWSER_ZONE;

/** Chooses the zone (null: the browser's) and reloads the page with it. */
export function chooseZone(zone) {
  try {
    if (zone) localStorage.setItem(ZONE_KEY, zone); else localStorage.removeItem(ZONE_KEY);
  } catch { /* storage refused: the choice lasts until reload */ }
  location.reload();
}

/** Every zone the browser knows, UTC first. */
export function zoneNames() {
  const all = typeof Intl.supportedValuesOf === 'function' ? Intl.supportedValuesOf('timeZone') : [];
  return ['UTC', ...all.filter((z) => z !== 'UTC')];
}

/** A formatter in the console's zone. */
export function dateFormat(options) {
  return new Intl.DateTimeFormat(undefined, { ...options, timeZone: ZONE });
}

const dateTime = dateFormat({ dateStyle: 'medium', timeStyle: 'medium' });
const dateOnly = dateFormat({ dateStyle: 'medium' });
const numbers = new Intl.NumberFormat();
const wallParts = new Intl.DateTimeFormat('en-US', {
  timeZone: ZONE, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit',
});

/** An instant's wall clock in the console's zone, as milliseconds of a UTC date with the same fields. */
function wallMillis(ms) {
  const f = Object.fromEntries(wallParts.formatToParts(new Date(ms)).map((p) => [p.type, p.value]));
  return Date.UTC(Number(f.year), Number(f.month) - 1, Number(f.day), Number(f.hour) % 24, Number(f.minute), Number(f.second));
}

/** "YYYY-MM-DDTHH:MM" of an instant in the console's zone (a `datetime-local` input's value). */
export function toZoneInput(iso) {
  const ms = new Date(iso).getTime();
  return new Date(wallMillis(ms - (ms % 1000))).toISOString().slice(0, 16);
}

/** The instant (ISO 8601, UTC) of a "YYYY-MM-DDTHH:MM" wall clock in the console's zone. In a
 * clock change's repeated hour the later of the two instants; in a skipped hour, the time after it. */
export function fromZoneInput(text) {
  const wall = Date.parse(`${text}:00Z`);
  let guess = wall - (wallMillis(wall) - wall);
  guess = wall - (wallMillis(guess) - guess);
  return new Date(guess).toISOString();
}

/** A time in the console's zone, with UTC on hover. */
export function timeEl(iso, dateOnlyFormat = false) {
  if (!iso) return h('span', { class: 'muted' }, '—');
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return document.createTextNode(iso);
  return h('time', { dateTime: iso, title: `${d.toISOString().replace('.000Z', 'Z')} (UTC)` },
    (dateOnlyFormat ? dateOnly : dateTime).format(d));
}

export function fmtDate(iso) { return dateOnly.format(new Date(iso)); }

export function fmtNum(n) { return numbers.format(n || 0); }
export function fmtPct(x) { return `${(100 * (x || 0)).toFixed(1)} %`; }

/** "appDisplayName" -> "App display name". */
export function label(name) {
  const special = { countryOrRegion: 'Country', appDisplayName: 'Application', userPrincipalName: 'User principal name',
    createdDateTime: 'Date', activityDateTime: 'Date', creationTime: 'Date', userDisplayName: 'User',
    ipAddress: 'IP address', clientAppUsed: 'Client app', riskLevelAggregated: 'Risk (aggregated)',
    authenticationRequirement: 'Authentication requirement', conditionalAccessStatus: 'Conditional access',
    signInEventTypes: 'Sign-in type', errorCode: 'Error code', id: 'Id', correlationId: 'Correlation id' };
  if (special[name]) return special[name];
  const words = name.replace(/([a-z0-9])([A-Z])/g, '$1 $2').replace(/([A-Z]+)([A-Z][a-z])/g, '$1 $2').toLowerCase();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

export function valueText(value) {
  if (value === null || value === undefined || value === '') return '';
  if (Array.isArray(value)) return value.join(', ');
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

// ---- URL state --------------------------------------------------------------------------------
// The page and its state live in the hash: `#/signins?user=alice*&status=failure&columns=...`,
// so a view can be bookmarked, shared and reloaded.

export function currentRoute() {
  const hash = location.hash.replace(/^#/, '') || '/signins';
  const [path, query = ''] = hash.split('?');
  return { path, params: new URLSearchParams(query) };
}

export function routeUrl(path, params) {
  const query = params instanceof URLSearchParams ? params.toString() : new URLSearchParams(params || {}).toString();
  return `#${path}${query ? `?${query}` : ''}`;
}

export function navigate(path, params, replace = false) {
  const url = routeUrl(path, params);
  if (replace) history.replaceState(null, '', url); else history.pushState(null, '', url);
  window.dispatchEvent(new HashChangeEvent('hashchange'));
}

/** Calls `fn` at most once per `ms` (the last call wins). */
export function debounce(fn, ms) {
  let timer = null;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
}

export function toast(message, kind = 'info') {
  const box = document.getElementById('toasts');
  const el = h('div', { class: `toast ${kind}`, role: kind === 'error' ? 'alert' : 'status' }, message);
  box.append(el);
  setTimeout(() => el.remove(), 6000);
}

/** A modal dialog; resolves when closed. Escape closes it. */
export function modal(title, ...body) {
  const dialog = h('dialog', { class: 'modal', 'aria-label': title },
    h('header', {}, h('h2', {}, title), h('button', { class: 'icon', 'aria-label': 'Close', onclick: () => dialog.close() }, '×')),
    h('div', { class: 'modal-body' }, body));
  document.body.append(dialog);
  dialog.addEventListener('close', () => dialog.remove());
  dialog.showModal();
  return dialog;
}
