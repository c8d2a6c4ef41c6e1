// The log explorer: one page pattern for sign-ins, audit logs, activity and "my sign-ins".
// List (paged without a cap), filters and columns in the URL, a histogram that follows the
// filters (drag to zoom), facets (click to include or exclude), click-to-filter values, a
// details pane with tabs, live mode, download and the equivalent script, saved views.

import { h, clear, api, explain, errorBox, loading, timeEl, fmtNum, label, valueText, routeUrl, debounce, toast, modal, ZONE, dateFormat, toZoneInput, fromZoneInput } from './util.js';
import { stackedBars } from './charts.js';

export const KINDS = {
  signins: {
    title: 'Sign-ins', singular: 'sign-in', path: '/signins', api: '/api/v1/signins', schema: 'signins',
    columns: ['createdDateTime', 'userDisplayName', 'appDisplayName', 'status', 'riskLevelAggregated', 'authenticationRequirement'],
    quick: [['user', 'User', 'name, UPN or id; * for prefix'], ['app', 'Application', 'name or id; * for prefix']],
    tabs: [['', 'All sign-ins'], ['interactiveUser', 'User (interactive)'], ['nonInteractiveUser', 'User (non-interactive)'],
      ['servicePrincipal', 'Service principal'], ['managedIdentity', 'Managed identity']],
    status: true, export: true,
  },
  audits: {
    title: 'Audit logs', singular: 'audit event', path: '/audits', api: '/api/v1/directory-audits', schema: 'directory-audits',
    columns: ['activityDateTime', 'activityDisplayName', 'category', 'result', 'initiatedByUserPrincipalName', 'targetDisplayNames'],
    quick: [['user', 'Initiated by', 'user name, UPN or id'], ['activityDisplayName', 'Activity', 'e.g. Add user; * for prefix']],
    export: true,
  },
  activities: {
    title: 'Activity', singular: 'activity', path: '/activities', api: '/api/v1/activities', schema: 'activities',
    columns: ['creationTime', 'operation', 'category', 'user', 'entityName', 'itemType', 'resultStatus', 'clientIp'],
    quick: [['user', 'User', 'UPN or id'], ['operation', 'Operation', 'e.g. Retrieve; * for prefix']],
    export: true,
  },
  mine: {
    title: 'My sign-ins', singular: 'sign-in', path: '/me', api: '/api/v1/me/signins', schema: 'signins', own: true,
    columns: ['createdDateTime', 'appDisplayName', 'status', 'ipAddress', 'city', 'countryOrRegion', 'clientAppUsed'],
    quick: [['app', 'Application', 'name or id']], status: true,
  },
};

/** Parameters that shape the page, not the query. */
const UI_ONLY = ['open', 'view'];
const PAGE_SIZE = 100;
/** Values per facet the API gives by default, and the most it gives. */
const FACET_VALUES = 8;
const FACET_VALUES_MAX = 100;
const RANGES = [['24h', 'Last 24 hours'], ['7d', 'Last 7 days'], ['1m', 'Last month'], ['90d', 'Last 90 days'], ['custom', 'Custom range…']];
const schemas = {};

async function schemaOf(name) {
  if (!schemas[name]) schemas[name] = api(`/api/v1/schema/${name}`);
  return schemas[name];
}

export class Explorer {
  constructor(kindName, params, me) {
    this.kind = KINDS[kindName];
    this.kindName = kindName;
    this.me = me;
    this.params = new URLSearchParams(params);
    if (!this.params.has('range') && !this.params.has('from') && !this.params.has('to')) this.params.set('range', '24h');
    this.can = (p) => me.permissions.includes(p);
    this.withFacets = !this.kind.own && this.can('ReadLogs');
    this.live = null;
    this.abort = null;
    this.root = h('section', { class: 'explorer' });
  }

  // ---- URL and query ----

  apiParams() {
    const p = new URLSearchParams(this.params);
    for (const k of UI_ONLY) p.delete(k);
    if (!p.has('columns')) p.set('columns', this.kind.columns.join(','));
    return p;
  }

  columnsShown() {
    return (this.params.get('columns') || this.kind.columns.join(',')).split(',').filter(Boolean);
  }

  /** Changes the view: updates the URL (a new history entry) and reloads the data. */
  change(mutate, { reload = true, replace = false } = {}) {
    mutate(this.params);
    const url = routeUrl(this.kind.path, this.params);
    if (replace) history.replaceState(null, '', url); else history.pushState(null, '', url);
    if (reload) this.refresh();
  }

  setFilter(key, value) {
    this.change((p) => { if (value === '' || value === null) p.delete(key); else p.set(key, value); p.delete('cursor'); });
  }

  addExclusion(field, value) {
    const key = `not.${field}`;
    const existing = (this.params.get(key) || '').split(',').filter(Boolean);
    if (!existing.includes(value)) existing.push(value);
    this.setFilter(key, existing.join(','));
  }

  // ---- rendering ----

