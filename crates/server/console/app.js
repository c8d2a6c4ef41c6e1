// The console's entry point: who is signed in, the navigation (only the pages the role may
// use), and the router (`#/page?state`).

import { h, clear, api, setCsrf, currentRoute, errorBox, loading, toast, BROWSER_ZONE, chosenZone, chooseZone, zoneNames } from './util.js';
import { Explorer } from './explorer.js';
import * as pages from './pages.js';

let me = null;
let explorer = null;

/** Pages, in menu order, with the permission each needs. */
const PAGES = [
  { path: '/signins', title: 'Sign-ins', needs: 'ReadLogs', render: (p) => explore('signins', p) },
  { path: '/overview', title: 'Overview', needs: 'ReadReports', render: (p) => pages.overview(p) },
  { path: '/apps', title: 'Applications', needs: 'ReadReports', render: (p) => pages.applications(p) },
  { path: '/users', title: 'Users', needs: 'ReadLogs', render: (p) => pages.users(p) },
  { path: '/audits', title: 'Audit logs', needs: 'ReadLogs', render: (p) => explore('audits', p) },
  { path: '/activities', title: 'Activity', needs: 'ReadLogs', render: (p) => explore('activities', p) },
  { path: '/activity-reports', title: 'Activity reports', needs: 'ReadReports', render: (p) => pages.activityReports(p) },
  { path: '/me', title: 'My sign-ins', needs: 'ReadOwnSignIns', render: (p) => explore('mine', p) },
  { path: '/settings', title: 'Settings', needs: 'ReadSettings', render: () => pages.settings(me) },
  { path: '/errors', title: 'Error codes', needs: null, render: (p) => pages.errors(p) },
];

function explore(kind, params) {
  explorer = new Explorer(kind, params, me);
  return explorer.render();
}

function allowed(page) {
  return !page.needs || me.permissions.includes(page.needs);
}

function renderNav(path) {
  const nav = document.getElementById('nav');
  clear(nav, (me ? PAGES.filter(allowed) : []).map((page) => h('a', {
    href: `#${page.path}`,
    class: path === page.path || path.startsWith(`${page.path}/`) ? 'active' : '',
    'aria-current': path === page.path ? 'page' : null,
  }, page.title)));
  const who = document.querySelector('.who');
  clear(who, me ? [zonePicker(), h('span', { class: 'user', title: `${me.role || 'no administrator role'} · organisation ${me.organization}` },
    me.displayName || me.username, me.role ? h('small', {}, ` ${me.role.replace(/([a-z])([A-Z])/g, '$1 $2')}`) : null),
  h('button', { class: 'link signout', onclick: signOut }, 'Sign out')] : []);
}

/** The time zone of dates and reports: the browser's, or one chosen here (kept in this browser). */
function zonePicker() {
  const chosen = chosenZone();
  return h('select', {
    class: 'zone', 'aria-label': 'Time zone', title: 'Time zone of dates, graphs and reports',
    onchange: (e) => chooseZone(e.target.value || null),
  },
  h('option', { value: '', selected: !chosen }, `${BROWSER_ZONE} (browser)`),
  zoneNames().map((zone) => h('option', { value: zone, selected: chosen === zone }, zone)));
}

async function signOut() {
  let answer = null;
  try { answer = await api('/api/v1/auth/logout', { method: 'POST', noRedirect: true }); } catch { /* signed out anyway */ }
  me = null;
  setCsrf(null);
  // Signed in through a provider that is to be signed out of too: it sends the browser back here.
  if (answer && answer.providerSignOut) {
    location.assign(answer.providerSignOut);
    return;
  }
  location.hash = '#/signins';
  showLogin('You are signed out.');
}

function showLogin(message) {
  if (explorer) { explorer.destroy(); explorer = null; }
  renderNav('');
  clear(document.getElementById('main'), pages.login((who) => { me = who; route(); }, message));
}

function route() {
  if (!me) return;
  if (explorer) { explorer.destroy(); explorer = null; }
  const { path, params } = currentRoute();
  const main = document.getElementById('main');
  let page = PAGES.find((p) => p.path === path);
  let content;
  if (path.startsWith('/users/') && me.permissions.includes('ReadLogs')) {
    content = pages.user(decodeURIComponent(path.slice('/users/'.length)), me);
    page = PAGES.find((p) => p.path === '/users');
  } else if (!page || !allowed(page)) {
    // The default page for roles without the sign-in log is their own sign-ins.
    const fallback = PAGES.find(allowed);
    if (page && !allowed(page)) toast(`Your role does not include “${page.title}”.`, 'error');
    history.replaceState(null, '', `#${fallback.path}`);
    page = fallback;
    content = page.render(new URLSearchParams());
  } else {
    content = page.render(params);
  }
  renderNav(page.path);
  document.title = `${page.title} · Signet`;
  clear(main, content);
  document.querySelector('.top').classList.remove('nav-open');
}

async function start() {
  const main = document.getElementById('main');
  clear(main, loading('Starting…'));
  document.querySelector('.nav-toggle').addEventListener('click', (e) => {
    const top = document.querySelector('.top');
    top.classList.toggle('nav-open');
    e.currentTarget.setAttribute('aria-expanded', String(top.classList.contains('nav-open')));
  });
  window.addEventListener('hashchange', route);
  window.addEventListener('signet:signed-out', (e) => { me = null; showLogin(`Please sign in again: ${e.detail}`); });
  // A single sign-on that failed comes back as /?sso_error=...: show it on the sign-in page
  // and take it out of the address bar.
  const ssoError = new URLSearchParams(location.search).get('sso_error');
  if (ssoError) history.replaceState(null, '', `${location.pathname}${location.hash}`);
  try {
    me = await api('/api/v1/auth/me', { noRedirect: true });
    if (ssoError) toast(ssoError, 'error');
    setCsrf(me.csrfToken);
    route();
  } catch (err) {
    if (err.status === 401) showLogin(ssoError);
    else clear(main, errorBox(err, start));
  }
}

start();
