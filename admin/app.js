// shardmq admin console: plain JavaScript, no libraries. Talks to /api/* (see API.md).
'use strict';

const $ = (id) => document.getElementById(id);
const state = { tab: 'dashboard', clientOffset: 0, pageSize: 50, clients: [], selected: null,
  lastSeq: 0, events: [], polling: false, historyTopic: '', pubTopic: '' };

// Every request carries the header the server requires on state-changing requests (CSRF defence).
async function api(method, path, body) {
  const opts = { method, credentials: 'same-origin', headers: { 'X-Requested-With': 'shardmq' } };
  if (body !== undefined) {
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(body);
  }
  const r = await fetch(path, opts);
  let data = null;
  try { data = await r.json(); } catch (_) { data = null; }
  if (r.status === 401 && path !== '/api/login') { showLogin(); }
  if (!r.ok) { throw new Error((data && data.error) || ('HTTP ' + r.status)); }
  return data;
}

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'title') e.title = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function fill(tbody, rows, emptyText, cols) {
  tbody.replaceChildren(...rows);
  if (!rows.length) tbody.append(el('tr', {}, el('td', { colspan: cols, class: 'muted' }, emptyText)));
}

function fmtTime(iso) { return iso ? new Date(iso).toLocaleTimeString() : '—'; }
function fmtNum(n) { return n >= 1e6 ? (n / 1e6).toFixed(1) + 'M' : n >= 1e4 ? (n / 1e3).toFixed(1) + 'k' : String(n); }
function fmtBytes(n) { return n >= 1048576 ? (n / 1048576).toFixed(1) + ' MiB' : n >= 1024 ? (n / 1024).toFixed(1) + ' KiB' : n + ' B'; }
function fmtDur(s) {
  const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
  return (d ? d + 'd ' : '') + (d || h ? h + 'h ' : '') + m + 'm ' + (s % 60) + 's';
}
function payloadText(v) { return v.encoding === 'utf8' ? v.payload : 'base64:' + v.payload; }
function flash(id, text, ok) { const p = $(id); p.textContent = text; p.className = 'msg ' + (ok ? 'ok' : 'error'); }

// ----- login -----------------------------------------------------------------------------------------
function showLogin() {
  $('login-view').hidden = false; $('nav').hidden = true; $('who').hidden = true;
  document.querySelectorAll('.tab').forEach((t) => { t.hidden = true; });
}
function showApp(user) {
  $('login-view').hidden = true; $('nav').hidden = false; $('who').hidden = false;
  $('whoami').textContent = user;
  showTab(state.tab);
  if (!state.polling) pollEvents();
}
$('login-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  try {
    const r = await api('POST', '/api/login', { username: $('login-user').value, password: $('login-password').value });
    $('login-error').textContent = ''; $('login-password').value = '';
    showApp(r.username);
  } catch (err) { $('login-error').textContent = err.message; }
});
$('logout').addEventListener('click', async () => { try { await api('POST', '/api/logout'); } catch (_) { /* already out */ } showLogin(); });

// ----- tabs --------------------------------------------------------------------------------------------
document.querySelectorAll('#nav button').forEach((b) => b.addEventListener('click', () => showTab(b.dataset.tab)));
function showTab(name) {
  state.tab = name;
  document.querySelectorAll('#nav button').forEach((b) => b.classList.toggle('active', b.dataset.tab === name));
  document.querySelectorAll('.tab').forEach((t) => { t.hidden = t.id !== 'tab-' + name; });
  refresh();
}
async function refresh() {
  try {
    if (state.tab === 'dashboard') await loadStats();
    else if (state.tab === 'clients') await loadClients();
    else if (state.tab === 'topics') await loadTopics();
    else if (state.tab === 'users') await loadUsers();
  } catch (_) { /* shown on next refresh or via 401 */ }
}
setInterval(() => {
  if ($('login-view').hidden === false) return;
  if (state.tab === 'clients' && !$('clients-auto').checked) return;
  if (state.tab === 'dashboard' || state.tab === 'clients' || state.tab === 'topics') refresh();
}, 2000);

// ----- dashboard ---------------------------------------------------------------------------------------
async function loadStats() {
  const s = await api('GET', '/api/stats');
  const figs = [
    ['Uptime', fmtDur(s.uptime_secs)], ['Connections', s.connections], ['Sessions', s.sessions],
    ['Subscriptions', s.subscriptions], ['Retained', s.retained],
    ['Msgs in/s', s.messages_in_per_sec], ['Msgs out/s', s.messages_out_per_sec],
    ['Bytes in/s', fmtBytes(s.bytes_in_per_sec)], ['Bytes out/s', fmtBytes(s.bytes_out_per_sec)],
    ['Msgs in', fmtNum(s.messages_in)], ['Msgs out', fmtNum(s.messages_out)], ['Dropped', s.dropped],
    ['Subs refused', s.subscriptions_refused], ['Publishes refused', s.publishes_refused],
  ];
  $('figures').replaceChildren(...figs.map(([k, v]) => el('div', { class: 'figure' }, el('span', { class: 'v' }, v), el('span', { class: 'k' }, k))));
  fill($('shards'), s.shards.map((w) => el('tr', {}, el('td', {}, w.shard), el('td', {}, w.connections), el('td', {}, w.inbox_depth))), 'no shards', 3);
}