  render() {
    this.schema = null;
    const header = h('div', { class: 'page-head' },
      h('h1', {}, this.kind.title),
      h('span', { class: 'match-count', 'aria-live': 'polite' }),
      h('div', { class: 'toolbar' },
        !this.kind.own && this.can('ReadLogs') ? h('button', { class: 'toggle live-toggle', 'aria-pressed': 'false', onclick: () => this.toggleLive() }, '● Live') : null,
        h('button', { class: 'columns-button', 'aria-haspopup': 'true', onclick: (e) => this.chooseColumns(e.currentTarget) }, 'Columns'),
        this.kind.export && this.can('Export') ? this.downloadMenu() : null,
        this.kind.export && this.can('Export') ? h('button', { class: 'script-button', onclick: () => this.showScript() }, 'Script') : null,
        h('button', { class: 'views-button', onclick: (e) => this.viewsMenu(e.currentTarget) }, 'Views')));
    this.countEl = header.querySelector('.match-count');
    this.filtersEl = h('div', { class: 'filters', role: 'search', 'aria-label': 'Filters' });
    this.chipsEl = h('div', { class: 'chips' });
    this.histEl = h('div', { class: 'histogram' });
    this.facetsEl = h('aside', { class: 'facets', 'aria-label': 'Top values' });
    this.tableEl = h('div', { class: 'table-wrap' });
    this.detailsEl = h('aside', { class: 'details', hidden: true, 'aria-label': 'Details' });
    this.liveBanner = h('div', { class: 'live-banner', hidden: true, role: 'status' });
    clear(this.root, header,
      this.kind.tabs ? this.tabs() : null,
      this.filtersEl, this.chipsEl,
      this.withFacets ? this.histEl : null,
      this.liveBanner,
      h('div', { class: this.withFacets ? 'explore-body' : 'explore-body no-facets' }, this.withFacets ? this.facetsEl : null, this.tableEl),
      this.detailsEl);
    schemaOf(this.kind.schema).then((schema) => {
      this.schema = schema;
      this.renderFilters();
      this.refresh();
      if (this.params.get('open')) this.openDetails(this.params.get('open'));
    }).catch((err) => clear(this.tableEl, errorBox(err, () => this.render())));
    return this.root;
  }

  tabs() {
    const current = this.params.get('eventType') || '';
    return h('div', { class: 'tabs', role: 'tablist', 'aria-label': 'Sign-in type' }, this.kind.tabs.map(([value, text]) =>
      h('button', { role: 'tab', 'aria-selected': String(value === current), class: value === current ? 'tab active' : 'tab',
        onclick: (e) => {
          for (const b of e.currentTarget.parentElement.children) { b.classList.remove('active'); b.setAttribute('aria-selected', 'false'); }
          e.currentTarget.classList.add('active');
          e.currentTarget.setAttribute('aria-selected', 'true');
          this.setFilter('eventType', value);
        } }, text)));
  }

  column(name) {
    return this.schema && this.schema.columns.find((c) => c.name.toLowerCase() === name.toLowerCase());
  }

  renderFilters() {
    const p = this.params;
    const controls = [];
    const shown = new Set(['columns', 'range', 'from', 'to', 'eventType', 'cursor', ...UI_ONLY]);
    const text = (key, title, hint) => {
      shown.add(key);
      const input = h('input', { type: 'search', name: key, value: p.get(key) || '', placeholder: hint, 'aria-label': title });
      input.addEventListener('input', debounce(() => this.setFilter(key, input.value.trim()), 400));
      return h('label', { class: 'filter' }, h('span', {}, title), input);
    };
    for (const [key, title, hint] of this.kind.quick) controls.push(text(key, title, hint));
    if (this.kind.status) {
      shown.add('status');
      controls.push(h('label', { class: 'filter' }, h('span', {}, 'Status'),
        h('select', { name: 'status', onchange: (e) => this.setFilter('status', e.target.value) },
          [['', 'Any'], ['success', 'Success'], ['failure', 'Failure'], ['interrupted', 'Interrupted']].map(([v, t]) =>
            h('option', { value: v, selected: (p.get('status') || '') === v }, t)))));
    }
    if (this.kind === KINDS.signins) {
      shown.add('risk');
      controls.push(h('label', { class: 'filter' }, h('span', {}, 'Risk'),
        h('select', { name: 'risk', onchange: (e) => this.setFilter('risk', e.target.value) },
          [['', 'Any'], ['true', 'At risk'], ['false', 'No risk']].map(([v, t]) =>
            h('option', { value: v, selected: (p.get('risk') || '') === v }, t)))));
    }
    // Date: presets or a custom start and end (in the console's time zone, see the header).
    const custom = p.has('from') || p.has('to');
    const range = custom ? 'custom' : p.get('range') || '24h';
    const from = h('input', { type: 'datetime-local', name: 'from', value: p.get('from') ? toZoneInput(p.get('from')) : '', 'aria-label': 'From' });
    const to = h('input', { type: 'datetime-local', name: 'to', value: p.get('to') ? toZoneInput(p.get('to')) : '', 'aria-label': 'To' });
    const customBox = h('span', { class: 'custom-range', hidden: !custom }, from, '–', to,
      h('button', { onclick: () => this.change((q) => {
        q.delete('range');
        if (from.value) q.set('from', fromZoneInput(from.value)); else q.delete('from');
        if (to.value) q.set('to', fromZoneInput(to.value)); else q.delete('to');
      }) }, 'Apply'));
    controls.push(h('label', { class: 'filter' }, h('span', {}, 'Date'),
      h('select', { name: 'range', onchange: (e) => {
        if (e.target.value === 'custom') { customBox.hidden = false; from.focus(); return; }
        customBox.hidden = true;
        this.change((q) => { q.delete('from'); q.delete('to'); q.set('range', e.target.value); });
      } }, RANGES.map(([v, t]) => h('option', { value: v, selected: v === range }, t)))), customBox);
    // A column added also adds its filter.
    for (const name of this.columnsShown()) {
      const c = this.column(name);
      if (!c || !c.filterable || this.kind.columns.includes(c.name) || shown.has(c.name)) continue;
      controls.push(text(c.name, label(c.name), c.type === 'string' ? 'value; * for prefix' : c.type));
    }
    controls.push(h('button', { class: 'add-filter', onclick: (e) => this.addFilter(e.currentTarget) }, '+ Add filter'));
    if ([...p.keys()].some((k) => !['columns', ...UI_ONLY].includes(k))) {
      controls.push(h('button', { class: 'link reset', onclick: () => this.change((q) => { for (const k of [...q.keys()]) if (k !== 'columns') q.delete(k); q.set('range', '24h'); }) }, 'Reset filters'));
    }
    clear(this.filtersEl, controls);
    // Every other filter (from a facet, a clicked value or "Add filter") as a removable chip.
    const chips = [];
    for (const [key, value] of p.entries()) {
      if (shown.has(key)) continue;
      const negated = key.startsWith('not.');
      const field = negated ? key.slice(4) : key;
      chips.push(h('span', { class: negated ? 'chip excluded' : 'chip' },
        `${label(field)} ${negated ? '≠' : '='} ${value}`,
        h('button', { class: 'icon', 'aria-label': `Remove filter ${label(field)}`, onclick: () => this.setFilter(key, '') }, '×')));
    }
    clear(this.chipsEl, chips);
  }

