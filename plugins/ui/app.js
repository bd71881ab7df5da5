// tickforge status page: reads the API with the key kept in sessionStorage
// and draws what it finds. Served by plugins/ui/init.lua; no build step, no
// third-party code but lightweight-charts (window.LightweightCharts).
// The chart element carries data-bars="N" once N bars are drawn, and the
// jobs table data-jobs="N", for the headless-browser test.
(function () {
  'use strict';

  var KEY = 'tickforge.key';
  var POLL_MS = Number(new URLSearchParams(location.search).get('poll') || 5000);
  var state = { key: null, charts: null, chartKey: '', lastIngest: null, timer: null };

  function $(id) { return document.getElementById(id); }
  function esc(s) {
    return String(s === null || s === undefined ? '' : s).replace(/[&<>"']/g, function (c) {
      return { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c];
    });
  }
  function table(head, rows) {
    return '<table><tr>' + head.map(function (h) { return '<th>' + esc(h) + '</th>'; }).join('') + '</tr>' +
      rows.join('') + '</table>';
  }
  function fmtBytes(n) {
    if (n >= 1048576) return (n / 1048576).toFixed(1) + ' MB';
    if (n >= 1024) return (n / 1024).toFixed(1) + ' KB';
    return n + ' B';
  }
  function ago(iso) {
    if (!iso) return '—';
    var s = Math.round((Date.now() - Date.parse(iso)) / 1000);
    return s < 120 ? s + ' s ago' : s < 7200 ? Math.round(s / 60) + ' min ago' : Math.round(s / 3600) + ' h ago';
  }

  function span(s) {
    return s % 3600 === 0 ? s / 3600 + ' h' : s % 60 === 0 ? s / 60 + ' min' : s + ' s';
  }
  function until(iso) {
    var s = Math.max(0, Math.round((Date.parse(iso) - Date.now()) / 1000));
    return s < 120 ? s + ' s' : s < 7200 ? Math.round(s / 60) + ' min' : Math.round(s / 3600) + ' h';
  }

  function api(path, accept) {
    var headers = { 'X-API-Key': state.key };
    if (accept) headers.Accept = accept;
    return fetch(path, { headers: headers, cache: 'no-store' }).then(function (r) {
      var ct = r.headers.get('content-type') || '';
      return (ct.indexOf('json') >= 0 ? r.json() : r.text()).then(function (body) {
        return { status: r.status, body: body };
      });
    }, function (e) { return { status: 0, body: { error: String(e) } }; });
  }
  function errorText(r) {
    if (r.status === 401) return 'the key was refused (401): ' + (r.body && r.body.error || '');
    if (r.status === 403) return 'this key lacks the role for it (403)';
    if (r.status === 0) return 'the server does not answer';
    return 'HTTP ' + r.status + ': ' + (r.body && r.body.error || r.body);
  }

  // ---- key ----
  function takeKeyFromHash() {
    var m = location.hash.match(/key=([^&]+)/);
    if (m) {
      sessionStorage.setItem(KEY, decodeURIComponent(m[1]));
      history.replaceState(null, '', location.pathname + location.search);
    }
  }
  function askKey() {
    $('app').classList.add('hidden');
    $('key-form').classList.remove('hidden');
    $('key-input').focus();
  }

  // ---- panels ----
  function overview() {
    return api('/health').then(function (r) {
      var h = r.body || {};
      $('overview').innerHTML = 'version ' + esc(h.version) + ' · generation <b id="generation">' + esc(h.generation) +
        '</b> · up ' + esc(h.uptime_s) + ' s · database <span class="' + (h.database === 'ok' ? 'ok' : 'bad') + '">' +
        esc(h.database) + '</span>';
    });
  }

  function routes() {
    return api('/openapi.json').then(function (r) {
      if (r.status !== 200) { $('routes').innerHTML = '<span class="err">' + esc(errorText(r)) + '</span>'; return; }
      var rows = [];
      Object.keys(r.body.paths).forEach(function (path) {
        var item = r.body.paths[path];
        Object.keys(item).forEach(function (m) {
          var op = item[m];
          rows.push('<tr><td>' + esc(m.toUpperCase()) + '</td><td><code>' + esc(path) + '</code></td><td>' +
            esc(op['x-tickforge-auth']) + '</td><td class="num">' + esc(op['x-tickforge-max-body'] ? fmtBytes(op['x-tickforge-max-body']) : '') +
            '</td><td>' + esc(op.summary) + '</td></tr>');
        });
      });
      $('routes').innerHTML = table(['method', 'path', 'auth', 'body limit', 'summary'], rows);
    });
  }

  function jobs() {
    return api('/admin/jobs').then(function (r) {
      var el = $('jobs');
      if (r.status === 403 || r.status === 401) {
        el.innerHTML = '<span class="note">Jobs need a key with the admin role; this key does not have it.</span>';
        el.dataset.jobs = '-1';
        return;
      }
      if (r.status !== 200) { el.innerHTML = '<span class="err">' + esc(errorText(r)) + '</span>'; return; }
      var list = r.body.jobs || [];
      var rows = list.map(function (j) {
        var last = (j.history && j.history.length) ? j.history[j.history.length - 1] : null;
        var lastErr = null; // history's error holds the job's note on an ok run
        (j.history || []).forEach(function (h) { if (h.result !== 'ok' && h.error) lastErr = h; });
        return '<tr class="job"><td>' + esc(j.name) + (j.enabled ? '' : ' <span class="dim">(off)</span>') +
          (j.running ? ' <span class="ok">running</span>' : '') + '</td><td>' +
          esc(j.cron ? 'cron ' + j.cron : 'every ' + span(j.every_ms / 1000)) + '</td><td class="num">' + esc(j.runs) +
          '</td><td class="num ' + (j.failures ? 'bad' : '') + '">' + esc(j.failures) + '</td><td>' +
          (last ? '<span class="' + (last.result === 'ok' ? 'ok' : 'bad') + '">' + esc(last.result) + '</span> ' +
            esc(ago(last.started)) + ', ' + esc(Math.round(last.duration_ms)) + ' ms, ' + esc(last.rows) + ' rows' : '<span class="dim">never</span>') +
          (last && last.result === 'ok' && last.error ? ' <span class="dim">' + esc(last.error) + '</span>' : '') +
          '</td><td>' + esc(j.next_run ? until(j.next_run) : '') + '</td><td class="err">' +
          esc(lastErr ? lastErr.error + ' (' + ago(lastErr.started) + ')' : '') + '</td></tr>';
      });
      el.innerHTML = list.length ? table(['job', 'schedule', 'runs', 'failures', 'last run', 'next in', 'last error'], rows)
        : '<span class="note">no jobs registered</span>';
      el.dataset.jobs = String(list.length);
    });
  }

  // Per-plugin accounting from /admin/status: what each route and job cost
  // since the start, busiest first; data-costs="N" for the browser test.
  function costs(list) {
    var el = $('costs');
    var rows = (list || []).filter(function (c) { return c.calls > 0; }).map(function (c) {
      var per = function (v) { return c.calls ? v / c.calls : 0; };
      return [c.kind, c.name, c.plugin, c.calls, c.failures,
        (c.cpu_s * 1e3).toFixed(1) + ' ms', (per(c.cpu_s) * 1e3).toFixed(3) + ' ms',
        (per(c.wall_s) * 1e3).toFixed(3) + ' ms', (per(c.wait_s) * 1e3).toFixed(3) + ' ms',
        per(c.statements).toFixed(1), fmtBytes(Math.round(per(c.alloc_bytes)))];
    }).map(function (cells) {
      return '<tr>' + cells.map(function (v) { return '<td>' + esc(v) + '</td>'; }).join('') + '</tr>';
    });
    el.innerHTML = rows.length ? table(['kind', 'name', 'plugin', 'calls', 'failed', 'CPU total', 'CPU/call',
      'wall/call', 'waiting/call', 'statements/call', 'Lua alloc/call'], rows)
      : '<span class="note">nothing has run yet</span>';
    el.dataset.costs = String(rows.length);
  }

  function reloads() {
    return api('/admin/status').then(function (r) {
      var el = $('reload');
      if (r.status === 403 || r.status === 401) {
        el.innerHTML = '<span class="note">Reload status needs the admin role.</span>';
        $('costs').innerHTML = '<span class="note">Costs need the admin role.</span>';
        return;
      }
      if (r.status === 200) costs(r.body.accounting);
      if (r.status !== 200) { el.innerHTML = '<span class="err">' + esc(errorText(r)) + '</span>'; return; }
      var s = r.body, lr = s.last_reload || {};
      el.innerHTML = 'generation <b>' + esc(s.generation) + '</b>, config ' + esc(s.config) + '<br>last reload: ' +
        (lr.at ? '<span class="' + (lr.ok ? 'ok' : 'bad') + '">' + (lr.ok ? 'ok' : 'failed') + '</span> ' +
          esc(new Date(lr.at * 1000).toISOString()) + ' (' + esc(lr.trigger) + ')' : '<span class="dim">none since start</span>') +
        (lr.error ? '<div class="err">' + esc(lr.error) + '</div>' : '');
    });
  }

  // Counters of /metrics summed per kind; rates from the previous poll.
  function ingest() {
    return api('/metrics').then(function (r) {
      var el = $('ingest');
      if (r.status !== 200) { el.innerHTML = '<span class="note">' + esc(errorText(r)) + '</span>'; return; }
      var now = Date.now(), totals = {};
      String(r.body).split('\n').forEach(function (line) {
        var m = line.match(/^tf_ingest_items_total\{kind="([^"]+)",status="([^"]+)"\}\s+(\S+)/);
        if (m) totals[m[1] + ' ' + m[2]] = Number(m[3]);
      });
      var prev = state.lastIngest, rows = [];
      Object.keys(totals).sort().forEach(function (k) {
        var rate = prev && prev.totals[k] !== undefined ? (totals[k] - prev.totals[k]) / ((now - prev.at) / 1000) : null;
        rows.push('<tr><td>' + esc(k) + '</td><td class="num">' + esc(totals[k]) + '</td><td class="num">' +
          (rate === null ? '<span class="dim">…</span>' : esc(rate.toFixed(1)) + '/s') + '</td></tr>');
      });
      state.lastIngest = { at: now, totals: totals };
      el.innerHTML = rows.length ? table(['items', 'total', 'rate'], rows) : '<span class="note">nothing ingested since start</span>';
    });
  }

  function cache() {
    return api('/stats').then(function (r) {
      var el = $('cache');
      if (r.status === 404) { el.innerHTML = '<span class="note">this server has no /stats</span>'; return; }
      if (r.status !== 200) { el.innerHTML = '<span class="note">' + esc(errorText(r)) + '</span>'; return; }
      var c = r.body.cache || r.body, rows = [];
      rows.push('<tr><td>all</td><td class="num">' + esc(c.hits) + '</td><td class="num">' + esc(c.misses) + '</td><td class="num">' +
        esc(c.hit_rate !== undefined ? (100 * c.hit_rate).toFixed(1) + ' %' : '') + '</td><td class="num">' + esc(c.entries) +
        '</td><td class="num">' + esc(c.bytes !== undefined ? fmtBytes(c.bytes) : '') + '</td></tr>');
      Object.keys(c.prefixes || {}).sort().forEach(function (p) {
        var x = c.prefixes[p];
        rows.push('<tr><td>' + esc(p) + '</td><td class="num">' + esc(x.hits) + '</td><td class="num">' + esc(x.misses) +
          '</td><td></td><td class="num">' + esc(x.entries) + '</td><td class="num">' + esc(fmtBytes(x.bytes || 0)) + '</td></tr>');
      });
      el.innerHTML = table(['prefix', 'hits', 'misses', 'hit rate', 'entries', 'bytes'], rows) +
        '<div class="dim">evictions ' + esc(c.evictions) + ', expired ' + esc(c.expired) + ', max ' + esc(fmtBytes(c.max_bytes || 0)) + '</div>';
    });
  }

  // ---- chart ----
  function symbols() {
    return api('/symbols').then(function (r) {
      if (r.status !== 200) { $('chart-status').textContent = errorText(r); return; }
      var sel = $('symbol'), want = new URLSearchParams(location.search).get('symbol') || sel.value;
      state.symbols = r.body.symbols;
      sel.innerHTML = r.body.symbols.filter(function (s) { return s.timeframes.length; }).map(function (s) {
        return '<option' + (s.symbol === want ? ' selected' : '') + '>' + esc(s.symbol) + '</option>';
      }).join('');
      fillTimeframes();
    });
  }
  function fillTimeframes() {
    var sel = $('timeframe'), sym = $('symbol').value;
    var want = sel.value || new URLSearchParams(location.search).get('timeframe');
    var s = (state.symbols || []).filter(function (x) { return x.symbol === sym; })[0];
    sel.innerHTML = (s ? s.timeframes : []).map(function (t) {
      return '<option' + (t.timeframe === want ? ' selected' : '') + '>' + esc(t.timeframe) + '</option>';
    }).join('');
  }

  function makeCharts() {
    var LC = window.LightweightCharts;
    var base = { layout: { background: { color: '#171d24' }, textColor: '#d6dde4' },
      grid: { vertLines: { color: '#222a33' }, horzLines: { color: '#222a33' } },
      timeScale: { timeVisible: true, secondsVisible: false }, rightPriceScale: { minimumWidth: 70 } };
    function mk(id) {
      var el = $(id);
      return LC.createChart(el, Object.assign({ width: el.clientWidth, height: el.clientHeight }, base));
    }
    var price = mk('price'), rsi = mk('rsi'), macd = mk('macd');
    var c = {
      price: price, rsi: rsi, macd: macd,
      candles: price.addCandlestickSeries({ upColor: '#3fb950', downColor: '#f85149', borderVisible: false,
        wickUpColor: '#3fb950', wickDownColor: '#f85149', priceFormat: { type: 'price', precision: 5, minMove: 0.00001 } }),
      ma: price.addLineSeries({ color: '#e3b341', lineWidth: 1, title: 'MA 20', priceFormat: { type: 'price', precision: 5, minMove: 0.00001 } }),
      bbUpper: price.addLineSeries({ color: '#58a6ff', lineWidth: 1, lineStyle: 2, title: 'BB' }),
      bbLower: price.addLineSeries({ color: '#58a6ff', lineWidth: 1, lineStyle: 2 }),
      rsiLine: rsi.addLineSeries({ color: '#d2a8ff', lineWidth: 1, title: 'RSI' }),
      macdLine: macd.addLineSeries({ color: '#58a6ff', lineWidth: 1, title: 'MACD', priceFormat: { type: 'price', precision: 6, minMove: 0.000001 } }),
      signal: macd.addLineSeries({ color: '#f0883e', lineWidth: 1, title: 'signal' }),
      hist: macd.addHistogramSeries({ color: '#8a96a3' }),
    };
    // the panes follow the price chart's visible range
    price.timeScale().subscribeVisibleLogicalRangeChange(function (range) {
      if (range) { rsi.timeScale().setVisibleLogicalRange(range); macd.timeScale().setVisibleLogicalRange(range); }
    });
    window.addEventListener('resize', function () {
      ['price', 'rsi', 'macd'].forEach(function (id) { c[id].applyOptions({ width: $(id).clientWidth }); });
    });
    return c;
  }

  function drawChart() {
    var sym = $('symbol').value, tf = $('timeframe').value, limit = $('limit').value;
    var el = $('chart');
    if (!window.LightweightCharts) {
      el.dataset.chart = 'missing';
      $('chart-status').innerHTML = '<span class="err">The chart library is missing: run <code>make deps</code> ' +
        '(it fetches lightweight-charts from the npm registry into build/ui/) and restart or reload.</span>';
      return Promise.resolve();
    }
    if (!sym || !tf) { $('chart-status').textContent = 'no bars stored yet'; return Promise.resolve(); }
    var path = '/candles?symbol=' + encodeURIComponent(sym) + '&timeframe=' + encodeURIComponent(tf) +
      '&limit=' + encodeURIComponent(limit) + '&set=mt5_default';
    return api(path).then(function (r) {
      if (r.status !== 200) { $('chart-status').textContent = errorText(r); return; }
      if (!state.charts) state.charts = makeCharts();
      var c = state.charts, rows = r.body.candles;
      function t(row) { return Date.parse(row.ts) / 1000; }
      function line(col) {
        return rows.filter(function (x) { return x[col] !== null && x[col] !== undefined; })
          .map(function (x) { return { time: t(x), value: x[col] }; });
      }
      c.candles.setData(rows.map(function (x) { return { time: t(x), open: x.open, high: x.high, low: x.low, close: x.close }; }));
      c.ma.setData(line('bb_middle'));
      c.bbUpper.setData(line('bb_upper'));
      c.bbLower.setData(line('bb_lower'));
      c.rsiLine.setData(line('rsi'));
      c.macdLine.setData(line('macd'));
      c.signal.setData(line('macd_signal'));
      c.hist.setData(rows.filter(function (x) { return x.macd_hist !== null; }).map(function (x) {
        return { time: t(x), value: x.macd_hist, color: x.macd_hist >= 0 ? '#3fb95099' : '#f8514999' };
      }));
      var key = sym + '|' + tf + '|' + limit;
      if (state.chartKey !== key) { c.price.timeScale().fitContent(); state.chartKey = key; }
      el.dataset.bars = String(rows.length);
      el.dataset.indicators = r.body.indicators_source || '';
      $('chart-status').textContent = rows.length + ' bars, indicators ' + (r.body.indicators_source || '') +
        (rows.length ? ', last ' + rows[rows.length - 1].ts : '');
    });
  }

  function refresh() {
    return Promise.all([overview(), jobs(), reloads(), ingest(), cache(), drawChart()]).catch(function (e) {
      $('chart-status').textContent = 'error: ' + e;
    });
  }

  function start() {
    state.key = sessionStorage.getItem(KEY);
    if (!state.key) { askKey(); return; }
    $('key-form').classList.add('hidden');
    $('app').classList.remove('hidden');
    // one check of the key: /symbols needs the read role
    api('/symbols').then(function (r) {
      if (r.status === 401 || r.status === 403) {
        sessionStorage.removeItem(KEY);
        askKey();
        $('key-entry').insertAdjacentHTML('afterend', '<p class="err">' + esc(errorText(r)) + '</p>');
        return;
      }
      routes();
      symbols().then(refresh).then(function () {
        document.body.dataset.ready = '1';
        state.timer = setInterval(function () { refresh(); }, POLL_MS);
      });
    });
  }

  $('key-entry').addEventListener('submit', function (ev) {
    ev.preventDefault();
    var k = $('key-input').value.trim();
    if (k) { sessionStorage.setItem(KEY, k); start(); }
  });
  $('forget-key').addEventListener('click', function () { sessionStorage.removeItem(KEY); location.reload(); });
  $('symbol').addEventListener('change', function () { fillTimeframes(); drawChart(); });
  $('timeframe').addEventListener('change', drawChart);
  $('limit').addEventListener('change', drawChart);

  takeKeyFromHash();
  start();
})();
