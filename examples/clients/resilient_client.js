#!/usr/bin/env node
// resilient_client.js - the connection layer of a well-made IB API trading app, as a black box.
//
// The harness starts this program against mockgw (docs/external-clients.md) and judges it only by
// what mockgw sees on the wire and by its exit status. resilient_client.py is the same program in
// Python: same flags, same stdout lines, same timing rules, same jitter for the same --seed.
//
// What it does: one connection at a time; API handshake (`API\0` + `v100..176`), startApi, ready
// once both nextValidId (9) and managedAccounts (15) arrived within --connect-timeout-s. While
// ready it probes with reqCurrentTime (49), one at a time, each --probe-interval-s (at least 1 s:
// real TWS ignores a faster one) after the previous answer, and calls the session dead if an
// answer does not come within --probe-timeout-s. Error 326 (client id in use) moves to the next
// client id after 1 s; other failures back off 1, 2, 4, 8 s (+0-25 % jitter); a dropped session
// is retried after 0.5 s (+0-0.25 s), but never less than 1 s after the previous attempt began, so
// a gateway that drops every session at once does not get a reconnect storm.
// --naive turns it into a buggy app: same id after 326, 0.05 s retries, no probes.
//
// stdout (one line per event):
//   ready client_id=N attempt=A          (A counts every connection attempt since start)
//   refused client_id=N (326)
//   attempt failed: timeout|refused|closed|reset
//   silent: no currentTime in X s
//   dropped: closed|reset
//   summary: ready=R refused=F failures=E drops=D client_id=N state=ready|not-ready
// (drops counts every lost ready session, the silent ones included; failures counts attempts that
// never got ready, 326 aside.)
// Exit status: 0 if the session is ready when it stops (SIGTERM, SIGINT, --run-s), else 1.
// Node.js, built-in modules only.
'use strict';

const net = require('net');

const MIN_PROBE_GAP_S = 1.0; // real TWS ignores a reqCurrentTime < 1 s after the last answered one
const MIN_ATTEMPT_GAP_S = 1.0; // connection attempts never start closer together (naive aside)
const CLOSE_GRACE_MS = 200;  // on stop, how long the peer gets to answer our FIN
// How a failed TCP connect is reported; any other error (unreachable...) counts as 'refused'.
// An RST right after accept is a reset, not a refusal.
const CONNECT_ERRORS = { ECONNREFUSED: 'refused', ETIMEDOUT: 'timeout', ECONNRESET: 'reset' };

// xorshift32, seeded; the same generator as in resilient_client.py.
class Jitter {
  constructor(seed) {
    this.state = ((seed ^ 0x9e3779b9) >>> 0) || 1;
  }

  uniform(hi) {
    let x = this.state;
    x = (x ^ (x << 13)) >>> 0;
    x = (x ^ (x >>> 17)) >>> 0;
    x = (x ^ (x << 5)) >>> 0;
    this.state = x;
    return (hi * x) / 4294967296;
  }
}

// One API message: 4-byte big-endian length, then every field NUL-terminated.
function frame(...fields) {
  const payload = Buffer.from(fields.map((f) => f + '\0').join(''), 'ascii');
  const len = Buffer.alloc(4);
  len.writeUInt32BE(payload.length);
  return Buffer.concat([len, payload]);
}