  addFilter(anchor) {
    const fields = this.schema.columns.filter((c) => c.filterable);
    const select = h('select', { 'aria-label': 'Field' }, fields.map((c) => h('option', { value: c.name }, label(c.name))));
    const value = h('input', { type: 'text', placeholder: 'value (* for prefix, comma for any of)', 'aria-label': 'Value' });
    const exclude = h('input', { type: 'checkbox' });
    const dialog = modal('Add a filter',
      h('form', { class: 'stack', onsubmit: (e) => {
        e.preventDefault();
        if (!value.value.trim()) { value.focus(); return; }
        dialog.close();
        this.setFilter(exclude.checked ? `not.${select.value}` : select.value, value.value.trim());
      } }, h('label', {}, 'Field ', select), h('label', {}, 'Value ', value), h('label', {}, exclude, ' exclude matching events'),
      h('button', { type: 'submit', class: 'primary' }, 'Add')));
    select.focus();
    return anchor;
  }

  chooseColumns() {
    const shown = new Set(this.columnsShown());
    const boxes = this.schema.columns.filter((c) => c.name !== 'id').map((c) =>
      h('label', { class: 'check' }, h('input', { type: 'checkbox', value: c.name, checked: shown.has(c.name) }), ` ${label(c.name)}`));
    const dialog = modal('Columns',
      h('p', { class: 'muted' }, 'Pick the columns of the list. A column you add also gets a filter box.'),
      h('div', { class: 'column-grid' }, boxes),
      h('div', { class: 'row' },
        h('button', { class: 'primary', onclick: () => {
          const chosen = boxes.map((b) => b.querySelector('input')).filter((i) => i.checked).map((i) => i.value);
          dialog.close();
          this.change((p) => { p.set('columns', chosen.join(',')); });
          this.renderFilters();
        } }, 'Apply'),
        h('button', { onclick: () => { dialog.close(); this.change((p) => p.delete('columns')); this.renderFilters(); } }, 'Default columns')));
  }

  downloadMenu() {
    const link = (format, text) => h('a', { class: 'button', role: 'menuitem', download: '', onclick: (e) => {
      e.currentTarget.href = `${this.kind.api}/export?${this.exportParams(format)}`;
      toast(`Downloading every ${this.kind.singular} that matches the filters as ${format.toUpperCase()} (no row limit).`);
    }, href: '#' }, text);
    return h('span', { class: 'download' }, link('csv', 'Download CSV'), link('json', 'Download JSON'));
  }

  exportParams(format) {
    const p = this.apiParams();
    p.delete('cursor');
    p.set('format', format);
    if (format !== 'csv') p.delete('columns');
    return p.toString();
  }

