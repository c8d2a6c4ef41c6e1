// The report pages: overview, applications, users and a user's sign-in pattern, error codes,
// and the sign-in form.

import { h, clear, api, errorBox, loading, timeEl, fmtNum, fmtPct, fmtDate, label, navigate, routeUrl, debounce, setCsrf, explain, toast, ZONE } from './util.js';
import { stackedBars, heatmap, barList } from './charts.js';

const DAY_MS = 86_400_000;
const STATUS = ['success', 'failure', 'interrupted'];

/** Report paths count days, weeks and hours in the console's time zone (the header's choice). */
const zoned = (path) => `${path}${path.includes('?') ? '&' : '?'}tz=${encodeURIComponent(ZONE)}`;

/** A bucket ends where the next begins (a day is 23 or 25 hours when the clock changes). */
function bucketEnd(starts, i, bucketDays) {
  return starts[i + 1] ?? new Date(new Date(starts[i]).getTime() + bucketDays * DAY_MS).toISOString();
}

function timelinePoints(data, bucketDays) {
  const starts = data.points.map((p) => new Date(p.start).toISOString());
  return data.points.map((p, i) => {
    const text = bucketDays === 7 ? `Week of ${fmtDate(p.start)}` : fmtDate(p.start);
    return { start: starts[i], end: bucketEnd(starts, i, bucketDays), label: text, values: [p.success, p.failure, p.interrupted] };
  });
}

function section(title, ...content) {
  return h('section', { class: 'card' }, h('h2', {}, title), content);
}

/** Loads into a placeholder: a loading state, then the content or an error with a retry. */
function slot(load) {
  const el = h('div', { class: 'slot' }, loading());
  const run = () => {
    clear(el, loading());
    load().then((content) => clear(el, content)).catch((err) => clear(el, errorBox(err, run)));
  };
  run();
  return el;
}

function stat(title, value, note) {
  return h('div', { class: 'stat' }, h('div', { class: 'stat-title' }, title), h('div', { class: 'stat-value' }, value), note ? h('div', { class: 'stat-note' }, note) : null);
}

// ---- overview -------------------------------------------------------------------------------

export function overview(params) {
  const days = params.get('days') || '30';
  const picker = h('select', { 'aria-label': 'Period', onchange: (e) => navigate('/overview', { days: e.target.value }) },
    [['30', 'Last 30 days'], ['90', 'Last 90 days'], ['180', 'Last 180 days']].map(([v, t]) => h('option', { value: v, selected: v === days }, t)));
  return h('section', { class: 'page' },
    h('div', { class: 'page-head' }, h('h1', {}, 'Overview'), h('div', { class: 'toolbar' }, picker)),
    h('div', { class: 'stats' }, slot(async () => {
      const s = await api('/api/v1/reports/summary?days=7');
      return h('div', { class: 'stat-row' },
        stat('Users who signed in this week', fmtNum(s.users)),
        stat('Sign-ins this week', fmtNum(s.total)),
        stat('Failures this week', fmtNum(s.failure), s.total ? fmtPct(s.failure / s.total) : null),
        stat('Interrupted this week', fmtNum(s.interrupted), s.total ? fmtPct(s.interrupted / s.total) : null));
    })),
    section(`User sign-ins, weekly (last ${days} days)`, slot(async () => {
      const data = await api(zoned(`/api/v1/reports/signins/timeline?bucket=week&days=${days}`));
      return stackedBars(timelinePoints(data, 7), STATUS, {
        height: 220,
        title: 'Click a bar to open the sign-ins of that week',
        onClick: (p) => navigate('/signins', { from: p.start, to: p.end }),
      });
    })),
    section(`Authentication methods (last ${days} days)`, slot(async () => {
      const m = await api(`/api/v1/reports/auth-methods?days=${days}`);
      return h('div', {},
        h('div', { class: 'stat-row' },
          stat('MFA coverage', fmtPct(m.mfaShare), `${fmtNum(m.mfaRequired)} of ${fmtNum(m.signIns)} sign-ins required MFA`),
          stat('Passwordless', fmtPct(m.passwordlessShare), `${fmtNum(m.passwordless)} sign-ins`),
          stat('MFA satisfied by token claim', fmtPct(m.mfaSatisfiedByClaimShare))),
        h('table', { class: 'mini methods' },
          h('thead', {}, h('tr', {}, ['Method', 'Sign-ins', 'Users', 'Succeeded', 'Success rate'].map((t) => h('th', { scope: 'col' }, t)))),
          h('tbody', {}, m.methods.map((x) => {
            const bar = h('span', { class: 'rate-bar' });
            bar.style.width = `${100 * x.successRate}%`;
            return h('tr', {}, h('td', {}, x.method), h('td', {}, fmtNum(x.signIns)), h('td', {}, fmtNum(x.users)), h('td', {}, fmtNum(x.succeeded)),
              h('td', { class: 'rate' }, h('span', { class: 'rate-track' }, bar), fmtPct(x.successRate)));
          }))));
    })));
}

