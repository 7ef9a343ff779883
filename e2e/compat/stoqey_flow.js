#!/usr/bin/env node
// Drives the real @stoqey/ib IBApi against a gateway and prints one JSON object of everything it
// observed. Used by e2e/test_06_stoqey.py; runnable by hand against mockgw or a real gateway:
//
//   node stoqey_flow.js PORT CLIENT_ID [flow|dup|watch[=MS]] [HOST]
//
// flow: connect -> nextValidId + managedAccounts -> reqCurrentTime -> reqContractDetails AAPL
//       -> reqHistoricalData AAPL 1 D / 30 mins; exit 0.
// dup:  connect with a client id that is already in use; report the 326 (stoqey routes id -1
//       errors to "info", others to "error": both are recorded) and the disconnect; exit 0.
// watch: connect and only listen, for MS milliseconds (default 3000, at most 20000) or until
//       100 ms after stoqey reports "disconnected"; exit 0 whatever it saw: for faults, where
//       what the client reports (or does not report) is the result. "timeline" has each
//       event's time since connect().
// Every step has its own timeout: on expiry it prints the JSON with "failed_step" and exits 1.
"use strict";

const { IBApi, EventName } = require("@stoqey/ib");

const port = Number(process.argv[2]);
const clientId = Number(process.argv[3]);
const mode = process.argv[4] || "flow";
const host = process.argv[5] || "127.0.0.1";
const STEP_MS = 5000;
const watchMatch = /^watch(?:=(\d+))?$/.exec(mode);
const watchMs = watchMatch ? Number(watchMatch[1] || 3000) : 0;

if (!Number.isInteger(port) || !Number.isInteger(clientId) ||
    !(["flow", "dup"].includes(mode) || (watchMatch && watchMs <= 20000))) {
  process.stderr.write("usage: node stoqey_flow.js PORT CLIENT_ID [flow|dup|watch[=MS]] [HOST]\n");
  process.exit(2);
}

const seen = {
  mode,
  client_id: clientId,
  connected: false,
  disconnected: false,
  server_version: null,
  connection_time: null,
  next_valid_id: null,
  managed_accounts: null,
  current_time: null,
  contract_details: [],
  contract_details_end: null,
  bars: [],
  historical_end: null,
  info: [], // [code, message] in arrival order
  errors: [], // [code, reqId, message]
  events: [], // event names in arrival order (without "all"/"result"/"received"/"sent")
  timeline: [], // [ms since connect(), event, code or null]: connection events, info, errors
  failed_step: null,
};
let t0 = Date.now();
const mark = (name, code = null) => seen.timeline.push([Date.now() - t0, name, code]);

const ib = new IBApi({ host, port });
const QUIET = new Set(["all", "result", "received", "sent"]);

let finished = false;
function finish(code) {
  if (finished) return;
  finished = true;
  try {
    if (ib.isConnected) ib.disconnect();
  } catch (e) {
    seen.errors.push([null, null, `disconnect threw: ${e.message}`]);
  }
  process.stdout.write(JSON.stringify(seen) + "\n", () => process.exit(code));
}

function fail(step) {
  seen.failed_step = step;
  process.stderr.write(`stoqey_flow: step "${step}" timed out\n`);
  finish(1);
}

// Resolves when check() becomes true after any event; fails the run after ms.
const waiters = new Set();
function waitFor(step, check, ms = STEP_MS) {
  return new Promise((resolve) => {
    if (check()) return resolve();
    const w = {
      check,
      resolve,
      timer: setTimeout(() => {
        waiters.delete(w);
        fail(step);
      }, ms),
    };
    waiters.add(w);
  });
}
function poke() {
  for (const w of [...waiters]) {
    if (w.check()) {
      clearTimeout(w.timer);
      waiters.delete(w);
      w.resolve();
    }
  }
}

ib.on(EventName.all, (name) => {
  if (!QUIET.has(name)) seen.events.push(name);
  setImmediate(poke);
});
ib.on(EventName.connected, () => {
  seen.connected = true; // "all" records the event name
  mark("connected");
  setImmediate(poke);
});
ib.on(EventName.disconnected, () => {
  seen.disconnected = true;
  mark("disconnected");
  setImmediate(poke);
});
ib.on(EventName.server, (version, time) => {
  seen.server_version = version;
  seen.connection_time = time;
});
ib.on(EventName.info, (message, code) => {
  seen.info.push([code, message]);
  mark("info", code);
});
ib.on(EventName.error, (err, code, reqId) => {
  seen.errors.push([code ?? null, reqId ?? null, err && err.message ? err.message : String(err)]);
  mark("error", code ?? null);
  setImmediate(poke);
});
ib.on(EventName.nextValidId, (id) => {
  seen.next_valid_id = id;
  mark("nextValidId");
});
ib.on(EventName.managedAccounts, (list) => {
  seen.managed_accounts = list;
  mark("managedAccounts");
});
ib.on(EventName.currentTime, (t) => (seen.current_time = t));
ib.on(EventName.contractDetails, (reqId, d) => {
  const c = d.contract || {};
  seen.contract_details.push({
    req_id: reqId,
    con_id: c.conId,
    symbol: c.symbol,
    sec_type: c.secType,
    currency: c.currency,
    primary_exchange: c.primaryExch,
    long_name: d.longName,
    min_tick: d.minTick,
    time_zone_id: d.timeZoneId,
    trading_hours: d.tradingHours,
  });
});
ib.on(EventName.contractDetailsEnd, (reqId) => (seen.contract_details_end = reqId));
ib.on(EventName.historicalData, (reqId, time, open, high, low, close, volume, count, wap) => {
  if (typeof time === "string" && time.startsWith("finished")) {
    seen.historical_end = { req_id: reqId, marker: time };
  } else {
    seen.bars.push({ req_id: reqId, time, open, high, low, close, volume, count, wap });
  }
});

async function flow() {
  ib.connect(clientId);
  await waitFor("connect", () => seen.connected);
  await waitFor("nextValidId", () => seen.next_valid_id !== null);
  await waitFor("managedAccounts", () => seen.managed_accounts !== null);

  ib.reqCurrentTime();
  await waitFor("currentTime", () => seen.current_time !== null);

  const aapl = { symbol: "AAPL", secType: "STK", exchange: "SMART", currency: "USD" };
  ib.reqContractDetails(11, aapl);
  await waitFor("contractDetails", () => seen.contract_details_end !== null);

  ib.reqHistoricalData(12, aapl, "", "1 D", "30 mins", "TRADES", 1, 1, false);
  await waitFor("historicalData", () => seen.historical_end !== null);
  finish(0);
}

async function dup() {
  ib.connect(clientId);
  await waitFor("connect", () => seen.connected);
  await waitFor("326", () => seen.info.some(([c]) => c === 326) ||
                             seen.errors.some(([c]) => c === 326));
  await waitFor("disconnected", () => seen.disconnected);
  finish(0);
}

async function watch() {
  t0 = Date.now();
  ib.connect(clientId);
  await new Promise((resolve) => {
    const timer = setTimeout(resolve, watchMs);
    ib.on(EventName.disconnected, () => {
      clearTimeout(timer);
      setTimeout(resolve, 100); // an error reported right after the close is still recorded
    });
  });
  finish(0);
}

setTimeout(() => fail("overall"), 25000).unref();
(mode === "flow" ? flow() : mode === "dup" ? dup() : watch()).catch((e) => {
  seen.errors.push([null, null, `exception: ${e && e.stack ? e.stack : e}`]);
  seen.failed_step = seen.failed_step || "exception";
  finish(1);
});