  showScript() {
    const base = location.origin;
    const p = new URLSearchParams(this.exportParams('csv'));
    const curl = `curl -fsS -H "Authorization: Bearer $SIGNET_API_KEY" \\\n  '${base}${this.kind.api}/export?${p.toString()}' \\\n  -o ${this.kind.schema}.csv`;
    const args = [`signet export --server ${base} --kind ${this.kind.schema} --format csv`];
    for (const [k, v] of p.entries()) {
      if (k === 'format') continue;
      if (k === 'columns') args.push(`--columns '${v}'`);
      else if (['user', 'app', 'status', 'range', 'from', 'to'].includes(k) && this.kind === KINDS.signins) args.push(`--${k} '${v}'`);
      else args.push(`-p '${k}=${v}'`);
    }
    args.push(`-o ${this.kind.schema}.csv`);
    const cli = args.join(' \\\n  ');
    const block = (text) => h('div', { class: 'script' }, h('pre', {}, h('code', {}, text)),
      h('button', { onclick: () => navigator.clipboard && navigator.clipboard.writeText(text).then(() => toast('Copied.')) }, 'Copy'));
    modal('The same export as a script',
      h('p', {}, 'Both commands fetch everything the current filters match. Create a read key with ', h('code', {}, 'signet api-key create'), ' and export it as ', h('code', {}, 'SIGNET_API_KEY'), '.'),
      h('h3', {}, 'curl'), block(curl), h('h3', {}, 'Signet CLI'), block(cli));
  }

  async viewsMenu() {
    let views = [];
    try { views = (await api('/api/v1/me/views')).views || []; } catch (err) { toast(explain(err), 'error'); return; }
    const mine = views.filter((v) => v.page === this.kind.path);
    const name = h('input', { type: 'text', placeholder: 'e.g. Failed sign-ins this week', 'aria-label': 'View name', required: true });
    const save = async (list) => {
      await api('/api/v1/me/views', { method: 'PUT', body: { views: list } });
    };
    const dialog = modal('Saved views',
      mine.length ? h('ul', { class: 'views' }, mine.map((v) => h('li', {},
        h('a', { href: routeUrl(v.page, new URLSearchParams(v.query)), onclick: () => dialog.close() }, v.name),
        h('button', { class: 'icon', 'aria-label': `Delete view ${v.name}`, onclick: async () => {
          try { await save(views.filter((x) => x !== v)); dialog.close(); toast(`View "${v.name}" deleted.`); } catch (err) { toast(explain(err), 'error'); }
        } }, '×')))) : h('p', { class: 'muted' }, 'No saved views on this page yet.'),
      h('form', { class: 'row', onsubmit: async (e) => {
        e.preventDefault();
        const query = new URLSearchParams(this.params);
        query.delete('open');
        const list = views.filter((v) => !(v.page === this.kind.path && v.name === name.value.trim()));
        list.push({ name: name.value.trim(), page: this.kind.path, query: query.toString() });
        try { await save(list); dialog.close(); toast(`View "${name.value.trim()}" saved.`); } catch (err) { toast(explain(err), 'error'); }
      } }, name, h('button', { type: 'submit', class: 'primary' }, 'Save current view')));
  }

  // ---- data ----

  refresh() {
    if (!this.schema) return;
    if (this.abort) this.abort.abort();
    this.abort = new AbortController();
    const signal = this.abort.signal;
    this.renderFilters();
    this.loadList(signal);
    if (this.withFacets) {
      this.loadHistogram(signal);
      this.loadFacets(signal);
    }
    if (this.live) { this.stopLive(); this.startLive(); }
  }

  async loadList(signal, cursor) {
    if (!cursor) clear(this.tableEl, loading(`Loading ${this.kind.title.toLowerCase()}…`));
    const p = this.apiParams();
    p.set('limit', String(PAGE_SIZE));
    if (cursor) p.set('cursor', cursor);
    try {
      const page = await api(`${this.kind.api}?${p}`, { signal });
      if (!cursor) this.renderTable(page); else this.appendRows(page);
    } catch (err) {
      if (err.name === 'AbortError') return;
      clear(this.tableEl, errorBox(err, () => this.loadList(this.abort.signal)));
    }
  }

  async loadHistogram(signal) {
    clear(this.histEl, loading('Counting…'));
    const p = this.apiParams();
    p.delete('columns');
    p.set('buckets', String(Math.max(20, Math.min(120, Math.floor((this.root.clientWidth || 900) / 14)))));
    p.set('tz', ZONE);
    try {
      const data = await api(`${this.kind.api}/histogram?${p}`, { signal });
      const seconds = data.bucketSeconds;
      const points = data.points.map((pt) => {
        const start = new Date(pt.start);
        const end = new Date(pt.end);
        const fmt = seconds >= 86400 ? { dateStyle: 'medium' } : { dateStyle: 'short', timeStyle: 'short' };
        const known = pt.counts.reduce((a, b) => a + b, 0);
        const values = [...pt.counts];
        if (pt.total > known) values.push(pt.total - known);
        else values.push(0);
        return { start: start.toISOString(), end: end.toISOString(), label: dateFormat(fmt).format(start), values };
      });
      const names = [...data.series.values, 'other'];
      clear(this.histEl, stackedBars(points, names, {
        height: 120,
        width: Math.max(600, this.histEl.clientWidth || this.root.clientWidth || 900),
        tickLabel: (pt) => dateFormat(seconds >= 86400 ? { month: 'short', day: 'numeric' } : { month: 'short', day: 'numeric', hour: 'numeric', minute: '2-digit' }).format(new Date(pt.start)),
        title: `${this.kind.title} over time — click a bar or drag across bars to zoom`,
        onClick: (pt) => this.change((q) => { q.delete('range'); q.set('from', pt.start); q.set('to', pt.end); }),
        onRange: (a, b) => this.change((q) => { q.delete('range'); q.set('from', a); q.set('to', b); }),
      }));
    } catch (err) {
      if (err.name === 'AbortError') return;
      clear(this.histEl, errorBox(err));
    }
  }