// ---- applications ---------------------------------------------------------------------------

export function applications(params) {
  const app = params.get('app');
  if (app) return application(app);
  const search = h('input', { type: 'search', placeholder: 'Find an application…', 'aria-label': 'Find an application' });
  const results = h('div', {});
  const find = async () => {
    const q = search.value.trim();
    const p = new URLSearchParams({ fields: 'appDisplayName', n: '30', days: '30' });
    if (q) p.set('app', `${q}*`);
    try {
      const data = await api(`/api/v1/signins/facets?${p}`);
      clear(results, barList(data.facets[0].values.filter((v) => v.value).map((v) => ({
        label: v.value, value: v.count, onClick: () => navigate('/apps', { app: v.value }),
      })), { empty: 'No application with sign-ins in the last 30 days matches.' }));
    } catch (err) { clear(results, errorBox(err)); }
  };
  search.addEventListener('input', debounce(find, 300));
  find();
  return h('section', { class: 'page' },
    h('div', { class: 'page-head' }, h('h1', {}, 'Applications')),
    section('Top applications (last 30 days)', slot(async () => {
      const data = await api(zoned('/api/v1/reports/apps/top?n=3&days=30'));
      if (!data.apps.length) return h('p', { class: 'muted' }, 'No sign-ins in the last 30 days.');
      return h('div', { class: 'top-apps' }, data.apps.map((a) => h('div', { class: 'app-card' },
        h('h3', {}, h('a', { href: routeUrl('/apps', { app: a.app }) }, a.app || '(no name)')),
        h('p', { class: 'muted' }, `${fmtNum(a.total)} sign-ins · ${fmtNum(a.users)} users · ${fmtNum(a.failure)} failed`),
        stackedBars(a.weekly.map((w, i, all) => ({ start: w.week, end: bucketEnd(all.map((x) => x.week), i, 7),
          label: `Week of ${fmtDate(w.week)}`, values: [w.count] })), ['sign-ins'], {
          height: 120, width: 360, classes: ['s-4'], tickLabel: (p) => fmtDate(p.start),
          onClick: (p) => navigate('/signins', { app: a.app, from: p.start, to: p.end }),
        }))));
    })),
    section('All applications', search, results));
}

function application(app) {
  return h('section', { class: 'page' },
    h('div', { class: 'page-head' }, h('h1', {}, app), h('a', { class: 'button', href: '#/apps' }, '← All applications')),
    slot(async () => {
      const s = await api(`/api/v1/reports/summary?days=30&app=${encodeURIComponent(app)}`);
      return h('div', { class: 'stat-row' }, stat('Sign-ins (30 days)', fmtNum(s.total)), stat('Users', fmtNum(s.users)),
        stat('Failures', fmtNum(s.failure), s.total ? fmtPct(s.failure / s.total) : null), stat('Interrupted', fmtNum(s.interrupted)));
    }),
    section('Sign-ins per day (last 30 days) — click a day to list its sign-ins', slot(async () => {
      const data = await api(zoned(`/api/v1/reports/signins/timeline?bucket=day&days=30&app=${encodeURIComponent(app)}`));
      return stackedBars(timelinePoints(data, 1), STATUS, {
        height: 200,
        onClick: (p) => navigate('/signins', { app, from: p.start, to: p.end }),
      });
    })),
    section('Who uses it', slot(async () => {
      const data = await api(`/api/v1/signins/facets?fields=userPrincipalName,clientAppUsed,countryOrRegion&n=10&days=30&app=${encodeURIComponent(app)}`);
      return h('div', { class: 'columns-3' }, data.facets.map((f) => h('div', {}, h('h3', {}, label(f.field)),
        barList(f.values.map((v) => ({ label: v.value, value: v.count,
          onClick: f.field === 'userPrincipalName' && v.value ? () => navigate(`/users/${encodeURIComponent(v.value)}`) : null }))))));
    })));
}

