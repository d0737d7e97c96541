// mail2archer operator console.
//
// Every value shown here comes, in the end, from a reported email or an
// outside system, so the page is built with createElement and textContent
// only: no string is ever parsed as HTML. A link is made only from an
// http(s) URL. The page talks to the admin API of its own origin.
'use strict';

(function () {
  const TOKEN_KEY = 'mail2archer.adminToken';
  const POLL_MS = 2000;
  const LIMIT = 200;
  const STATES = ['failed', 'waiting', 'retrying', 'running', 'queued', 'done'];
  const QUEUE = ['available', 'running', 'retryable', 'scheduled', 'cancelled', 'discarded', 'completed'];

  const $ = (id) => document.getElementById(id);
  let timer = 0, inFlight = false, again = false, needLogin = false;
  let selected = null; // {mailbox, message_id} of the report whose history is shown
  let last = {}; // the JSON last rendered in each panel, to skip needless redraws

  // ---- small helpers -------------------------------------------------

  const str = (v) => (v === null || v === undefined ? '' : String(v));
  // clip bounds a value's length on screen.
  const clip = (v, n) => (str(v).length > n ? str(v).slice(0, n - 1) + '…' : str(v));
  const list = (v) => (Array.isArray(v) ? v.filter((x) => x !== null && typeof x === 'object') : []);

  // el makes an element with an optional class and text.
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function cell(text, cls) {
    return el('td', cls, text);
  }

  const knownState = (s) => (STATES.includes(s) ? s : 'unknown');

  // badge shows a state in words and in colour.
  const badge = (state, text) => el('span', 'badge badge-' + state, text === undefined ? state : text);

  // when shows a time in the browser's zone as YYYY-MM-DD HH:MM:SS.
  function when(s) {
    if (!s) return '';
    const d = new Date(s);
    if (Number.isNaN(d.getTime())) return clip(s, 40);
    const p = (n) => String(n).padStart(2, '0');
    return d.getFullYear() + '-' + p(d.getMonth() + 1) + '-' + p(d.getDate()) + ' ' +
      p(d.getHours()) + ':' + p(d.getMinutes()) + ':' + p(d.getSeconds());
  }

  // addrCell shows an address that may break before its @ only.
  function addrCell(v) {
    const s = clip(v, 200);
    const td = cell(null, 'addr');
    const at = s.lastIndexOf('@');
    if (at > 0) td.append(s.slice(0, at), el('wbr'), s.slice(at)); else td.textContent = s;
    return td;
  }

  function timeCell(s) {
    const td = cell(when(s), 'nowrap');
    td.title = str(s);
    return td;
  }

  function duration(seconds) {
    let s = Math.abs(Math.round(Number(seconds) || 0));
    const d = Math.floor(s / 86400);
    const h = Math.floor((s % 86400) / 3600);
    const m = Math.floor((s % 3600) / 60);
    s %= 60;
    if (d > 0) return d + ' d ' + h + ' h';
    if (h > 0) return h + ' h ' + m + ' min';
    if (m > 0) return m + ' min';
    return s + ' s';
  }

  // recordNode links the record id to record_url when that is an http(s)
  // URL, and shows the id as plain text otherwise.
  function recordNode(r) {
    const id = str(r.record_id);
    if (!id) return document.createTextNode('');
    const url = str(r.record_url);
    if (!/^https?:\/\/[^\s]+$/i.test(url)) return el('span', 'record-id', id);
    const a = el('a', 'record-id', id);
    a.href = url;
    a.target = '_blank';
    a.rel = 'noopener noreferrer';
    a.title = 'Open record ' + id + ' in Archer';
    return a;
  }

  // message shows a notice; one that is not an error goes after 15 s.
  let messageTimer = 0;
  function message(text, isError) {
    const m = $('message');
    m.textContent = text || '';
    m.hidden = !text;
    m.classList.toggle('error', !!isError);
    clearTimeout(messageTimer);
    if (text && !isError) messageTimer = setTimeout(() => message(''), 15000);
  }

  function getToken() {
    try { return sessionStorage.getItem(TOKEN_KEY) || ''; } catch (e) { return ''; } // storage disabled
  }

  function setToken(t) {
    try {
      if (t) sessionStorage.setItem(TOKEN_KEY, t); else sessionStorage.removeItem(TOKEN_KEY);
    } catch (e) { /* storage disabled: the token lives until the page reloads */ }
    $('forget').hidden = !t;
  }

  // ---- the API -------------------------------------------------------

  class AuthError extends Error {}

  async function api(method, path, body) {
    const headers = { Accept: 'application/json' };
    const token = getToken();
    if (token) headers.Authorization = 'Bearer ' + token;
    const init = { method, headers, cache: 'no-store', credentials: 'same-origin' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const resp = await fetch(path, init);
    if (resp.status === 401) {
      throw new AuthError(token ? 'The admin token was refused.' : 'This admin listener needs its token.');
    }
    let data = null;
    try { data = await resp.json(); } catch (e) { data = null; }
    if (!resp.ok) {
      const why = data && typeof data.error === 'string' ? data.error : 'HTTP ' + resp.status;
      throw new Error(method + ' ' + path + ': ' + clip(why, 300));
    }
    if (data === null || typeof data !== 'object') throw new Error(method + ' ' + path + ': the answer is not JSON');
    return data;
  }

  function handleError(err) {
    if (err instanceof AuthError) {
      showLogin(err.message);
      return;
    }
    message(err && err.message ? err.message : String(err), true);
  }

  // ---- polling -------------------------------------------------------

  async function refresh() {
    if (needLogin) return;
    if (inFlight) {
      again = true;
      return;
    }
    inFlight = true;
    try {
      const params = new URLSearchParams();
      const q = $('q').value.trim();
      if (q) params.set('q', q);
      if ($('state').value) params.set('state', $('state').value);
      params.set('limit', String(LIMIT));
      const [reports, subs, status] = await Promise.all([
        api('GET', '/api/v1/reports?' + params.toString()),
        api('GET', '/api/v1/subscriptions'),
        api('GET', '/api/v1/status'),
      ]);
      renderReports(list(reports.reports));
      renderSubscriptions(list(subs.subscriptions));
      renderStatus(status);
      if (selected) await loadHistory();
      $('updated').textContent = 'updated ' + when(new Date().toISOString()).slice(11);
      if ($('message').classList.contains('error')) message('');
    } catch (err) {
      handleError(err);
    } finally {
      inFlight = false;
      if (again) {
        again = false;
        refresh();
      }
    }
  }

  async function tick() {
    clearTimeout(timer);
    if (document.hidden || needLogin) return;
    await refresh();
    clearTimeout(timer);
    if (!document.hidden && !needLogin) timer = setTimeout(tick, POLL_MS);
  }

  // ---- reports -------------------------------------------------------

  // reportOrder puts failures first, then reports waiting for an
  // operator, then the rest; the API's order (newest first) is kept
  // within each group.
  function reportOrder(r) {
    const i = STATES.indexOf(r.state);
    return i < 0 ? STATES.length : i;
  }

  function sameReport(a, b) {
    return a && b && str(a.mailbox) === str(b.mailbox) && str(a.message_id) === str(b.message_id);
  }

  function renderReports(reports) {
    const sorted = reports.map((r, i) => [r, i])
      .sort((a, b) => reportOrder(a[0]) - reportOrder(b[0]) || a[1] - b[1]).map((p) => p[0]);
    const json = JSON.stringify(sorted);
    if (json === last.reports) return;
    last.reports = json;
    const focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.focus : '';
    const body = $('report-rows');
    body.replaceChildren(...sorted.map(reportRow));
    $('reports-empty').hidden = sorted.length > 0;
    if (focused) {
      for (const n of body.querySelectorAll('[data-focus]')) {
        if (n.dataset.focus === focused) n.focus();
      }
    }
  }

  function reportRow(r) {
    const state = knownState(r.state);
    const tr = el('tr', 'state-' + state);
    const key = str(r.mailbox) + '\n' + str(r.message_id);
    tr.dataset.mailbox = str(r.mailbox);
    tr.dataset.messageId = str(r.message_id);
    tr.dataset.focus = 'row\n' + key;
    tr.tabIndex = 0;
    if (sameReport(r, selected)) tr.classList.add('selected');

    const stateTd = cell(null, 'state nowrap');
    stateTd.append(badge(state, str(r.state) || 'unknown'));
    const reasonTd = cell(null, 'reason');
    const reason = str(r.reason) || (state === 'done' ? str(r.outcome) : '');
    if (reason) reasonTd.append(el('span', 'reason-code', clip(reason, 120)));
    if (r.last_error && ['failed', 'waiting', 'retrying'].includes(state)) {
      const e = el('span', 'error-text', clip(r.last_error, 300));
      e.title = clip(r.last_error, 4000);
      reasonTd.append(e);
    }
    const subject = cell(clip(r.subject, 300), 'subject');
    const recordTd = cell(null, 'record nowrap');
    recordTd.append(recordNode(r));
    const attempts = str(r.attempts) + (r.max_attempts ? ' / ' + str(r.max_attempts) : '');
    const actions = cell(null, 'actions');
    const job = str(r.job_id);
    if (job && (state === 'failed' || state === 'waiting')) {
      actions.append(actionButton('Retry', 'retry', key, 'Run this report\'s job again now',
        () => api('POST', '/api/v1/jobs/' + encodeURIComponent(job) + '/retry', {})));
    }
    if (job && (state === 'queued' || state === 'retrying' || state === 'waiting')) {
      actions.append(actionButton('Cancel', 'cancel', key, 'Cancel this report\'s pending job',
        () => api('POST', '/api/v1/jobs/' + encodeURIComponent(job) + '/cancel', {}),
        'Cancel the pending job of this report?'));
    }
    if (state === 'done') {
      actions.append(actionButton('Replay', 'replay', key, 'Process this message again from the mailbox',
        () => api('POST', '/api/v1/reports/replay', { mailbox: str(r.mailbox), message_id: str(r.message_id) }),
        'Process this message again?'));
    }
    // A campaign matters once several people reported the same email.
    const size = Number(r.reports) || 0;
    const campaign = cell(r.campaign && size > 1 ? size + ' reports' : '', 'nowrap');
    if (r.campaign) campaign.title = 'campaign ' + clip(r.campaign, 200);
    tr.append(stateTd, reasonTd, timeCell(r.received_at), addrCell(r.reporter), subject, recordTd,
      campaign, cell(clip(r.rule, 120)), cell(attempts, 'nowrap'), addrCell(r.mailbox), actions);
    tr.addEventListener('click', (e) => {
      if (e.target.closest('a, button')) return;
      select(r);
    });
    tr.addEventListener('keydown', (e) => { if (e.key === 'Enter' && e.target === tr) select(r); });
    return tr;
  }

  // actionButton runs an action, shows its answer and refreshes at once.
  function actionButton(label, cls, key, title, run, confirmText) {
    const b = el('button', 'action ' + cls, label);
    b.type = 'button';
    b.title = title;
    b.dataset.focus = cls + '\n' + key;
    b.addEventListener('click', async (e) => {
      e.stopPropagation();
      if (confirmText && !window.confirm(confirmText)) return;
      b.disabled = true;
      try {
        const res = await run();
        message(typeof res.done === 'string' ? clip(res.done, 300) : label + ': done');
      } catch (err) {
        handleError(err);
      } finally {
        b.disabled = false;
      }
      refresh();
    });
    return b;
  }

  // ---- history -------------------------------------------------------

  function select(r) {
    selected = { mailbox: str(r.mailbox), message_id: str(r.message_id) };
    for (const tr of $('report-rows').children) {
      tr.classList.toggle('selected', tr.dataset.mailbox === selected.mailbox && tr.dataset.messageId === selected.message_id);
    }
    last.history = '';
    $('history').hidden = false;
    $('history').focus();
    loadHistory().catch(handleError);
  }

  async function loadHistory() {
    const want = selected;
    const data = await api('GET', '/api/v1/reports/' + encodeURIComponent(want.mailbox) + '/' + encodeURIComponent(want.message_id));
    if (selected !== want) return;
    const json = JSON.stringify(data);
    if (json === last.history) return;
    last.history = json;
    renderHistory(data.report && typeof data.report === 'object' ? data.report : {}, list(data.history));
  }

  function fact(dl, name, value) {
    if (value === '' || value === null || value === undefined) return;
    const dd = el('dd');
    if (value instanceof Node) dd.append(value); else dd.textContent = String(value);
    dl.append(el('dt', null, name), dd);
  }

  function renderHistory(r, jobs) {
    $('history-title').textContent = 'History: ' + (clip(r.subject, 120) || str(selected && selected.message_id));
    const dl = $('history-report');
    dl.replaceChildren();
    fact(dl, 'Mailbox', str(r.mailbox));
    fact(dl, 'Message id', str(r.message_id));
    fact(dl, 'Reporter', clip(r.reporter, 300));
    fact(dl, 'Subject', clip(r.subject, 1000));
    fact(dl, 'Received', when(r.received_at));
    if (r.state) fact(dl, 'State', badge(knownState(r.state), str(r.state)));
    fact(dl, 'Outcome', [str(r.outcome), str(r.reason)].filter(Boolean).join(': '));
    if (r.record_id) fact(dl, 'Record', recordNode(r));
    fact(dl, 'Campaign', clip(r.campaign, 300));
    fact(dl, 'Rule', clip(r.rule, 300));
    fact(dl, 'Reports', r.reports ? str(r.reports) : '');
    fact(dl, 'Last error', clip(r.last_error, 2000));

    const ol = $('history-jobs');
    ol.replaceChildren(...jobs.map((j) => {
      const li = el('li');
      const head = el('div', 'job-head');
      head.append(el('strong', null, str(j.kind) || 'job'), badge(knownState(j.state), str(j.state) || 'unknown'),
        el('span', 'mono', 'job ' + str(j.job_id)), el('span', null, 'attempt ' + str(j.attempt)),
        el('span', 'muted', 'created ' + when(j.created_at)));
      if (j.finalized_at) head.append(el('span', 'muted', 'ended ' + when(j.finalized_at)));
      const result = [str(j.outcome), str(j.reason)].filter(Boolean).join(': ');
      if (result) head.append(el('span', 'reason-code', clip(result, 200)));
      if (j.record_id) head.append(el('span', null, 'record ' + str(j.record_id)));
      li.append(head);
      const errs = list(j.errors);
      if (errs.length) {
        const ul = el('ul', 'errors');
        for (const e of errs) {
          ul.append(el('li', null, when(e.at) + ' · attempt ' + str(e.attempt) + ': ' + clip(e.error, 2000)));
        }
        li.append(ul);
      }
      return li;
    }));
    if (!jobs.length) ol.append(el('li', 'muted', 'No job recorded.'));
  }

  function closeHistory() {
    selected = null;
    last.history = '';
    $('history').hidden = true;
    for (const tr of $('report-rows').children) tr.classList.remove('selected');
  }

  // ---- subscriptions and status --------------------------------------

  function renderSubscriptions(subs) {
    const json = JSON.stringify(subs);
    if (json === last.subs) return;
    last.subs = json;
    $('subscription-rows').replaceChildren(...subs.map((s) => {
      const tr = el('tr');
      const left = Number(s.expires_in_seconds);
      const exp = cell(null, 'nowrap');
      if (s.expires_at && Number.isFinite(left)) {
        const b = left <= 0 ? badge('fail', 'expired ' + duration(left) + ' ago')
          : badge(left < 86400 ? 'soon' : 'ok', 'in ' + duration(left) + (left < 86400 ? ' (soon)' : ''));
        b.title = str(s.expires_at);
        exp.append(b);
      } else {
        exp.append(badge('fail', 'none'));
      }
      const actions = cell(null, 'actions');
      const mailbox = str(s.mailbox);
      actions.append(actionButton('Resync now', 'resync', 'sub\n' + mailbox, 'Look for mail the notifications missed',
        () => api('POST', '/api/v1/subscriptions/resync', { mailbox })));
      tr.append(addrCell(mailbox), cell(clip(s.folder, 100)), exp, timeCell(s.last_renewal), timeCell(s.last_resync),
        cell(clip(s.last_error, 500)), cell(s.leader ? 'yes' : 'no'), actions);
      return tr;
    }));
    $('subscriptions-empty').hidden = subs.length > 0;
  }

  function renderStatus(st) {
    const ready = $('ready');
    ready.textContent = st.ready === true ? 'ready' : 'not ready';
    ready.className = 'badge ' + (st.ready === true ? 'badge-ok' : 'badge-fail');

    const q = st.queue && typeof st.queue === 'object' ? st.queue : {};
    const dl = $('queue');
    dl.replaceChildren();
    for (const k of QUEUE) {
      const n = Number(q[k]);
      dl.append(el('dt', null, k), el('dd', null, Number.isFinite(n) ? String(n) : '?'));
    }

    const comps = st.components && typeof st.components === 'object' ? st.components : {};
    const json = JSON.stringify(comps);
    if (json === last.components) return;
    last.components = json;
    $('components').replaceChildren(...Object.keys(comps).sort().map((name) => {
      const c = comps[name] && typeof comps[name] === 'object' ? comps[name] : {};
      const okState = c.status === 'ok';
      const li = el('li');
      li.append(el('span', 'name', clip(name, 100)), badge(okState ? 'ok' : 'fail', okState ? 'ok' : 'failing'));
      if (c.detail) li.append(el('span', 'detail', clip(c.detail, 1000)));
      if (c.fix && !okState) li.append(el('span', 'fix', 'Fix: ' + clip(c.fix, 1000)));
      return li;
    }));
  }

  // ---- the token -----------------------------------------------------

  function clearData() {
    last = {};
    closeHistory();
    for (const id of ['report-rows', 'subscription-rows', 'queue', 'components']) $(id).replaceChildren();
  }

  function showLogin(text) {
    needLogin = true;
    clearTimeout(timer);
    setToken('');
    clearData();
    $('main').hidden = true;
    $('login').hidden = false;
    message(text, true);
    $('token').focus();
  }

  $('login-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const t = $('token').value.trim();
    if (!t) return;
    $('token').value = '';
    setToken(t);
    needLogin = false;
    $('login').hidden = true;
    $('main').hidden = false;
    message('');
    tick();
  });

  $('forget').addEventListener('click', () => {
    setToken('');
    clearData();
    message('The token was removed from this tab.');
    tick();
  });

  // ---- wiring --------------------------------------------------------

  let typing = 0;
  $('q').addEventListener('input', () => {
    clearTimeout(typing);
    typing = setTimeout(refresh, 300);
  });
  $('state').addEventListener('change', refresh);
  $('filters').addEventListener('submit', (e) => { e.preventDefault(); refresh(); });
  $('history-close').addEventListener('click', closeHistory);
  document.addEventListener('visibilitychange', () => {
    $('paused').hidden = !document.hidden;
    if (!document.hidden) tick();
  });

  setToken(getToken());
  tick();
})();