  async loadFacets(signal) {
    clear(this.facetsEl, loading('Top values…'));
    const p = this.apiParams();
    p.delete('columns');
    try {
      const data = await api(`${this.kind.api}/facets?${p}`, { signal });
      this.countEl.textContent = `${fmtNum(data.total)} ${data.total === 1 ? this.kind.singular : `${this.kind.singular}s`} match`;
      clear(this.facetsEl, h('h2', { class: 'sr-only' }, 'Top values'), data.facets.map((f) => this.facet(f, data.total)));
    } catch (err) {
      if (err.name === 'AbortError') return;
      clear(this.facetsEl, errorBox(err));
    }
  }

  /** One field's top values; "Show more" asks for 50, then 100, of that field alone. */
  facet(facet, total, limit = FACET_VALUES) {
    const selected = (this.params.get(facet.field) || '').toLowerCase().split(',');
    const list = h('ul', {}, facet.values.map((v) => {
      const text = valueText(v.value);
      const empty = text === '';
      const active = !empty && selected.includes(text.toLowerCase());
      const bar = h('span', { class: 'facet-bar' });
      bar.style.width = `${total ? (100 * v.count) / total : 0}%`;
      return h('li', { class: active ? 'active' : '' },
        h('button', { class: 'facet-value', disabled: empty, title: empty ? 'Events without a value' : `Show only ${text}`,
          onclick: () => this.setFilter(facet.field, text) }, bar, h('span', { class: 'facet-text' }, empty ? '(empty)' : text), h('span', { class: 'facet-count' }, fmtNum(v.count))),
        h('button', { class: 'icon exclude', disabled: empty, 'aria-label': `Exclude ${text}`, title: `Exclude ${text}`,
          onclick: () => this.addExclusion(facet.field, text) }, '⊖'));
    }));
    const section = h('section', { class: 'facet' }, h('h3', {}, label(facet.field)), facet.values.length ? list : h('p', { class: 'muted' }, 'No values'));
    if (facet.values.length >= limit && limit < FACET_VALUES_MAX) {
      const next = limit < 50 ? 50 : FACET_VALUES_MAX;
      const more = h('button', { class: 'link facet-more', title: `Up to ${next} values of ${label(facet.field)}` }, 'Show more');
      more.addEventListener('click', async () => {
        more.disabled = true;
        const p = this.apiParams();
        p.delete('columns');
        p.set('fields', facet.field);
        p.set('n', String(next));
        try {
          const data = await api(`${this.kind.api}/facets?${p}`);
          section.replaceWith(this.facet(data.facets[0], data.total, next));
        } catch (err) {
          more.replaceWith(errorBox(err));
        }
      });
      section.append(more);
    }
    return section;
  }

  renderTable(page) {
    this.columns = page.columns.filter((c) => c !== 'id' && (c !== 'revision' || this.columnsShown().includes('revision')));
    this.tbody = h('tbody', {});
    const table = h('table', { class: 'log-table' },
      h('thead', {}, h('tr', {}, this.columns.map((c) => h('th', { scope: 'col' }, label(c))))), this.tbody);
    this.more = h('div', { class: 'more' });
    if (!page.items.length) {
      clear(this.tableEl, h('div', { class: 'empty-state' },
        h('strong', {}, `No ${this.kind.title.toLowerCase()} match these filters.`),
        h('p', {}, 'Widen the date range, remove a filter, or check that events are being sent to Signet (see the README, "Sending events").')));
      if (!this.withFacets) this.countEl.textContent = '';
      return;
    }
    this.appendRows(page);
    clear(this.tableEl, table, this.more);
    table.addEventListener('keydown', (e) => this.tableKeys(e));
  }

  appendRows(page, prepend = false) {
    const rows = page.items.map((item) => this.row(item, page.columns, prepend));
    if (prepend) this.tbody.prepend(...rows); else this.tbody.append(...rows);
    if (prepend) return;
    if (!this.withFacets) this.countEl.textContent = `${fmtNum(this.tbody.children.length)}${page.nextCursor ? '+' : ''} shown`;
    clear(this.more, page.nextCursor
      ? h('button', { class: 'load-more', onclick: (e) => { e.currentTarget.disabled = true; e.currentTarget.textContent = 'Loading…'; this.loadList(this.abort.signal, page.nextCursor); } },
        `Load ${PAGE_SIZE} more`)
      : h('p', { class: 'muted' }, `All ${fmtNum(this.tbody.children.length)} shown.`));
  }