function parseArgs(argv) {
  const o = {
    host: '127.0.0.1', port: null, clientId: 1, maxClientId: null, connectTimeoutS: 4,
    probeIntervalS: 1, probeTimeoutS: 2, runS: 0, naive: false, seed: null,
  };
  const names = {
    '--host': 'host', '--port': 'port', '--client-id': 'clientId',
    '--max-client-id': 'maxClientId', '--connect-timeout-s': 'connectTimeoutS',
    '--probe-interval-s': 'probeIntervalS', '--probe-timeout-s': 'probeTimeoutS',
    '--run-s': 'runS', '--seed': 'seed',
  };
  const ints = ['port', 'clientId', 'maxClientId', 'seed'];
  const fail = (msg) => {
    process.stderr.write(`resilient_client.js: error: ${msg}\n` +
      'usage: resilient_client.js --port P [--host H] [--client-id N] [--max-client-id M]\n' +
      '       [--connect-timeout-s T] [--probe-interval-s I] [--probe-timeout-s X]\n' +
      '       [--run-s S] [--naive] [--seed K]\n');
    process.exit(2);
  };
  for (let i = 0; i < argv.length; i++) {
    let [flag, value] = argv[i].split(/=(.*)/s);
    if (flag === '--naive' && value === undefined) { o.naive = true; continue; }
    const key = names[flag];
    if (!key) fail(`unknown argument ${argv[i]}`);
    if (value === undefined) value = argv[++i];
    if (value === undefined) fail(`${flag} needs a value`);
    if (key === 'host') { o.host = value; continue; }
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n) || (ints.includes(key) && !Number.isInteger(n)))
      fail(`${flag}: invalid value '${value}'`);
    o[key] = n;
  }
  if (o.port === null) fail('--port is required');
  if (o.maxClientId === null) o.maxClientId = o.clientId + 9;
  if (o.seed === null) o.seed = Date.now() % 4294967296;
  if (o.maxClientId < o.clientId) fail('--max-client-id must be >= --client-id');
  if (Math.min(o.connectTimeoutS, o.probeIntervalS, o.probeTimeoutS) <= 0 || o.runS < 0)
    fail('timeouts and intervals must be > 0, --run-s >= 0');
  return o;
}

const opt = parseArgs(process.argv.slice(2));
const jitter = new Jitter(opt.seed);
const st = { clientId: opt.clientId, ready: 0, refused: 0, failures: 0, drops: 0, attempts: 0 };
let backoffStep = 0;    // next failure waits min(2**step, 8) s
let attemptAt = 0;      // when the latest connection attempt began (performance.now(), ms)
let conn = null;        // the one connection (attempt or ready session), or null
let retryTimer = null;  // pending reconnect
let stopping = false;

const say = (line) => process.stdout.write(line + '\n');
const probeGapMs = () => Math.max(opt.probeIntervalS, MIN_PROBE_GAP_S) * 1000;

// Delay after a failed attempt: 1, 2, 4, 8, 8... s, each plus 0-25 %.
function backoff() {
  const base = Math.min(2 ** backoffStep, 8);
  backoffStep += 1;
  return base + jitter.uniform(base * 0.25);
}

// -- one attempt: TCP connect, handshake, startApi, wait for 9 and 15 ---------------------------
function connect() {
  retryTimer = null;
  st.attempts += 1;
  attemptAt = performance.now();
  const c = {
    sock: net.createConnection({ host: opt.host, port: opt.port }),
    buf: Buffer.alloc(0), connected: false, err: null, done: false,
    gotVersion: false, got9: false, got15: false, ready: false,
    connectTimer: null, probeTimer: null, silentTimer: null,
  };
  conn = c;
  c.connectTimer = setTimeout(() => failed(c, 'timeout'), opt.connectTimeoutS * 1000);
  c.sock.on('connect', () => {
    c.connected = true;
    const hello = Buffer.from('v100..176', 'ascii'); // supported range; no NUL inside this frame
    const len = Buffer.alloc(4);
    len.writeUInt32BE(hello.length);
    c.sock.write(Buffer.concat([Buffer.from('API\0', 'ascii'), len, hello]));
  });
  c.sock.on('data', (data) => onData(c, data));
  c.sock.on('error', (e) => { c.err = e; });   // 'close' follows and decides
  c.sock.on('close', () => {
    if (c.done) return;
    let why = 'closed';
    if (!c.connected) why = CONNECT_ERRORS[c.err && c.err.code] || 'refused';
    else if (c.err) why = 'reset';
    if (c.ready) dropped(c, why); else failed(c, why);
  });
}

function onData(c, data) {
  if (c.done) return;                 // stopping: just drain what the peer still sends
  c.buf = Buffer.concat([c.buf, data]);
  while (!c.done && c.buf.length >= 4) {
    const n = c.buf.readUInt32BE(0);
    if (n === 0 || n > 0xffffff) { c.sock.destroy(); return; } // not the IB protocol
    if (c.buf.length < 4 + n) return;
    const fields = c.buf.subarray(4, 4 + n).toString('ascii').split('\0').slice(0, -1);
    c.buf = c.buf.subarray(4 + n);
    onFrame(c, fields);
  }
}