// ----- clients -----------------------------------------------------------------------------------------
$('client-filter').addEventListener('input', () => { state.clientOffset = 0; loadClients(); });
$('clients-prev').addEventListener('click', () => { state.clientOffset = Math.max(0, state.clientOffset - state.pageSize); loadClients(); });
$('clients-next').addEventListener('click', () => { state.clientOffset += state.pageSize; loadClients(); });

async function loadClients() {
  const q = new URLSearchParams({ filter: $('client-filter').value, offset: state.clientOffset, limit: state.pageSize });
  const page = await api('GET', '/api/clients?' + q);
  if (page.total && state.clientOffset >= page.total) { state.clientOffset = Math.max(0, page.total - state.pageSize); return loadClients(); }
  state.clients = page.clients;
  $('clients-range').textContent = page.total ? `${page.offset + 1}–${page.offset + page.clients.length} of ${page.total}` : 'no clients';
  $('clients-prev').disabled = page.offset === 0;
  $('clients-next').disabled = page.offset + page.clients.length >= page.total;
  fill($('clients-body'), page.clients.map((c) => el('tr', { class: 'clickable' + (state.selected === c.client_id ? ' selected' : ''), 'data-client': c.client_id, onclick: () => selectClient(c.client_id) },
    el('td', { class: 'id' }, c.client_id), el('td', {}, c.username || '—'),
    el('td', {}, el('span', { class: 'badge ' + (c.connected ? 'on' : 'off') }, c.connected ? 'online' : 'offline')),
    el('td', {}, c.peer || '—'), el('td', {}, c.connected ? `${c.keep_alive}s / ${c.idle_secs}s` : '—'),
    el('td', {}, c.subscriptions.length), el('td', {}, c.inflight), el('td', { class: c.queued ? 'hot' : '' }, c.queued), el('td', {}, c.shard),
    el('td', {}, el('button', { class: 'danger small', onclick: (e) => { e.stopPropagation(); askDisconnect(c); } }, 'Disconnect')))), 'no clients match', 10);
  if (state.selected) showDetails(state.clients.find((c) => c.client_id === state.selected));
}

function selectClient(id) { state.selected = id; showDetails(state.clients.find((c) => c.client_id === id)); loadClients(); }

function showDetails(c) {
  const box = $('client-details');
  if (!c) { box.hidden = true; return; }
  box.hidden = false;
  const rows = [
    ['Client id', c.client_id], ['User', c.username || '—'], ['State', c.connected ? 'online' : 'offline (persistent session)'],
    ['Peer', c.peer || '—'], ['Protocol level', c.protocol_level ? `${c.protocol_level} (MQTT ${c.protocol_level === 4 ? '3.1.1' : '3.1'})` : '—'],
    ['Keep alive', c.keep_alive + ' s'], ['Idle', c.idle_secs === null ? '—' : c.idle_secs + ' s'], ['Clean session', c.clean_session ? 'yes' : 'no'],
    ['Will', c.will ? `${c.will.topic} (QoS ${c.will.qos}${c.will.retain ? ', retain' : ''})` : 'none'],
    ['In flight / queued / dropped', `${c.inflight} / ${c.queued} / ${c.dropped}`], ['Shard', c.shard], ['Connected since', c.connected_since || '—'],
  ];
  box.replaceChildren(el('h2', {}, 'Client ', el('code', {}, c.client_id)),
    el('dl', { class: 'details' }, ...rows.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)])),
    el('h3', {}, 'Subscriptions'),
    c.subscriptions.length ? el('ul', {}, ...c.subscriptions.map((s) => el('li', {}, el('code', {}, s.filter), ` QoS ${s.qos}`))) : el('p', { class: 'muted' }, 'none'));
}

function confirmDialog(text, withDiscard) {
  return new Promise((resolve) => {
    const d = $('confirm');
    $('confirm-text').textContent = text;
    $('confirm-discard').checked = false;
    $('confirm-discard-label').hidden = !withDiscard;
    $('confirm-ok').textContent = withDiscard ? 'Disconnect' : 'Delete';
    d.addEventListener('close', () => resolve(d.returnValue === 'ok' ? { discard: $('confirm-discard').checked } : null), { once: true });
    d.returnValue = '';
    d.showModal();
  });
}