  row(item, columns, fresh) {
    const tr = h('tr', { tabindex: 0, class: fresh ? 'fresh' : '', 'data-id': item.id,
      onclick: (e) => { if (!e.target.closest('.cell-filter')) this.openDetails(item.id); } });
    for (const c of this.columns) {
      const value = item[c];
      tr.append(h('td', { 'data-col': c }, this.cell(c, value)));
    }
    return tr;
  }

  cell(name, value) {
    const col = this.column(name);
    if (col && col.type === 'time') return timeEl(value);
    const text = valueText(value);
    if (text === '') return h('span', { class: 'muted' }, '—');
    let shown = text;
    if (name === 'status') shown = h('span', { class: `badge ${text}` }, text);
    if (!col || !col.filterable) return shown;
    const filterValue = Array.isArray(value) ? value[0] : text;
    return h('button', { class: 'cell-filter', title: `Filter by ${label(name)} = ${filterValue}`,
      onclick: (e) => { e.stopPropagation(); this.setFilter(name, filterValue); } }, shown);
  }

  tableKeys(e) {
    const tr = e.target.closest('tr');
    if (!tr || !tr.dataset.id) return;
    if (e.key === 'Enter' && e.target === tr) { e.preventDefault(); this.openDetails(tr.dataset.id); }
    if (e.key === 'ArrowDown' && tr.nextElementSibling) { e.preventDefault(); tr.nextElementSibling.focus(); }
    if (e.key === 'ArrowUp' && tr.previousElementSibling) { e.preventDefault(); tr.previousElementSibling.focus(); }
  }

  // ---- details ----

  async openDetails(id) {
    this.change((p) => p.set('open', id), { reload: false, replace: true });
    this.detailsEl.hidden = false;
    clear(this.detailsEl, loading('Loading details…'));
    const path = this.kind.own ? `/api/v1/signins/${encodeURIComponent(id)}` : `${this.kind.api}/${encodeURIComponent(id)}`;
    try {
      const detail = await api(path);
      this.renderDetails(detail);
    } catch (err) {
      clear(this.detailsEl, this.detailsHeader('Details'), errorBox(err));
    }
  }

  closeDetails() {
    this.detailsEl.hidden = true;
    this.change((p) => p.delete('open'), { reload: false, replace: true });
    const row = this.tbody && this.tbody.querySelector('tr:focus-within, tr.selected');
    if (row) row.focus();
  }

  detailsHeader(title) {
    return h('header', {}, h('h2', {}, title), h('button', { class: 'icon close-details', 'aria-label': 'Close details', onclick: () => this.closeDetails() }, '×'));
  }

  renderDetails(detail) {
    const latest = detail.revisions[detail.revisions.length - 1];
    const body = latest.body;
    const tabs = this.detailTabs(detail, body);
    const tablist = h('div', { class: 'tabs', role: 'tablist' });
    const panel = h('div', { class: 'tab-panel', role: 'tabpanel' });
    const select = (i) => {
      [...tablist.children].forEach((b, k) => { b.classList.toggle('active', k === i); b.setAttribute('aria-selected', String(k === i)); b.tabIndex = k === i ? 0 : -1; });
      clear(panel, tabs[i][1]());
    };
    tabs.forEach(([name], i) => tablist.append(h('button', { role: 'tab', class: 'tab', onclick: () => select(i),
      onkeydown: (e) => {
        if (e.key === 'ArrowRight') { select((i + 1) % tabs.length); tablist.children[(i + 1) % tabs.length].focus(); }
        if (e.key === 'ArrowLeft') { select((i + tabs.length - 1) % tabs.length); tablist.children[(i + tabs.length - 1) % tabs.length].focus(); }
      } }, name)));
    clear(this.detailsEl, this.detailsHeader(`${this.kind.singular.charAt(0).toUpperCase()}${this.kind.singular.slice(1)} details`), tablist, panel);
    select(0);
    this.detailsEl.addEventListener('keydown', (e) => { if (e.key === 'Escape') this.closeDetails(); });
    tablist.children[0].focus();
    this.detail = detail;
  }

  /** Label/value rows; values can be clicked to filter the list by them. */
  fields(rows) {
    return h('dl', { class: 'fields' }, rows.filter(Boolean).map(([name, value, filterKey]) => [
      h('dt', {}, name),
      h('dd', {}, value instanceof Node ? value
        : valueText(value) === '' ? h('span', { class: 'muted' }, '—')
          : filterKey && !this.kind.own ? h('button', { class: 'cell-filter', title: `Filter the list by ${name}`, onclick: () => this.setFilter(filterKey, valueText(value)) }, valueText(value))
            : valueText(value)),
    ]));
  }