// ---- users ----------------------------------------------------------------------------------

export function users(params) {
  const search = h('input', { type: 'search', value: params.get('q') || '', placeholder: 'Name, UPN or id (prefix)', 'aria-label': 'Find a user' });
  const results = h('div', {});
  const find = async () => {
    const q = search.value.trim();
    history.replaceState(null, '', routeUrl('/users', q ? { q } : {}));
    const p = new URLSearchParams({ fields: 'userPrincipalName', n: '50', days: '90' });
    if (q) p.set('user', `${q}*`);
    clear(results, loading('Searching…'));
    try {
      const data = await api(`/api/v1/signins/facets?${p}`);
      const values = data.facets[0].values.filter((v) => v.value);
      clear(results, barList(values.map((v) => ({ label: v.value, value: v.count, note: `${fmtNum(v.count)} sign-ins`,
        onClick: () => navigate(`/users/${encodeURIComponent(v.value)}`) })), { empty: 'No user with sign-ins in the last 90 days matches.' }));
    } catch (err) { clear(results, errorBox(err)); }
  };
  search.addEventListener('input', debounce(find, 300));
  find();
  return h('section', { class: 'page' }, h('div', { class: 'page-head' }, h('h1', {}, 'Users')),
    section('Find a user', search, h('p', { class: 'muted' }, 'Users with sign-ins in the last 90 days, most active first.'), results));
}