async function askDisconnect(c) {
  const answer = await confirmDialog(`Disconnect ${c.client_id}? Its will is published, as for any end that is not a DISCONNECT.`, true);
  if (!answer) return;
  try {
    await api('DELETE', '/api/clients/' + encodeURIComponent(c.client_id) + (answer.discard ? '?discard_session=true' : ''));
  } catch (err) { alert(err.message); }
  loadClients();
}

// ----- topics ------------------------------------------------------------------------------------------
$('topic-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const t = $('new-topic').value.trim();
  try { await api('POST', '/api/topics', { topic: t }); flash('topic-msg', `created ${t}`, true); $('new-topic').value = ''; } catch (err) { flash('topic-msg', err.message, false); }
  loadTopics();
});
$('history-form').addEventListener('submit', (e) => { e.preventDefault(); state.historyTopic = $('history-topic').value.trim(); loadTopics(); });

async function deleteTopic(t) {
  const ok = await confirmDialog(`Delete topic ${t} from the list? New subscriptions that match no remaining entry are refused when the list is enforced.`, false);
  if (!ok) return;
  try { await api('DELETE', '/api/topics?topic=' + encodeURIComponent(t)); flash('topic-msg', `deleted ${t}`, true); } catch (err) { flash('topic-msg', err.message, false); }
  loadTopics();
}

function historyRows(values) {
  return values.map((v) => el('tr', {}, el('td', {}, fmtTime(v.time)), el('td', { class: 'payload' }, payloadText(v)), el('td', {}, v.qos), el('td', {}, v.retain ? 'yes' : ''), el('td', {}, v.publisher)));
}

async function loadTopics() {
  const [t, recent] = await Promise.all([api('GET', '/api/topics'), api('GET', '/api/recent')]);
  $('enforced').textContent = t.enforced ? 'enforced' : 'not enforced';
  fill($('topics-body'), t.topics.map((x) => el('tr', { 'data-topic': x.topic },
    el('td', {}, el('a', { href: '#', onclick: (e) => { e.preventDefault(); if (!x.pattern) { state.historyTopic = x.topic; $('history-topic').value = x.topic; loadTopics(); } } }, x.topic)),
    el('td', {}, x.listed ? 'yes' : 'seen'), el('td', {}, x.pattern ? '' : x.subscribers), el('td', {}, x.pattern ? '' : x.messages), el('td', {}, fmtTime(x.last_publish)),
    el('td', {}, x.listed ? el('button', { class: 'danger small', onclick: () => deleteTopic(x.topic) }, 'Delete') : ''))), 'no topics', 6);
  fill($('recent-body'), recent.map((r) => el('tr', {}, el('td', {}, r.topic), el('td', { class: 'payload' }, payloadText(r.last)), el('td', {}, fmtTime(r.last.time)), el('td', {}, r.messages))), 'nothing published yet', 4);
  if (state.historyTopic) {
    const h = await api('GET', '/api/history?topic=' + encodeURIComponent(state.historyTopic));
    fill($('history-body'), historyRows(h.values), 'no values for ' + state.historyTopic, 5);
  }
}

// ----- publish -----------------------------------------------------------------------------------------
$('publish-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const body = { topic: $('pub-topic').value.trim(), payload: $('pub-payload').value, qos: Number($('pub-qos').value), retain: $('pub-retain').checked };
  try {
    await api('POST', '/api/publish', body);
    flash('pub-msg', `published to ${body.topic} (QoS ${body.qos}${body.retain ? ', retained' : ''})`, true);
    state.pubTopic = body.topic;
    await loadPubHistory(body.payload);
  } catch (err) { flash('pub-msg', err.message, false); }
});

// The message travels through the topic's partition asynchronously: poll its history briefly until it shows.
async function loadPubHistory(expect) {
  $('pub-history-topic').textContent = state.pubTopic;
  for (let i = 0; i < 20; i++) {
    const h = await api('GET', '/api/history?topic=' + encodeURIComponent(state.pubTopic));
    fill($('pub-history-body'), historyRows(h.values), 'no values yet', 5);
    if (h.values.length && h.values[0].payload === expect) return;
    await new Promise((r) => setTimeout(r, 150));
  }
}

