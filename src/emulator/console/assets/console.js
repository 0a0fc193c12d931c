// The console page's script: plain browser JavaScript, no framework. Live data comes from two Server-Sent Events
// streams (the fleet, and the selected shadow); the page never polls.
(() => {
  const $ = (id) => document.getElementById(id);
  // Rows rendered at most: the search narrows a large fleet, and a short table keeps first paint and layout cheap.
  const MAX_ROWS = 150;
  // aircon-2 before aircon-10.
  const byName = new Intl.Collator('en', { numeric: true });
  const KINDS = ['app', 'device', 'other', 'conflict', 'throttled'];
  const metrics = {
    events: 0,
    lastLagMs: undefined,
    maxLagMs: 0,
    lagSamples: [],
    longTasks: 0,
    longTaskMs: 0,
  };
  const state = { shadows: new Map(), rows: new Map(), filter: '', selected: undefined, detail: undefined };
  window.shadowConsole = { metrics, state, ready: false };

  const esc = (text) =>
    String(text).replace(
      /[&<>"']/g,
      (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c],
    );
  // Thing and shadow names cannot contain '/', so it separates them (a NUL would not survive an HTML attribute).
  const keyOf = (thing, shadow) => `${thing}/${shadow}`;
  const pad = (n) => String(n).padStart(2, '0');
  const clock = (ms) => {
    if (!ms) return '—';
    const d = new Date(ms);
    return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  };
  const isObject = (v) => typeof v === 'object' && v !== null && !Array.isArray(v);

  function noteLag(at) {
    if (!at) return;
    const lag = Date.now() - at;
    metrics.lastLagMs = lag;
    if (lag > metrics.maxLagMs) metrics.maxLagMs = lag;
    metrics.lagSamples.push(lag);
    if (metrics.lagSamples.length > 1000) metrics.lagSamples.shift();
  }

  if (typeof PerformanceObserver === 'function') {
    try {
      new PerformanceObserver((list) => {
        for (const entry of list.getEntries()) {
          metrics.longTasks++;
          metrics.longTaskMs += entry.duration;
        }
      }).observe({ type: 'longtask', buffered: true });
    } catch {
      // Long-task timing is not available in every browser; the lag figures still are.
    }
  }

  // ---- fleet list ----------------------------------------------------------------------------------------------

  const matches = (s) =>
    state.filter === '' ||
    s.thing.toLowerCase().includes(state.filter) ||
    s.shadow.toLowerCase().includes(state.filter);

  function rowHtml(s) {
    return (
      `<td title="${esc(s.thing)}">${esc(s.thing)}</td><td>${s.shadow === '' ? '<span class="muted">classic</span>' : esc(s.shadow)}</td>` +
      `<td class="num">${s.version}</td><td>${clock(s.updatedAt)}</td><td>${s.delta ? '<span class="dot" title="delta pending"></span>' : ''}</td>`
    );
  }

  function renderList() {
    const tbody = $('rows');
    const list = [...state.shadows.values()].filter(matches);
    list.sort((a, b) => byName.compare(a.thing, b.thing) || byName.compare(a.shadow, b.shadow));
    const shown = list.slice(0, MAX_ROWS);
    const html = [];
    for (const s of shown) {
      const key = keyOf(s.thing, s.shadow);
      html.push(
        `<tr data-key="${esc(key)}" class="${s.deleted ? 'deleted' : ''}${key === state.selected ? ' sel' : ''}">${rowHtml(s)}</tr>`,
      );
    }
    tbody.innerHTML = html.join('');
    state.rows.clear();
    for (const tr of tbody.rows) state.rows.set(tr.dataset.key, tr);
    $('more').textContent =
      list.length > MAX_ROWS ? `${list.length - MAX_ROWS} more match: refine the search` : '';
    $('counts').textContent = `${state.shadows.size} shadows`;
  }

  function applySummaries(summaries) {
    let rerender = false;
    for (const s of summaries) {
      const key = keyOf(s.thing, s.shadow);
      const known = state.shadows.has(key);
      state.shadows.set(key, s);
      if (!matches(s)) continue;
      const tr = state.rows.get(key);
      if (tr === undefined) {
        if (!known || state.rows.size < MAX_ROWS) rerender = true;
        continue;
      }
      tr.innerHTML = rowHtml(s);
      tr.className = `${s.deleted ? 'deleted' : ''}${key === state.selected ? ' sel' : ''}`;
      // The Web Animations API needs no forced layout (re-adding a CSS class would, for every changed row).
      tr.animate?.([{ background: '#fff3c4' }, { background: 'transparent' }], 800);
    }
    if (rerender) renderList();
    else $('counts').textContent = `${state.shadows.size} shadows`;
    if (state.detail !== undefined) {
      const s = state.shadows.get(state.selected);
      if (s !== undefined) renderHead(s);
    }
    let newest = 0;
    for (const s of summaries) if (s.updatedAt > newest) newest = s.updatedAt;
    noteLag(newest);
    if (metrics.lastLagMs !== undefined) $('lag').textContent = `live lag ${metrics.lastLagMs} ms`;
  }

  $('search').addEventListener('input', (event) => {
    state.filter = event.target.value.trim().toLowerCase();
    renderList();
  });
  $('rows').addEventListener('click', (event) => {
    const tr = event.target.closest('tr');
    if (tr?.dataset.key !== undefined) select(tr.dataset.key);
  });

  // ---- charts --------------------------------------------------------------------------------------------------

  function drawChart(svg, totals, series) {
    const rows = series.rows;
    const w = 360;
    const h = svg.viewBox.baseVal.height;
    const perMin = 60000 / series.bucketMs;
    let max = 1;
    for (const r of rows) max = Math.max(max, r[0] + r[1] + r[2], r[3], r[4]);
    const bw = w / rows.length;
    const parts = [];
    const lines = { conflict: [], throttled: [] };
    rows.forEach((r, i) => {
      let y = h;
      for (let k = 0; k < 3; k++) {
        if (r[k] === 0) continue;
        const bh = (r[k] / max) * (h - 4);
        y -= bh;
        parts.push(
          `<rect class="${KINDS[k]}" x="${(i * bw + 0.5).toFixed(1)}" y="${y.toFixed(1)}" width="${Math.max(bw - 1, 0.5).toFixed(1)}" height="${bh.toFixed(1)}"/>`,
        );
      }
      const x = (i * bw + bw / 2).toFixed(1);
      lines.conflict.push(`${x},${(h - (r[3] / max) * (h - 4)).toFixed(1)}`);
      lines.throttled.push(`${x},${(h - (r[4] / max) * (h - 4)).toFixed(1)}`);
    });
    parts.push(`<polyline class="conflict" points="${lines.conflict.join(' ')}"/>`);
    parts.push(`<polyline class="throttled" points="${lines.throttled.join(' ')}"/>`);
    svg.innerHTML = parts.join('');
    const last = rows[rows.length - 1] ?? [0, 0, 0, 0, 0];
    const sum = rows.reduce((acc, r) => acc.map((v, k) => v + r[k]), [0, 0, 0, 0, 0]);
    const minutes = (rows.length * series.bucketMs) / 60000;
    totals.textContent =
      `now ${Math.round((last[0] + last[1] + last[2]) * perMin)} versions/min (scale ${Math.round(max * perMin)}/min) · last ${minutes} min: ` +
      `app ${sum[0]}, device ${sum[1]}, other ${sum[2]}, 409 ${sum[3]}, 429 ${sum[4]}`;
    svg.dataset.totals = JSON.stringify(sum);
  }

  // ---- one shadow ----------------------------------------------------------------------------------------------

  /** A section with each leaf's metadata timestamp beside it. */
  function sectionHtml(value, meta, previous, indent) {
    if (value === undefined) return '<span class="muted">—</span>';
    const lines = [];
    const walk = (v, m, p, depth, label) => {
      const pre =
        '&nbsp;'.repeat(depth * 2) + (label === undefined ? '' : `<span class="k">${esc(label)}</span>: `);
      if (isObject(v)) {
        if (label !== undefined) lines.push(`<div class="kv">${pre}</div>`);
        for (const k of Object.keys(v))
          walk(
            v[k],
            isObject(m) ? m[k] : undefined,
            isObject(p) ? p[k] : undefined,
            label === undefined ? depth : depth + 1,
            k,
          );
        return;
      }
      const ts =
        isObject(m) && typeof m.timestamp === 'number'
          ? clock(m.timestamp * 1000)
          : Array.isArray(m)
            ? ''
            : '';
      const changed = p !== undefined && JSON.stringify(p) !== JSON.stringify(v);
      lines.push(
        `<div class="kv${changed ? ' changed' : ''}">${pre}<span class="v">${esc(JSON.stringify(v))}</span><span class="ts">${ts}</span></div>`,
      );
    };
    walk(value, meta, previous, indent, undefined);
    return lines.join('') || '<span class="muted">{}</span>';
  }

  function renderHead(s) {
    // The version badge follows the document shown in the panes (its own stream), never a newer summary, so that
    // what an edit is based on is always what the page shows.
    $('d-updated').textContent = `updated ${clock(s.updatedAt)}`;
    $('d-delta').innerHTML = s.deleted
      ? '<span class="pill down">deleted</span>'
      : s.delta
        ? '<span class="pill" style="color:var(--throttled)">delta pending</span>'
        : '<span class="pill live">in sync</span>';
  }

  function renderDocument(doc) {
    const d = state.detail;
    const prev = d.document;
    d.document = doc;
    if (doc === null) {
      for (const id of ['desired', 'reported', 'delta'])
        $(id).innerHTML = '<span class="muted">no shadow</span>';
      $('d-version').textContent = 'absent';
      return;
    }
    $('desired').innerHTML = sectionHtml(doc.state.desired, doc.metadata.desired, prev?.state?.desired, 0);
    $('reported').innerHTML = sectionHtml(
      doc.state.reported,
      doc.metadata.reported,
      prev?.state?.reported,
      0,
    );
    $('delta').innerHTML = sectionHtml(doc.state.delta, doc.metadata.desired, undefined, 0);
    $('d-version').textContent = `v${doc.version}`;
    $('desired').dataset.version = String(doc.version);
    if (d.editing !== undefined)
      $('edit-note').textContent =
        doc.version === d.editing.version
          ? ''
          : `the shadow is now at v${doc.version}; your edit is based on v${d.editing.version}`;
  }

  function addTimeline(entries) {
    const box = $('timeline');
    for (const e of entries) {
      const span = document.createElement('span');
      span.className = e.kind;
      span.textContent = `v${e.version}`;
      span.title = `${e.kind} · ${e.source} · ${clock(e.at)}`;
      box.appendChild(span);
    }
    while (box.children.length > 60) box.firstChild.remove();
  }

  function addMessages(entries) {
    const d = state.detail;
    for (const m of entries) d.messages.push(m);
    d.messages.sort((a, b) => b.seq - a.seq);
    d.messages.length = Math.min(d.messages.length, 50);
    $('messages').innerHTML = d.messages
      .map(
        (m) =>
          `<div class="msg${m.topic.endsWith('/rejected') ? ' rejected' : ''}"><span>${clock(m.at)}</span><span title="${m.direction === 'in' ? 'from a client' : 'from the service'}">${m.direction === 'in' ? '→' : '←'}</span><span class="topic">${esc(m.topic)}</span><span class="payload">${esc(m.payload)}</span></div>`,
      )
      .join('');
  }

  function logEdit(cls, text) {
    const li = document.createElement('li');
    li.className = cls;
    li.textContent = text;
    $('edit-log').appendChild(li);
  }

  function describeEditEvent(e) {
    switch (e.type) {
      case 'attempt':
        return [
          '',
          `attempt ${e.attempt}: ${e.operation === 'get' ? 're-read the shadow' : `update expecting v${e.expectedVersion ?? '—'}`}`,
        ];
      case 'conflict':
        return [
          'conflict',
          `409 version conflict: v${e.expectedVersion} is stale, re-reading and re-applying the edit`,
        ];
      case 'retry':
        return ['', `waiting ${e.delayMs} ms (${e.reason})`];
      case 'skipped':
        return ['ok', 'nothing to change: the edit is already in place'];
      default:
        return ['', `${e.type} ${e.reason ?? ''}`];
    }
  }

  function select(key) {
    if (state.detail !== undefined) state.detail.source.close();
    state.selected = key;
    for (const [k, tr] of state.rows) tr.classList.toggle('sel', k === key);
    const cut = key.indexOf('/');
    const thing = key.slice(0, cut);
    const shadow = key.slice(cut + 1);
    $('detail').hidden = false;
    $('empty').hidden = true;
    $('d-title').textContent = shadow === '' ? `${thing} · classic shadow` : `${thing} · ${shadow}`;
    $('d-version').textContent = '…';
    $('timeline').innerHTML = '';
    $('messages').innerHTML = '';
    $('edit-log').innerHTML = '';
    $('editor').hidden = true;
    const source = new EventSource(
      `/console/events?thing=${encodeURIComponent(thing)}&shadow=${encodeURIComponent(shadow)}`,
    );
    const detail = {
      key,
      thing,
      shadow,
      source,
      document: undefined,
      messages: [],
      editing: undefined,
      editInFlight: false,
    };
    state.detail = detail;
    const summary = state.shadows.get(key);
    if (summary !== undefined) renderHead(summary);
    history.replaceState(null, '', `#${encodeURIComponent(thing)}/${encodeURIComponent(shadow)}`);
    const on = (name, handle) =>
      source.addEventListener(name, (event) => {
        if (state.detail !== detail) return;
        metrics.events++;
        handle(JSON.parse(event.data));
      });
    on('snapshot', (snap) => {
      $('timeline').innerHTML = '';
      detail.messages = [];
      renderDocument(snap.document);
      addTimeline(snap.timeline);
      addMessages(snap.messages);
      drawChart($('thing-chart'), $('thing-totals'), snap.stats);
    });
    on('doc', renderDocument);
    on('timeline', addTimeline);
    on('messages', addMessages);
    on('stats', (series) => drawChart($('thing-chart'), $('thing-totals'), series));
    on('shadows', (summaries) => {
      for (const s of summaries) if (keyOf(s.thing, s.shadow) === key) renderHead(s);
    });
    on('edit', (events) => {
      // Live progress while this page's edit is in flight; its answer then lists every event in order.
      if (detail.editInFlight) for (const e of events) logEdit(...describeEditEvent(e));
    });
  }

  // ---- editing desired -----------------------------------------------------------------------------------------

  /** The update that turns `from` into `to`: changed keys, nested objects diffed, removed keys set to null. */
  function diff(from, to) {
    const out = {};
    let changed = false;
    for (const k of Object.keys(from)) {
      if (!(k in to)) {
        out[k] = null;
        changed = true;
      }
    }
    for (const k of Object.keys(to)) {
      const a = from[k];
      const b = to[k];
      if (isObject(a) && isObject(b)) {
        const inner = diff(a, b);
        if (inner !== undefined) {
          out[k] = inner;
          changed = true;
        }
      } else if (JSON.stringify(a) !== JSON.stringify(b)) {
        out[k] = b;
        changed = true;
      }
    }
    return changed ? out : undefined;
  }

  $('edit').addEventListener('click', () => {
    const d = state.detail;
    if (d === undefined) return;
    const doc = d.document;
    const desired = doc?.state?.desired ?? {};
    d.editing = { version: doc ? doc.version : undefined, desired };
    $('edit-text').value = JSON.stringify(desired, null, 2);
    $('edit-base').textContent = doc ? `editing desired as of v${doc.version}` : 'creating the shadow';
    $('edit-note').textContent = '';
    $('editor').hidden = false;
    $('edit-text').focus();
  });
  $('cancel').addEventListener('click', () => {
    if (state.detail !== undefined) state.detail.editing = undefined;
    $('editor').hidden = true;
  });
  $('editor').addEventListener('submit', async (event) => {
    event.preventDefault();
    const d = state.detail;
    if (d === undefined || d.editing === undefined) return;
    const text = $('edit-text').value;
    const version = d.editing.version === undefined ? '' : `,"version":${d.editing.version}`;
    let body;
    try {
      const edited = JSON.parse(text);
      const change = isObject(edited) ? (diff(d.editing.desired, edited) ?? {}) : edited;
      body = `{"state":{"desired":${JSON.stringify(change)}}${version}}`;
    } catch {
      // Not JSON: sent as typed, so the service answers with the same error the HTTP API gives.
      body = `{"state":{"desired":${text}}${version}}`;
    }
    $('edit-log').innerHTML = '';
    $('save').disabled = true;
    d.editInFlight = true;
    try {
      const response = await fetch(
        `/console/api/update?thing=${encodeURIComponent(d.thing)}&shadow=${encodeURIComponent(d.shadow)}`,
        { method: 'POST', headers: { 'content-type': 'application/json' }, body },
      );
      const answer = await response.json();
      d.editInFlight = false;
      if (state.detail !== d) return;
      // The answer can overtake the last streamed events: redraw the log from the answer's own list.
      $('edit-log').innerHTML = '';
      for (const e of answer.events ?? []) logEdit(...describeEditEvent(e));
      if (response.ok) {
        logEdit(
          'ok',
          answer.skipped
            ? `done: nothing to change (v${answer.version})`
            : `accepted as v${answer.version} after ${answer.attempts} attempt(s)`,
        );
        d.editing = undefined;
        $('editor').hidden = true;
      } else {
        logEdit('error', `${response.status} ${answer.__type}: ${answer.message}`);
      }
    } catch (error) {
      logEdit('error', `request failed: ${error}`);
    } finally {
      d.editInFlight = false;
      $('save').disabled = false;
    }
  });

  // ---- the fleet stream ----------------------------------------------------------------------------------------

  function connect() {
    const source = new EventSource('/console/events');
    source.addEventListener('open', () => {
      $('conn').textContent = 'live';
      $('conn').className = 'pill live';
    });
    source.addEventListener('error', () => {
      $('conn').textContent = 'reconnecting…';
      $('conn').className = 'pill down';
    });
    source.addEventListener('snapshot', (event) => {
      const snap = JSON.parse(event.data);
      state.shadows.clear();
      for (const s of snap.shadows) state.shadows.set(keyOf(s.thing, s.shadow), s);
      renderList();
      drawChart($('fleet-chart'), $('fleet-totals'), snap.stats);
      window.shadowConsole.ready = true;
      // The list is painted in the frame after this one's rendering: measured from navigation start.
      requestAnimationFrame(() =>
        setTimeout(() => {
          window.shadowConsole.firstPaintMs ??= performance.now();
        }, 0),
      );
      const hash = decodeURIComponent(location.hash.slice(1));
      if (state.selected === undefined && hash.includes('/')) {
        const cut = hash.lastIndexOf('/');
        const key = keyOf(hash.slice(0, cut), hash.slice(cut + 1));
        if (state.shadows.has(key)) select(key);
      }
    });
    source.addEventListener('shadows', (event) => {
      metrics.events++;
      applySummaries(JSON.parse(event.data));
    });
    source.addEventListener('stats', (event) =>
      drawChart($('fleet-chart'), $('fleet-totals'), JSON.parse(event.data)),
    );
  }
  connect();
})();