  detailTabs(detail, b) {
    const raw = ['Raw JSON', () => h('div', {},
      detail.revisions.length > 1 ? h('p', { class: 'muted' }, `${detail.revisions.length} revisions were received; the latest is shown. Earlier ones:`) : null,
      h('pre', { class: 'json' }, JSON.stringify(b, null, 2)),
      detail.revisions.slice(0, -1).map((r) => h('details', {}, h('summary', {}, `Revision ${r.revision}, received `, timeEl(r.receivedDateTime)), h('pre', { class: 'json' }, JSON.stringify(r.body, null, 2)))))];
    if (this.kind.schema === 'signins') return this.signinTabs(detail, b, raw);
    if (this.kind.schema === 'directory-audits') {
      return [
        ['Activity', () => this.fields([['Date', timeEl(b.activityDateTime)], ['Activity', b.activityDisplayName, 'activityDisplayName'],
          ['Category', b.category, 'category'], ['Service', b.loggedByService, 'loggedByService'], ['Operation type', b.operationType, 'operationType'],
          ['Result', b.result, 'result'], ['Result reason', b.resultReason], ['Correlation id', b.correlationId, 'correlationId'], ['Id', b.id]])],
        ['Initiated by', () => {
          const u = (b.initiatedBy && b.initiatedBy.user) || {};
          const a = (b.initiatedBy && b.initiatedBy.app) || {};
          return this.fields([['User', u.displayName], ['User principal name', u.userPrincipalName, 'initiatedByUserPrincipalName'], ['User id', u.id],
            ['IP address', u.ipAddress, 'initiatedByIpAddress'], ['Application', a.displayName, 'initiatedByAppDisplayName'], ['Service principal', a.servicePrincipalName]]);
        }],
        ['Targets', () => h('div', {}, (b.targetResources || []).map((t) => h('section', { class: 'step' },
          h('h3', {}, `${t.type || 'Target'}: ${t.displayName || t.userPrincipalName || t.id || ''}`),
          this.fields([['Id', t.id], ['User principal name', t.userPrincipalName]]),
          (t.modifiedProperties || []).length ? h('table', { class: 'mini' }, h('thead', {}, h('tr', {}, h('th', {}, 'Property'), h('th', {}, 'Old value'), h('th', {}, 'New value'))),
            h('tbody', {}, t.modifiedProperties.map((m) => h('tr', {}, h('td', {}, m.displayName), h('td', {}, valueText(m.oldValue)), h('td', {}, valueText(m.newValue)))))) : null)))],
        ['Additional details', () => this.fields((b.additionalDetails || []).map((d) => [d.key, d.value]))],
        raw,
      ];
    }
    const get = (k) => b[k] ?? b[k.charAt(0).toUpperCase() + k.slice(1)];
    return [
      ['Basic info', () => this.fields([['Date', timeEl(get('creationTime'))], ['Operation', get('operation'), 'operation'], ['Category', get('category'), 'category'], ['Result', get('resultStatus'), 'resultStatus'],
        ['User', get('userId') || b.UserId, 'user'], ['User type', valueText(get('userType')), 'userType'], ['Client IP', b.ClientIP || get('clientIp'), 'clientIp'],
        ['Record type', valueText(get('recordType')), 'recordType'], ['Workload', get('workload'), 'workload'], ['Correlation id', b.CorrelationId || get('correlationId'), 'correlationId'], ['Id', b.Id || get('id')]])],
      ['Record', () => this.fields([['Entity', get('entityName'), 'entityName'], ['Entity id', b.EntityId || get('entityId'), 'entityId'], ['Item type', get('itemType'), 'itemType'],
        ['Item URL', b.ItemUrl || get('itemUrl')], ['Message', get('message')], ['Query', get('query')], ['Query results', valueText(get('queryResults'))], ['User agent', get('userAgent')]])],
      raw,
    ];
  }