function onFrame(c, f) {
  if (c.ready) {
    if (f[0] === '49' && c.silentTimer) {  // probe answered: next one an interval from now
      clearTimeout(c.silentTimer);
      c.silentTimer = null;
      c.probeTimer = setTimeout(() => probe(c), probeGapMs());
    }
  } else if (!c.gotVersion) {               // [server_version, connection_time]
    c.gotVersion = true;
    c.sock.write(frame('71', '2', String(st.clientId), ''));   // startApi
  } else if (f[0] === '4' && f[3] === '326') {
    refused(c);
  } else {
    if (f[0] === '9') c.got9 = true;
    if (f[0] === '15') c.got15 = true;
    if (c.got9 && c.got15) becameReady(c);
  }
}

// Forget a connection: no more events from it, no timers, socket closed.
function finish(c) {
  c.done = true;
  for (const t of [c.connectTimer, c.probeTimer, c.silentTimer]) clearTimeout(t);
  c.sock.destroy();
  conn = null;
}

function retryIn(seconds) {
  retryTimer = setTimeout(connect, seconds * 1000);
}

function failed(c, why) {
  finish(c);
  st.failures += 1;
  say(`attempt failed: ${why}`);
  retryIn(opt.naive ? 0.05 : backoff());
}

function refused(c) {
  finish(c);
  st.refused += 1;
  say(`refused client_id=${st.clientId} (326)`);
  if (!opt.naive) {                          // next id, wrapping to the first after the last
    st.clientId = st.clientId >= opt.maxClientId ? opt.clientId : st.clientId + 1;
  }
  retryIn(opt.naive ? 0.05 : 1 + jitter.uniform(0.25));
}

// -- while ready: probe, watch for EOF/reset ----------------------------------------------------
function becameReady(c) {
  clearTimeout(c.connectTimer);
  c.connectTimer = null;
  c.ready = true;
  st.ready += 1;
  backoffStep = 0;
  say(`ready client_id=${st.clientId} attempt=${st.attempts}`);
  if (!opt.naive) c.probeTimer = setTimeout(() => probe(c), probeGapMs());
}

function probe(c) {
  c.probeTimer = null;
  c.sock.write(frame('49', '1'));            // reqCurrentTime
  c.silentTimer = setTimeout(() => {
    say(`silent: no currentTime in ${opt.probeTimeoutS} s`);
    finish(c);
    st.drops += 1;
    retryIn(backoff());                      // a hung gateway: back off from 1 s
  }, opt.probeTimeoutS * 1000);
}

function dropped(c, why) {
  finish(c);
  st.drops += 1;
  say(`dropped: ${why}`);
  const since = (performance.now() - attemptAt) / 1000;     // the first retry is quick
  const quick = Math.max(0.5, MIN_ATTEMPT_GAP_S - since);
  retryIn(opt.naive ? 0.05 : quick + jitter.uniform(0.25));
}

// -- stop: SIGTERM, SIGINT or --run-s -----------------------------------------------------------
function stop() {
  if (stopping) return;
  stopping = true;
  clearTimeout(retryTimer);
  const c = conn;
  const wasReady = c !== null && c.ready;
  const exit = () => {
    say(`summary: ready=${st.ready} refused=${st.refused} failures=${st.failures} ` +
      `drops=${st.drops} client_id=${st.clientId} state=${wasReady ? 'ready' : 'not-ready'}`);
    process.exit(wasReady ? 0 : 1);
  };
  if (!wasReady) {
    if (c) finish(c);
    exit();
    return;
  }
  // Clean close: FIN, then wait (briefly) for the peer's FIN so no RST is needed.
  c.done = true;
  for (const t of [c.probeTimer, c.silentTimer]) clearTimeout(t);
  c.sock.once('close', exit);
  setTimeout(() => { c.sock.destroy(); exit(); }, CLOSE_GRACE_MS);
  c.sock.end();
}

process.on('SIGTERM', stop);
process.on('SIGINT', stop);
if (opt.runS > 0) setTimeout(stop, opt.runS * 1000);
connect();