export function user(name, me) {
  const canReports = me.permissions.includes('ReadReports');
  return h('section', { class: 'page' },
    h('div', { class: 'page-head' }, h('h1', {}, name), h('div', { class: 'toolbar' },
      h('a', { class: 'button', href: routeUrl('/signins', { user: name, range: '90d' }) }, 'All sign-ins of this user'),
      h('a', { class: 'button', href: '#/users' }, '← Users'))),
    canReports ? slot(async () => {
      const p = await api(zoned(`/api/v1/reports/users/${encodeURIComponent(name)}/pattern?days=90`));
      const top = (rows, key, filter) => barList(rows.map((r) => ({ label: r[key] ?? '(none)', value: r.count,
        onClick: r[key] ? () => navigate('/signins', { user: name, range: '90d', [filter]: r[key] }) : null })));
      return h('div', {},
        h('div', { class: 'stat-row' }, stat('Sign-ins (90 days)', fmtNum(p.total)), stat('Failures', fmtNum(p.failure)),
          stat('Interrupted', fmtNum(p.interrupted)), stat('IP addresses', fmtNum(p.ipAddresses)),
          stat('First seen', p.firstSeen ? timeEl(p.firstSeen) : '—'), stat('Last seen', p.lastSeen ? timeEl(p.lastSeen) : '—')),
        section(`When they sign in (hour of day × weekday, ${p.tz})`, heatmap(p.hourByWeekday.counts, p.hourByWeekday.weekdays, undefined, p.tz)),
        h('div', { class: 'columns-3' },
          section('Locations', top(p.countries, 'country', 'countryOrRegion')),
          section('Applications', top(p.applications, 'app', 'app')),
          section('Client apps', top(p.clientApps, 'clientApp', 'clientAppUsed')),
          section('Devices', barList(p.devices.map((d) => ({ label: `${d.operatingSystem || '?'} · ${d.browser || '?'}`, value: d.count })))),
          section('Cities', barList(p.cities.map((c) => ({ label: `${c.city || '?'}, ${c.country || '?'}`, value: c.count })))),
          section('Recent failures', barList(p.failures.map((f) => ({ label: `${f.errorCode} ${f.failureReason || ''}`, value: f.count,
            onClick: () => navigate('/signins', { user: name, range: '90d', errorCode: String(f.errorCode) }) })), { empty: 'No failures.' }))));
    }) : h('p', { class: 'muted' }, 'Your role does not include reports, so the sign-in pattern is not shown.'),
    section('Latest sign-ins', slot(async () => {
      const page = await api(`/api/v1/signins?user=${encodeURIComponent(name)}&range=90d&limit=20&columns=appDisplayName,status,ipAddress,city,countryOrRegion,clientAppUsed`);
      if (!page.items.length) return h('p', { class: 'muted' }, 'No sign-ins in the last 90 days.');
      return h('table', { class: 'mini' }, h('thead', {}, h('tr', {}, ['Date', 'Application', 'Status', 'IP address', 'Location', 'Client app'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, page.items.map((s) => h('tr', {}, h('td', {}, h('a', { href: routeUrl('/signins', { user: name, range: '90d', open: s.id }) }, timeEl(s.createdDateTime))),
          h('td', {}, s.appDisplayName || '—'), h('td', {}, h('span', { class: `badge ${s.status}` }, s.status)), h('td', {}, s.ipAddress || '—'),
          h('td', {}, [s.city, s.countryOrRegion].filter(Boolean).join(', ') || '—'), h('td', {}, s.clientAppUsed || '—')))));
    })));
}

// ---- activity reports -----------------------------------------------------------------------

/** Dynamics 365's preconfigured activity reports: counts per report, and one report's top users,
 * entities and operations (exports by user, ...), each leading to the matching activities. */
export function activityReports(params) {
  const days = params.get('days') || '30';
  const chosen = params.get('report');
  const picker = h('select', { 'aria-label': 'Period', onchange: (e) => navigate('/activity-reports', { days: e.target.value, ...(chosen ? { report: chosen } : {}) }) },
    [['7', 'Last 7 days'], ['30', 'Last 30 days'], ['90', 'Last 90 days'], ['365', 'Last year']].map(([v, t]) => h('option', { value: v, selected: v === days }, t)));
  const listOf = (id, extra = {}) => routeUrl('/activities', { report: id, range: `${days}d`, ...extra });
  return h('section', { class: 'page' },
    h('div', { class: 'page-head' }, h('h1', {}, 'Activity reports'), h('div', { class: 'toolbar' }, picker)),
    section(`Reports (last ${days} days)`, slot(async () => {
      const data = await api(`/api/v1/reports/activities?days=${days}`);
      return h('table', { class: 'mini activity-reports' },
        h('thead', {}, h('tr', {}, ['Report', 'What is counted', 'Activities'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, data.reports.map((r) => h('tr', { class: r.id === chosen ? 'selected' : '' },
          h('td', {}, h('a', { href: routeUrl('/activity-reports', { days, report: r.id }) }, r.title)),
          h('td', { class: 'muted' }, r.rule),
          h('td', {}, h('a', { href: listOf(r.id), title: 'Open these activities' }, fmtNum(r.count)))))));
    })),
    chosen ? slot(async () => {
      const r = await api(`/api/v1/reports/activities/${encodeURIComponent(chosen)}?days=${days}&n=10`);
      const top = (rows, filter) => barList(rows.map((v) => ({ label: v.value ?? '(none)', value: v.count,
        onClick: v.value ? () => { location.hash = listOf(chosen, { [filter]: v.value }); } : null })), { empty: 'None.' });
      return section(`${r.title}: ${fmtNum(r.total)} activities`,
        h('p', { class: 'muted' }, r.rule, ' ', h('a', { href: listOf(chosen) }, 'Open the list')),
        h('div', { class: 'columns-3' },
          h('div', {}, h('h3', {}, 'By user'), top(r.byUser, 'user')),
          h('div', {}, h('h3', {}, 'By entity'), top(r.byEntity, 'entityName')),
          h('div', {}, h('h3', {}, 'By operation'), top(r.byOperation, 'operation'))));
    }) : null);
}

// ---- error codes ----------------------------------------------------------------------------

export function errors(params) {
  const input = h('input', { type: 'search', name: 'code', value: params.get('code') || '', placeholder: 'e.g. 50126 or AADSTS50126', 'aria-label': 'Error code', inputMode: 'numeric' });
  const answer = h('div', { 'aria-live': 'polite' });
  const look = async () => {
    const code = input.value.trim();
    history.replaceState(null, '', routeUrl('/errors', code ? { code } : {}));
    if (!code) { clear(answer); return; }
    try {
      const info = await api(`/api/v1/errors/${encodeURIComponent(code)}`);
      clear(answer, h('article', { class: 'card error-info' }, h('h2', {}, `${info.code} — ${info.name}`),
        h('p', {}, h('span', { class: `badge ${info.interrupt ? 'interrupted' : info.code === 0 ? 'success' : 'failure'}` }, info.interrupt ? 'interrupt' : info.code === 0 ? 'success' : 'failure')),
        h('p', {}, h('strong', {}, 'What it means: '), info.meaning), h('p', {}, h('strong', {}, 'What to do: '), info.remediation),
        h('p', {}, h('a', { href: info.lookupUrl, target: '_blank', rel: 'noopener noreferrer' }, 'Microsoft\'s description'), ' · ',
          h('a', { href: routeUrl('/signins', { errorCode: String(info.code), range: '1m' }) }, 'Sign-ins with this code'))));
    } catch (err) { clear(answer, h('div', { class: 'error-state' }, explain(err))); }
  };
  input.addEventListener('input', debounce(look, 250));
  look();
  return h('section', { class: 'page' }, h('div', { class: 'page-head' }, h('h1', {}, 'Error code lookup')),
    section('Look up a sign-in error code', h('form', { onsubmit: (e) => { e.preventDefault(); look(); } }, input), answer),
    section('Every code Signet knows', slot(async () => {
      const all = await api('/api/v1/errors');
      return h('table', { class: 'mini' }, h('thead', {}, h('tr', {}, ['Code', 'Name', 'Meaning'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, all.value.map((e) => h('tr', {}, h('td', {}, h('a', { href: routeUrl('/errors', { code: String(e.code) }) }, String(e.code))), h('td', {}, e.name), h('td', {}, e.meaning)))));
    })));
}

// ---- settings ---------------------------------------------------------------------------------

/** Audit settings (Dynamics 365's switches) and the security policy; editable by the roles that
 * may change security settings, read-only for the readers. */
export function settings(me) {
  const canChange = me.permissions.includes('ManageSecuritySettings');
  return h('div', { class: 'page settings' }, h('h1', {}, 'Settings'),
    section('Audit settings', slot(async () => auditForm(await api('/api/v1/settings/audit'), canChange))),
    section('Retention', slot(async () => retentionForm(await api('/api/v1/settings/retention'), canChange))),
    section('Security policy', slot(async () => {
      const s = await api('/api/v1/settings');
      return h('dl', { class: 'fields' }, Object.entries(s.security).flatMap(([k, v]) => [h('dt', {}, label(k)), h('dd', {}, String(v))]));
    })));
}

function auditForm(current, canChange) {
  const check = (name, text, hint) => {
    const box = h('input', { type: 'checkbox', name, checked: current[name], disabled: !canChange });
    return h('label', { class: 'switch' }, box, ` ${text}`, hint ? h('small', { class: 'muted' }, ` — ${hint}`) : null);
  };
  const interval = h('input', { type: 'number', name: 'userAccessAuditingInterval', min: 1, max: 168, value: current.userAccessAuditingInterval, disabled: !canChange });
  const rows = h('tbody', {});
  const entityRow = (name, e) => {
    const cell = (key) => h('td', {}, h('input', { type: 'checkbox', 'data-switch': key, checked: e[key], disabled: !canChange, 'aria-label': `${key} for ${name}` }));
    return h('tr', { 'data-entity': name }, h('td', {}, name), cell('isAuditEnabled'), cell('singleRecordAudit'), cell('multipleRecordAudit'),
      h('td', {}, canChange ? h('button', { type: 'button', class: 'link', onclick: (ev) => ev.currentTarget.closest('tr').remove() }, 'Remove') : null));
  };
  for (const [name, e] of Object.entries(current.entities)) rows.append(entityRow(name, e));
  const newEntity = h('input', { type: 'text', name: 'newEntity', placeholder: 'entity name, e.g. account', disabled: !canChange });
  const status = h('p', { class: 'form-error', role: 'status' });
  const form = h('form', { class: 'audit-settings', onsubmit: async (ev) => {
    ev.preventDefault();
    const body = { userAccessAuditingInterval: Number(interval.value), entities: {} };
    for (const name of ['isAuditEnabled', 'isUserAccessAuditEnabled', 'isReadAuditEnabled']) body[name] = form.querySelector(`input[name=${name}]`).checked;
    for (const tr of rows.querySelectorAll('tr')) {
      const e = {};
      for (const box of tr.querySelectorAll('input[data-switch]')) e[box.dataset.switch] = box.checked;
      body.entities[tr.dataset.entity] = e;
    }
    try {
      const saved = await api('/api/v1/settings/audit', { method: 'PUT', body });
      toast('Audit settings saved; the change is in the activity log.');
      form.replaceWith(auditForm(saved, canChange));
    } catch (err) { status.textContent = explain(err); }
  } },
  check('isAuditEnabled', 'Auditing', 'off: no activity from applications is recorded'),
  check('isUserAccessAuditEnabled', 'User access auditing', 'UserAccessviaWeb / UserAccessviaWebServices; needs auditing on'),
  h('label', {}, 'User access auditing interval (hours) ', interval),
  check('isReadAuditEnabled', 'Read auditing', 'Read and ReadMultiple operations'),
  h('h3', {}, 'Entities'),
  h('table', { class: 'mini entities' }, h('thead', {}, h('tr', {}, ['Entity', 'Auditing', 'Single record', 'Multiple records', ''].map((t) => h('th', { scope: 'col' }, t)))), rows),
  canChange ? h('p', {}, newEntity, ' ', h('button', { type: 'button', onclick: () => {
    const name = newEntity.value.trim().toLowerCase();
    if (!name || rows.querySelector(`tr[data-entity="${CSS.escape(name)}"]`)) return;
    rows.append(entityRow(name, { isAuditEnabled: true, singleRecordAudit: true, multipleRecordAudit: true }));
    newEntity.value = '';
  } }, 'Add entity')) : null,
  h('p', { class: 'muted' }, 'Entities not listed follow the switches above. Sign-ins and directory audits are always kept.'),
  status,
  canChange ? h('button', { type: 'submit', class: 'primary' }, 'Save') : h('p', { class: 'muted' }, 'Your role may read these settings, not change them.'));
  return form;
}

/** Retention per log (days hot, days in the archive, legal hold), what the archive holds and the
 * last run. See docs/retention.md. */
function retentionForm(view, canChange) {
  const logs = [['signins', 'Sign-ins'], ['directoryAudits', 'Directory audits'], ['activities', 'Activities'],
    ['accessLog', 'Signet access log']];
  const policy = view.policy;
  const number = (name, log, value, text) => h('input', { type: 'number', min: name === 'hotDays' ? 1 : 0, max: 36500, name: `${log}.${name}`,
    value: value ?? '', placeholder: log === 'accessLog' ? 'as activities' : 'for ever', disabled: !canChange, 'aria-label': `${text} for ${log}` });
  const rows = logs.map(([log, title]) => {
    const p = policy[log] || {};
    return h('tr', { 'data-log': log }, h('td', {}, title),
      h('td', {}, number('hotDays', log, p.hotDays, 'Days hot')),
      h('td', {}, number('archiveDays', log, p.archiveDays, 'Days in the archive')),
      h('td', {}, h('input', { type: 'checkbox', name: `${log}.legalHold`, checked: !!p.legalHold, disabled: !canChange, 'aria-label': `Legal hold for ${log}` })));
  });
  const hold = h('input', { type: 'checkbox', name: 'legalHold', checked: !!policy.legalHold, disabled: !canChange });
  const reason = h('input', { type: 'text', name: 'legalHoldReason', value: policy.legalHoldReason || '', placeholder: 'reason (case, request)', disabled: !canChange });
  const status = h('p', { class: 'form-error', role: 'status' });
  const a = view.archive;
  const last = view.lastRun;
  const form = h('form', { class: 'retention', onsubmit: async (ev) => {
    ev.preventDefault();
    const body = { legalHold: hold.checked };
    if (reason.value.trim()) body.legalHoldReason = reason.value.trim();
    for (const [log] of logs) {
      const value = (name) => form.querySelector(`input[name="${log}.${name}"]`);
      if (!value('hotDays').value) continue;
      body[log] = { hotDays: Number(value('hotDays').value), legalHold: value('legalHold').checked };
      if (value('archiveDays').value) body[log].archiveDays = Number(value('archiveDays').value);
    }
    try {
      await api('/api/v1/settings/retention', { method: 'PUT', body });
      toast('Retention saved; the change is in the activity log.');
      form.replaceWith(retentionForm(await api('/api/v1/settings/retention'), canChange));
    } catch (err) { status.textContent = explain(err); }
  } },
  h('table', { class: 'mini retention-policy' },
    h('thead', {}, h('tr', {}, ['Log', 'Days hot', 'Days in the archive', 'Legal hold'].map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, rows)),
  h('p', { class: 'muted' }, 'Empty: kept hot for ever (days hot) or kept in the archive for ever (days in the archive). Older days move to the archive, which lists, reports and exports still read when their time range reaches back.'),
  h('label', { class: 'switch' }, hold, ' Legal hold on every log ', reason),
  h('dl', { class: 'fields archive-stats' },
    h('dt', {}, 'In the archive'), h('dd', {}, a.parts ? `${fmtNum(a.rows)} events in ${fmtNum(a.parts)} parts (${fmtNum(Math.round(a.bytes / 1024))} KiB), ${a.oldestDay} to ${a.newestDay}` : 'nothing yet'),
    h('dt', {}, 'Kept in'), h('dd', {}, a.objectStore ? `${a.objectStore} (a working copy on the server's disk)` : "the server's archive directory"),
    h('dt', {}, 'Last run'), h('dd', {}, last ? `${last.started}: ${last.partitions.length} days moved, ${last.held.length} held` : 'not since the server started')),
  status,
  canChange
    ? h('div', { class: 'actions' },
      h('button', { type: 'submit', class: 'primary' }, 'Save'),
      h('button', { type: 'button', class: 'run-retention', onclick: async () => {
        try {
          const report = await api('/api/v1/settings/retention/run', { method: 'POST' });
          const moved = report.partitions.reduce((n, p) => n + p.removed, 0);
          toast(`Retention applied: ${fmtNum(moved)} events moved to the archive, ${report.deletedParts.length} parts deleted.`);
          form.replaceWith(retentionForm(await api('/api/v1/settings/retention'), canChange));
        } catch (err) { status.textContent = explain(err); }
      } }, 'Apply now'))
    : h('p', { class: 'muted' }, 'Your role may read these settings, not change them.'));
  return form;
}

// ---- sign-in ----------------------------------------------------------------------------------

export function login(onSignedIn, message) {
  const username = h('input', { type: 'text', name: 'username', autocomplete: 'username', required: true, autofocus: true });
  const password = h('input', { type: 'password', name: 'password', autocomplete: 'current-password', required: true });
  const status = h('p', { class: 'form-error', role: 'alert' }, message || '');
  const button = h('button', { type: 'submit', class: 'primary' }, 'Sign in');
  const providers = h('div', { class: 'sso-list' });
  const form = h('form', { class: 'login card', onsubmit: async (e) => {
    e.preventDefault();
    button.disabled = true;
    status.textContent = '';
    try {
      const me = await api('/api/v1/auth/login', { method: 'POST', body: { username: username.value, password: password.value }, noRedirect: true });
      setCsrf(me.csrfToken);
      onSignedIn(me);
    } catch (err) {
      status.textContent = explain(err);
      password.value = '';
      password.focus();
    } finally { button.disabled = false; }
  } },
  h('h1', {}, 'Sign in to Signet'),
  h('label', {}, 'User name', username), h('label', {}, 'Password', password), status, button,
  providers,
  h('p', { class: 'muted' }, 'Every sign-in attempt, successful or not, is recorded in the sign-in log.'));
  // Single sign-on: one plain link per configured identity provider (a full-page navigation
  // to the provider and back).
  api('/api/v1/auth/providers', { noRedirect: true }).then((list) => {
    if (!list.value.length) return;
    clear(providers, h('p', { class: 'muted or' }, 'or'),
      list.value.map((p) => h('a', { class: 'button sso', href: p.loginUrl, 'data-provider': p.name }, `Sign in with ${p.displayName}`)));
  }).catch(() => { /* password sign-in still works */ });
  return h('div', { class: 'login-page' }, form);
}