  signinTabs(detail, b, raw) {
    const status = b.status || {};
    const loc = b.location || {};
    const geo = loc.geoCoordinates || {};
    const dev = b.deviceDetail || {};
    const code = detail.errorCode;
    return [
      ['Basic info', () => h('div', {}, this.fields([
        ['Date', timeEl(b.createdDateTime)], ['Request id', b.id], ['Correlation id', b.correlationId, 'correlationId'],
        ['User', b.userDisplayName, 'userDisplayName'], ['User principal name', b.userPrincipalName, 'userPrincipalName'], ['User id', b.userId, 'userId'],
        ['User type', b.userType, 'userType'], ['Application', b.appDisplayName, 'appDisplayName'], ['Application id', b.appId, 'appId'],
        ['Resource', b.resourceDisplayName, 'resourceDisplayName'], ['Client app', b.clientAppUsed, 'clientAppUsed'],
        ['Sign-in type', valueText(b.signInEventTypes || (b.isInteractive ? 'interactiveUser' : 'nonInteractiveUser'))],
        ['Status', h('span', { class: `badge ${status.errorCode === 0 ? 'success' : code && code.interrupt ? 'interrupted' : 'failure'}` }, status.errorCode === 0 ? 'Success' : code && code.interrupt ? 'Interrupted' : 'Failure')],
        ['Error code', status.errorCode ? String(status.errorCode) : '0', status.errorCode ? 'errorCode' : null], ['Failure reason', status.failureReason],
        ['Authentication requirement', b.authenticationRequirement, 'authenticationRequirement'],
        ['Risk (aggregated)', b.riskLevelAggregated, 'riskLevelAggregated'], ['Risk during sign-in', b.riskLevelDuringSignIn], ['Risk state', b.riskState],
        ['Received', timeEl(detail.revisions[detail.revisions.length - 1].receivedDateTime)],
      ]), code && status.errorCode ? h('section', { class: 'error-info' },
        h('h3', {}, `${code.name}`), h('p', {}, h('strong', {}, 'What it means: '), code.meaning), h('p', {}, h('strong', {}, 'What to do: '), code.remediation),
        h('a', { href: code.lookupUrl || `https://login.microsoftonline.com/error?code=${status.errorCode}`, target: '_blank', rel: 'noopener noreferrer' }, 'Look the code up at Microsoft')) : null)],
      ['Location', () => h('div', {}, this.fields([['IP address', b.ipAddress, 'ipAddress'], ['City', loc.city, 'city'], ['State', loc.state, 'state'],
        ['Country or region', loc.countryOrRegion, 'countryOrRegion'], ['Latitude', geo.latitude], ['Longitude', geo.longitude]]),
        h('p', { class: 'note' }, 'Location comes from IP geolocation by the identity provider. It is best effort: VPNs, proxies and mobile networks often place a sign-in far from the person.'))],
      ['Device info', () => this.fields([['Device id', dev.deviceId, 'deviceId'], ['Name', dev.displayName, 'deviceName'], ['Operating system', dev.operatingSystem, 'operatingSystem'],
        ['Browser', dev.browser, 'browser'], ['Compliant', valueText(dev.isCompliant)], ['Managed', valueText(dev.isManaged)], ['Join type', dev.trustType, 'trustType'],
        ['User agent', b.userAgent]])],
      ['Authentication details', () => {
        const steps = b.authenticationDetails || [];
        if (!steps.length) return h('p', { class: 'muted' }, 'The source sent no authentication steps for this sign-in.');
        return h('table', { class: 'mini' }, h('thead', {}, h('tr', {}, ['Date', 'Method', 'Detail', 'Succeeded', 'Result detail', 'Requirement'].map((t) => h('th', {}, t)))),
          h('tbody', {}, steps.map((s) => h('tr', {}, h('td', {}, timeEl(s.authenticationStepDateTime)), h('td', {}, s.authenticationMethod || '—'),
            h('td', {}, s.authenticationMethodDetail || '—'), h('td', {}, s.succeeded ? 'Yes' : 'No'), h('td', {}, s.authenticationStepResultDetail || '—'),
            h('td', {}, s.authenticationStepRequirement || b.authenticationRequirement || '—')))));
      }],
      ['Conditional access', () => {
        const policies = b.appliedConditionalAccessPolicies || [];
        return h('div', {}, this.fields([['Status', b.conditionalAccessStatus, 'conditionalAccessStatus']]),
          policies.length ? h('table', { class: 'mini' }, h('thead', {}, h('tr', {}, ['Policy', 'Result', 'Grant controls', 'Session controls'].map((t) => h('th', {}, t)))),
            h('tbody', {}, policies.map((p) => h('tr', {}, h('td', {}, p.displayName || p.id), h('td', {}, p.result || '—'),
              h('td', {}, valueText(p.enforcedGrantControls) || '—'), h('td', {}, valueText(p.enforcedSessionControls) || '—')))))
            : h('p', { class: 'muted' }, 'No conditional access policy applied to this sign-in.'));
      }],
      raw,
    ];
  }

  // ---- live mode ----

  toggleLive() {
    if (this.live) this.stopLive(); else this.startLive();
  }

  startLive() {
    const button = this.root.querySelector('.live-toggle');
    const p = this.apiParams();
    const source = new EventSource(`${this.kind.api}/live?${p}`);
    this.live = source;
    this.liveCount = 0;
    button.setAttribute('aria-pressed', 'true');
    button.classList.add('on');
    this.liveBanner.hidden = false;
    this.liveBanner.textContent = 'Live: waiting for new events…';
    source.addEventListener('rows', (e) => {
      const msg = JSON.parse(e.data);
      if (!this.tbody) { this.loadList(this.abort.signal); return; }
      this.appendRows({ columns: msg.columns, items: msg.items }, true);
      this.liveCount += msg.items.length + (msg.skipped || 0);
      this.liveBanner.textContent = `Live: ${fmtNum(this.liveCount)} new since live mode started${msg.skipped ? ` (${fmtNum(msg.skipped)} more than shown; reload the list to see all)` : ''}.`;
    });
    source.addEventListener('failed', (e) => { toast(`Live mode stopped: ${JSON.parse(e.data).message}`, 'error'); this.stopLive(); });
    source.onerror = () => { this.liveBanner.textContent = 'Live: connection lost, reconnecting…'; };
  }

  stopLive() {
    if (!this.live) return;
    this.live.close();
    this.live = null;
    const button = this.root.querySelector('.live-toggle');
    if (button) { button.setAttribute('aria-pressed', 'false'); button.classList.remove('on'); }
    this.liveBanner.hidden = true;
  }

  destroy() {
    this.stopLive();
    if (this.abort) this.abort.abort();
  }
}