// ----- users -------------------------------------------------------------------------------------------
async function loadUsers() {
  const u = await api('GET', '/api/users');
  fill($('users-body'), u.users.map((x) => el('tr', { 'data-user': x.username }, el('td', {}, x.username),
    el('td', {}, el('button', { class: 'danger small', onclick: () => deleteUser(x.username) }, 'Delete')))), 'no accounts', 2);
  $('users-note').textContent = u.editable ? 'Changes are saved in auth.password_file.' : 'No auth.password_file is configured: accounts cannot be changed here.';
}
async function deleteUser(name) {
  const ok = await confirmDialog(`Delete the account ${name}?`, false);
  if (!ok) return;
  try { await api('DELETE', '/api/users/' + encodeURIComponent(name)); flash('user-msg', `deleted ${name}`, true); } catch (err) { flash('user-msg', err.message, false); }
  loadUsers();
}
$('user-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const name = $('user-name').value.trim();
  try {
    const r = await api('POST', '/api/users', { username: name, password: $('user-password').value });
    flash('user-msg', r.created ? `added ${name}` : `password of ${name} changed`, true);
    $('user-password').value = '';
  } catch (err) { flash('user-msg', err.message, false); }
  loadUsers();
});

// ----- events (long polling) ---------------------------------------------------------------------------
const EVENT_TYPES = ['connected', 'connect_refused', 'disconnected', 'subscription_accepted', 'subscription_refused', 'unsubscribed', 'publish_refused', 'will_published', 'qos2_completed', 'topic_created', 'topic_deleted', 'user_changed'];
for (const t of EVENT_TYPES) $('event-type').append(el('option', { value: t }, t.replace(/_/g, ' ')));
$('event-type').addEventListener('change', renderEvents);

function eventDetails(e) {
  switch (e.type) {
    case 'connected': return `from ${e.peer}${e.username ? ' as ' + e.username : ''}, ${e.clean_session ? 'clean' : 'persistent'} session`;
    case 'connect_refused': return `${e.peer}${e.code !== undefined ? ' code ' + e.code : ''}: ${e.reason}`;
    case 'disconnected': return `${e.disconnect.replace(/_/g, ' ')}: ${e.reason}`;
    case 'subscription_accepted': return `${e.filter} QoS ${e.qos}`;
    case 'subscription_refused': return `${e.filter}: ${e.reason}`;
    case 'unsubscribed': return e.filter;
    case 'publish_refused': return `${e.topic}: ${e.reason}`;
    case 'will_published': return `${e.topic} QoS ${e.qos}${e.retain ? ' retained' : ''}`;
    case 'qos2_completed': return `${e.action === 'received' ? 'received from' : 'delivered to'} the client, packet id ${e.packet_id} (PUBLISH, PUBREC, PUBREL, PUBCOMP)`;
    case 'topic_created': case 'topic_deleted': return e.topic;
    case 'user_changed': return `${e.username} ${e.action}`;
    default: return '';
  }
}
function eventClass(e) {
  if (e.type === 'subscription_refused' || e.type === 'connect_refused' || e.type === 'publish_refused') return 'bad';
  if (e.type === 'disconnected') return e.disconnect === 'graceful' ? 'neutral' : 'warn';
  if (e.type === 'will_published') return 'warn';
  return 'good';
}
function renderEvents() {
  if ($('events-pause').checked) return;
  const type = $('event-type').value;
  const shown = state.events.filter((e) => !type || e.type === type).slice(-300).reverse();
  fill($('events-body'), shown.map((e) => el('tr', { class: 'ev ' + eventClass(e), 'data-type': e.type },
    el('td', {}, e.seq), el('td', {}, fmtTime(e.time)), el('td', {}, el('span', { class: 'badge ' + eventClass(e) }, e.type.replace(/_/g, ' '))),
    el('td', { class: 'id' }, e.client_id || ''), el('td', {}, eventDetails(e)))), 'no events yet', 5);
  $('latest-events').replaceChildren(...state.events.slice(-12).reverse().map((e) => el('li', { class: eventClass(e) },
    el('span', { class: 'muted' }, fmtTime(e.time) + ' '), el('b', {}, e.type.replace(/_/g, ' ')), ' ', e.client_id || '', ' ', eventDetails(e))));
}
$('events-pause').addEventListener('change', renderEvents);

async function pollEvents() {
  state.polling = true;
  while ($('login-view').hidden) {
    try {
      const r = await api('GET', `/api/events?since=${state.lastSeq}&wait=20`);
      if (r.events.length) {
        state.events.push(...r.events);
        if (state.events.length > 1000) state.events.splice(0, state.events.length - 1000);
        state.lastSeq = r.last_seq;
        renderEvents();
        if (state.tab === 'clients' || state.tab === 'dashboard') refresh();
      }
      $('events-status').textContent = 'live';
    } catch (err) {
      $('events-status').textContent = 'reconnecting: ' + err.message;
      await new Promise((res) => setTimeout(res, 2000));
    }
  }
  state.polling = false;
}

// ----- start -------------------------------------------------------------------------------------------
(async () => {
  try { const s = await api('GET', '/api/session'); showApp(s.username); } catch (_) { showLogin(); }
})();
