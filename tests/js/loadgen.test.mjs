// parley-loadgen against the real parley binary, at small scale: every
// scenario runs to the end, every connection joins, every expected message
// arrives exactly once and in order, and the JSON report and the CSV are
// valid and add up. Also: what the loadgen says when things go wrong (the
// server dies under it; nothing listens), the source addresses it spreads
// connections over, and parley-floor, the baseline server the benchmarks
// compare against, serving the same scenarios.
//
// Every process started here (parley, redis-server, parley-loadgen,
// parley-floor) is ended by PID when the test ends. Under the sanitizers
// (lib/server.mjs), parley-loadgen and parley-floor are checked like parley:
// no sanitizer report in their output, and parley-floor, stopped with
// SIGTERM, exits 0 (LeakSanitizer's check included).

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { after, describe, test } from "node:test";

import {
  assertNoSanitizerReport,
  NO_RATE_LIMITS,
  SANITIZED,
  sleep,
  startServer,
  stopAllServers,
  waitFor,
  withTimeout,
} from "./lib/server.mjs";
import { startRedis, stopAllRedis } from "./lib/redis.mjs";

after(stopAllServers);
after(stopAllRedis);

const here = path.dirname(fileURLToPath(import.meta.url));
const BUILD = path.resolve(here, "..", "..", "build");
const LOADGEN = process.env.PARLEY_LOADGEN || path.join(BUILD, "loadgen", "parley-loadgen");
const FLOOR = process.env.PARLEY_FLOOR || path.join(BUILD, "loadgen", "floor", "parley-floor");
// Sanitized builds are several times slower; sizes stay the same, limits grow.
const SLOW = SANITIZED ? 4 : 1;

const scratch = mkdtempSync(path.join(tmpdir(), "parley-loadgen-test-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

const children = new Map(); // pid -> ChildProcess
process.on("exit", () => {
  for (const pid of children.keys()) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      /* gone */
    }
  }
});

let runs = 0;
/** Runs parley-loadgen SCENARIO with args, plus --report and --csv files;
 * resolves {code, stdout, stderr, report, csv: [rows of cells]}. `during`
 * (optional) is called with the child while it runs. */
async function loadgen(scenario, args, { timeoutMs = 60000 * SLOW, during } = {}) {
  const n = ++runs;
  const report = path.join(scratch, `report-${n}.json`);
  const csv = path.join(scratch, `run-${n}.csv`);
  const proc = spawn(LOADGEN, [scenario, ...args, "--report", report, "--csv", csv, "--quiet"], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.set(proc.pid, proc);
  let stdout = "";
  let stderr = "";
  proc.stdout.setEncoding("utf8").on("data", (d) => (stdout += d));
  proc.stderr.setEncoding("utf8").on("data", (d) => (stderr += d));
  // "close": exited, and its output (its workers' included) all read.
  const closed = new Promise((resolve) => proc.once("close", (code) => resolve(code)));
  if (during) await during(proc);
  const code = await withTimeout(closed, timeoutMs, `parley-loadgen ${scenario} ${args.join(" ")}`).catch(
    (e) => {
      proc.kill("SIGKILL");
      throw e;
    },
  );
  children.delete(proc.pid);
  assertNoSanitizerReport(stderr, `parley-loadgen ${scenario}`);
  let parsed = null;
  try {
    parsed = JSON.parse(readFileSync(report, "utf8"));
  } catch (e) {
    assert.fail(`the report of run ${n} is not JSON (${e.message}); stdout: ${stdout} stderr: ${stderr}`);
  }
  const rows = readFileSync(csv, "utf8").trim().split("\n").map((l) => l.split(","));
  return { code, stdout, stderr, report: parsed, csv: rows };
}

/** Starts parley-floor on an ephemeral port; resolves {url, pid}. It is
 * stopped when test t ends: with SIGTERM under the sanitizers, and then it
 * must exit 0 and print no sanitizer report; else with SIGKILL. */
async function startFloor(t, mode) {
  const proc = spawn(FLOOR, ["--port", "0", "--mode", mode], { stdio: ["ignore", "pipe", "pipe"] });
  children.set(proc.pid, proc);
  let out = "";
  let err = "";
  proc.stderr.setEncoding("utf8").on("data", (d) => (err += d));
  const closed = new Promise((resolve) => proc.once("close", (code, signal) => resolve({ code, signal })));
  t.after(async () => {
    proc.kill(SANITIZED ? "SIGTERM" : "SIGKILL");
    const end = await withTimeout(closed, 30000, "parley-floor to exit").finally(() => {
      proc.kill("SIGKILL");
      children.delete(proc.pid);
    });
    assertNoSanitizerReport(err, "parley-floor");
    if (SANITIZED) assert.deepEqual(end, { code: 0, signal: null }, `parley-floor's exit after SIGTERM: ${err}`);
  });
  const port = await withTimeout(
    new Promise((resolve, reject) => {
      proc.stdout.setEncoding("utf8").on("data", (d) => {
        out += d;
        const m = /listening 127\.0\.0\.1:(\d+)/.exec(out);
        if (m) resolve(Number(m[1]));
      });
      proc.once("exit", (code) => reject(new Error(`parley-floor exited (${code}): ${out}`)));
    }),
    10000,
    "parley-floor to listen",
  );
  return { url: `ws://127.0.0.1:${port}/socket/websocket`, pid: proc.pid };
}

/** What every report must satisfy, whatever the scenario. */
function assertConsistent(r) {
  const m = r.messages;
  assert.equal(m.unique + m.duplicated, m.received - m.unparseable, "received = unique + duplicates");
  assert.ok(r.latency_ms.count <= m.unique, "only distinct deliveries are timed");
  const byTarget = r.latency_by_target_ms.reduce((s, h) => s + h.count, 0);
  assert.equal(byTarget, r.latency_ms.count, "per-target latencies add up to the total");
  assert.equal(r.transit_ms.count, r.latency_ms.count, "every timed delivery has a transit time");
  if (r.transit_ms.count)
    assert.ok(r.transit_ms.p50 <= r.latency_ms.p50 + 0.002 && r.transit_ms.max <= r.latency_ms.max + 0.002,
      "transit (from the real write) is never longer than latency (from the intended time)");
  for (const h of [r.latency_ms, r.transit_ms, r.send_lag_ms, r.connections.join_ms, r.connections.connect_ms]) {
    if (!h.count) continue;
    assert.ok(h.min <= h.p50 && h.p50 <= h.p90 && h.p90 <= h.p99 && h.p99 <= h.p999 && h.p999 <= h.max,
      `percentiles in order: ${JSON.stringify(h)}`);
  }
  // a send that went out early (within --poll-interval) is not late; no run here is a minute late
  assert.ok(r.send_lag_ms.min >= 0 && r.send_lag_ms.max < 60000, `send lag: ${JSON.stringify(r.send_lag_ms)}`);
  assert.ok(r.cpu.loadgen_s >= 0 && r.cpu.window_s > 0, "cpu and window measured");
  assert.equal(typeof r.machine.cores, "number");
  assert.match(r.date, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
}

describe("parley-loadgen against parley", () => {
  test("fanout: every subscriber reads every message once, in order; the report adds up", async (t) => {
    const srv = await startServer(NO_RATE_LIMITS);
    t.after(() => srv.end());
    const subs = 60;
    const msgs = 25;
    const { code, report: r, csv, stdout } = await loadgen("fanout", [
      "--url", srv.url, "--conns", String(subs), "--messages", String(msgs), "--rate", "50",
      "--warmup", "0", "--server-pid", String(srv.pid),
    ]);
    assert.equal(code, 0, stdout);
    assert.equal(r.ok, true, r.verdict);
    assert.equal(r.connections.joined, subs + 1, "subscribers and the publisher joined");
    assert.equal(r.messages.sent, msgs);
    assert.equal(r.messages.acked, msgs, "every push was acknowledged");
    assert.equal(r.messages.expected, msgs * (subs + 1), "the publisher gets its own broadcast too");
    assert.equal(r.messages.unique, r.messages.expected);
    assert.deepEqual([r.messages.lost, r.messages.duplicated, r.messages.out_of_order], [0, 0, 0]);
    assert.equal(r.latency_ms.count, msgs * (subs + 1), "no warm-up: every delivery timed");
    assert.equal(r.fanout.messages_read, msgs);
    assert.equal(r.fanout.last_receiver_ms.count, msgs);
    assert.ok(r.fanout.last_receiver_ms.p99 >= r.fanout.first_receiver_ms.p99);
    assert.ok(r.fanout.last_receiver_ms.max <= r.latency_ms.max + 0.001, "last receiver is a delivery");
    assert.equal(r.cpu.unit, "delivery");
    assert.equal(r.cpu.units, r.latency_ms.count);
    assert.ok(r.cpu.server_s > 0 && r.cpu.server_us_per_unit > 0, "server CPU measured");
    assert.ok(r.server_rss_peak_kb > 0);
    assertConsistent(r);
    assert.deepEqual(csv[0].slice(0, 6), ["t_s", "phase", "open", "joined", "sent", "received"]);
    assert.ok(csv.length >= 2 && csv.every((row) => row.length === csv[0].length), "CSV rows complete");
    assert.equal(csv.filter((row) => row[0] === "t_s").length, 1, "one header row");
    assert.match(stdout, /result: ok/);
  });

  test("fanout burst over MessagePack with two publishers and two workers", async (t) => {
    const srv = await startServer([...NO_RATE_LIMITS, "--out-queue-msgs", "10000"]);
    t.after(() => srv.end());
    const { code, report: r } = await loadgen("fanout", [
      "--url", srv.url, "--serializer", "msgpack", "--conns", "40", "--publishers", "2",
      "--burst", "--messages", "100", "--workers", "2", "--server-pid", String(srv.pid),
      "--poll-interval", "0",
    ]);
    assert.equal(code, 0, r.verdict);
    assert.equal(r.serializer, "msgpack");
    assert.equal(r.params.poll_interval_us, 0);
    assert.equal(r.messages.expected, 100 * 42);
    assert.equal(r.messages.unique, 100 * 42);
    assert.deepEqual([r.messages.lost, r.messages.duplicated, r.messages.out_of_order], [0, 0, 0]);
    assert.equal(r.fanout.messages_read, 100);
    assertConsistent(r);
  });

  test("rooms: users in rooms, open loop; each room hears only its own", async (t) => {
    const srv = await startServer(NO_RATE_LIMITS);
    t.after(() => srv.end());
    const users = 60;
    const rooms = 6;
    const { code, report: r } = await loadgen("rooms", [
      "--url", srv.url, "--conns", String(users), "--rooms", String(rooms), "--rate", "5",
      "--duration", "1", "--warmup", "0.4", "--workers", "2", "--server-pid", String(srv.pid),
    ]);
    assert.equal(code, 0, r.verdict);
    assert.equal(r.connections.joined, users);
    // 1.4 s at 5 msg/s each: about 7 per user, whatever the phase
    assert.ok(r.messages.sent >= users * 6 && r.messages.sent <= users * 8, `sent ${r.messages.sent}`);
    assert.equal(r.messages.expected, r.messages.sent * (users / rooms), "each message reaches its room");
    assert.equal(r.messages.unique, r.messages.expected);
    assert.equal(r.messages.unparseable, 0, "no message from another room");
    assert.ok(r.messages.untimed > 0 && r.latency_ms.count > 0, "warm-up messages checked but not timed");
    assert.ok(r.messages.sent_in_window < r.messages.sent, "warm-up sends are not in the window");
    assert.equal(r.latency_ms.count + r.messages.untimed, r.messages.unique);
    assertConsistent(r);
  });

  // Each worker scans a presence payload once and applies what it found to
  // every client that reads the same bytes: with one worker and with two,
  // in both serializers, every view must still end up whole.
  for (const [serializer, workers] of [["msgpack", 1], ["json", 2]]) {
    test(`presence (${serializer}, ${workers} worker${workers > 1 ? "s" : ""}): every client's view ends up holding every user`, async (t) => {
      const srv = await startServer(NO_RATE_LIMITS);
      t.after(() => srv.end());
      const users = 50;
      const { code, report: r } = await loadgen("presence", [
        "--url", srv.url, "--conns", String(users), "--rate", "250", "--serializer", serializer,
        "--workers", String(workers), "--server-pid", String(srv.pid),
      ]);
      assert.equal(code, 0, r.verdict);
      assert.equal(r.presence.users, users);
      assert.equal(r.presence.views_complete, users);
      assert.ok(r.presence.last_view_complete_ms >= r.presence.last_join_ms - 1, "complete after the last join");
      assert.ok(r.presence.frames >= users, "presence_state and diffs were read");
      assert.equal(r.connections.joined, users);
      assert.equal(r.cpu.unit, "join");
      assert.equal(r.send_lag_ms.count, users, "each join's lag against the schedule");
      assertConsistent(r);
    });
  }

  test("connect: connections held from several source addresses; memory per connection", async (t) => {
    const srv = await startServer(NO_RATE_LIMITS);
    t.after(() => srv.end());
    const conns = 300;
    const sources = new Set();
    const { code, report: r } = await loadgen(
      "connect",
      ["--url", srv.url, "--conns", String(conns), "--rooms", "3", "--hold", String(2 * SLOW),
        "--workers", "2", "--source-ips", "8", "--ramp", "3000", "--server-pid", String(srv.pid)],
      {
        during: async () => {
          // while held: the server's established peers, from /proc/net/tcp
          const portHex = srv.port.toString(16).toUpperCase().padStart(4, "0");
          await waitFor(() => {
            sources.clear();
            for (const line of readFileSync("/proc/net/tcp", "utf8").split("\n").slice(1)) {
              const f = line.trim().split(/\s+/);
              if (f.length > 3 && f[1].endsWith(`:${portHex}`) && f[3] === "01") sources.add(f[2].split(":")[0]);
            }
            return sources.size >= 8;
          }, 20000 * SLOW, "connections from 8 source addresses");
        },
      },
    );
    assert.equal(code, 0, r.verdict);
    assert.equal(r.connections.joined, conns);
    assert.equal(r.connections.join_ms.count, conns);
    assert.equal(sources.size, 8, "127.0.0.1 .. 127.0.0.8");
    assert.ok(r.connections.per_s > 0);
    assert.ok(r.server_bytes_per_connection > 0, "server memory per connection measured");
    assert.equal(r.cpu.unit, "connection");
  });

  test("--heartbeat: every held connection heartbeats each period and gets replies; 0 sends none", async (t) => {
    const srv = await startServer(NO_RATE_LIMITS);
    t.after(() => srv.end());
    const conns = 40;
    const hold = 3;
    const beating = await loadgen("connect", ["--url", srv.url, "--conns", String(conns), "--hold", String(hold),
      "--heartbeat", "1", "--workers", "2"]);
    assert.equal(beating.code, 0, beating.report.verdict);
    assert.equal(beating.report.connections.joined, conns);
    assert.equal(beating.report.params.heartbeat_s, 1);
    assert.equal(beating.report.params.poll_interval_us, 250, "the default poll interval");
    // each connection beats once a second while held (the connect phase adds
    // a little): at least hold - 1 beats each, and not more than one a second
    const replies = beating.report.connections.heartbeat_replies;
    const seconds = beating.report.connections.seconds + hold;
    assert.ok(replies >= conns * (hold - 1), `${replies} heartbeat replies`);
    assert.ok(replies <= conns * (Math.ceil(seconds) + 1), `${replies} heartbeat replies in ${seconds} s`);

    const silent = await loadgen("connect", ["--url", srv.url, "--conns", "10", "--hold", "1", "--heartbeat", "0"]);
    assert.equal(silent.code, 0, silent.report.verdict);
    assert.equal(silent.report.connections.joined, 10);
    assert.equal(silent.report.connections.heartbeat_replies, 0);
  });

  test("crossnode: published on one node, read on both through Redis", async (t) => {
    const redis = await startRedis();
    const a = await startServer([...NO_RATE_LIMITS, "--redis", redis.addr]);
    t.after(() => a.end());
    const b = await startServer([...NO_RATE_LIMITS, "--redis", redis.addr]);
    t.after(() => b.end());
    await waitFor(async () => (await a.healthz()).peers === 1 && (await b.healthz()).peers === 1, 10000,
      "the two nodes see each other");
    const { code, report: r } = await loadgen("crossnode", [
      "--url", a.url, "--url", b.url, "--conns", "20", "--rate", "200", "--duration", "1",
      "--warmup", "0.2", "--server-pid", String(a.pid), "--server-pid", String(b.pid),
      "--workers", "2",
    ]);
    assert.equal(code, 0, r.verdict);
    // 0.2 s of warm-up at 200/s: 40 messages checked but not timed, also per message
    assert.ok(r.fanout.messages_read >= 195 && r.fanout.messages_read <= 201, `${r.fanout.messages_read}`);
    assert.equal(r.latency_by_target_ms.length, 2);
    assert.ok(r.latency_by_target_ms[1].count > 0, "node B's subscribers read A's messages");
    assert.ok(r.latency_by_target_ms[0].count > 0);
    assert.equal(r.messages.unique, r.messages.expected);
    assert.equal(r.fanout.last_receiver_by_target_ms.length, 2);
    assert.equal(r.servers.length, 2);
    assertConsistent(r);
  });

  test("a server that dies under load: closed connections and lost messages are reported", async (t) => {
    const srv = await startServer(NO_RATE_LIMITS);
    t.after(() => srv.end());
    const { code, report: r } = await loadgen(
      "fanout",
      // The server dies at 1.5 s of a 4 s run (both scaled under sanitizers).
      ["--url", srv.url, "--conns", "30", "--rate", "40", "--duration", String(4 * SLOW), "--warmup", "0",
        "--drain", "1"],
      {
        during: async () => {
          await sleep(1500 * SLOW);
          srv.kill();
        },
      },
    );
    assert.equal(code, 1, "a failed run exits 1");
    assert.equal(r.ok, false);
    assert.match(r.verdict, /^FAIL/);
    assert.equal(r.errors.closed, 31, "every connection counted as closed by the server");
    assert.ok(r.errors.close_codes["1006"] === 31, JSON.stringify(r.errors));
    assert.ok(r.messages.sent > 0 && r.messages.sent < 100 * SLOW, "sending stopped with the server (killed at 60 * SLOW sent)");
  });

  test("--token-key: every connection gets in to a server with --auth required as its own user; a wrong key gets none in", async (t) => {
    const key = "k1:loadgen-test-secret-of-32-bytes-at-least";
    // one connection per user: tokens of one shared user would be refused
    const srv = await startServer([...NO_RATE_LIMITS, "--auth", "required", "--auth-keys", key,
      "--max-conns-per-user", "1"]);
    t.after(() => srv.end());
    const users = 40;
    const rooms = 4;
    const { code, report: r } = await loadgen("rooms", [
      "--url", srv.url, "--conns", String(users), "--rooms", String(rooms), "--rate", "4",
      "--duration", "1", "--warmup", "0.2", "--token-key", key, "--token-tenant", "acme",
    ]);
    assert.equal(code, 0, r.verdict);
    assert.equal(r.params.tokens, true);
    assert.equal(r.connections.joined, users);
    assert.equal(r.messages.unique, r.messages.expected, "every message reached its room");
    assert.equal(r.messages.expected, r.messages.sent * (users / rooms));
    const m = await srv.metrics();
    assert.equal(m.get('parley_upgrades_rejected_total{reason="user_limit"}') ?? 0, 0, "each its own user");
    assert.equal(m.get('parley_upgrades_rejected_total{reason="token_missing"}') ?? 0, 0);
    assert.equal(m.get('parley_upgrades_rejected_total{reason="token_invalid"}') ?? 0, 0);

    const bad = await loadgen("connect", [
      "--url", srv.url, "--conns", "5", "--hold", "0", "--token-key", "k1:another-secret-of-32-bytes-at-least",
    ]);
    assert.equal(bad.code, 1);
    assert.equal(bad.report.connections.joined, 0);
    assert.equal(bad.report.errors.handshake, 5, JSON.stringify(bad.report.errors));
    assert.equal((await srv.metrics()).get('parley_upgrades_rejected_total{reason="token_invalid"}'), 5);
  });

  test("nothing listening: every connection fails with a connect error", async (t) => {
    const srv = await startServer(NO_RATE_LIMITS);
    t.after(() => srv.end());
    const url = srv.url;
    await srv.stop();
    const { code, report: r } = await loadgen("connect", ["--url", url, "--conns", "10", "--hold", "0"]);
    assert.equal(code, 1);
    assert.equal(r.errors.connect, 10);
    assert.equal(r.connections.joined, 0);
    assert.match(r.verdict, /0 of 10 connections joined/);
  });
});

/** Within what the bucket refills at 10/s while the abuser is connected
 * (a slow, sanitized build takes a while to refuse a flood). */
/** value is about per x count: at least per for each of `count` connections
 * the server closed (`least`, default count), at most per for each of `count`,
 * plus what the rate repays while connected. The last connection may still be
 * in its burst when the run ends (slowly, on a sanitized build). */
function aboutPer(value, per, count, a, least = count) {
  const slack = Math.ceil(a.connected_s * 10) + count;
  assert.ok(value >= per * least && value <= per * count + slack, `${value} vs ${per} x ${count}: ${JSON.stringify(a)}`);
}

describe("--abuse: one abusive connection beside the scenario", () => {
  // Rooms at 5 msg/s per user, under parley's default limits: the abuser
  // works on room 0 (10 members) during the measured window and reconnects
  // 0.3 s after each close; the ordinary clients lose nothing. These tests
  // count what each of its connections costs, so the reconnect penalty,
  // which would refuse most of them (tests/js/penalty.test.mjs), is off.
  const NO_BANS = ["--abuse-ban", "0"];
  const rooms = ["--conns", "60", "--rooms", "6", "--rate", "5", "--duration", "2", "--warmup", "0.4",
    "--workers", "2", "--abuse-reconnect", "0.3"];

  test("flood: refused as rate_limited, closed with 4004 each time; only what it was allowed reached room 0", async () => {
    const srv = await startServer(NO_BANS);
    const { code, report: r } = await loadgen("rooms", ["--url", srv.url, ...rooms, "--abuse", "flood"]);
    assert.equal(code, 0, r.verdict);
    const a = r.abuser;
    assert.equal(a.kind, "flood");
    assert.equal(a.priority, "idle", "the abuser's process runs at SCHED_IDLE by default");
    assert.ok(a.connections >= 2 && a.closed_by_server >= 2, JSON.stringify(a));
    assert.equal(a.close_codes["4004"], a.closed_by_server, "every close was 4004");
    aboutPer(a.rate_limited, 11, a.closed_by_server, a); // 10 tolerated refusals and the one that closes, each time
    aboutPer(a.acked, 30, a.upgraded, a, a.closed_by_server); // the default burst of 30, each time
    assert.equal(a.delivered_to_others, a.acked * 10, "each accepted message reached room 0's 10 members");
    assert.ok(a.close_after_ms_max < 1000 * SLOW, `closed within a second: ${a.close_after_ms_max} ms`);
    assert.deepEqual([r.messages.lost, r.messages.duplicated, r.messages.unparseable], [0, 0, 0]);
    const m = await srv.metrics();
    assert.equal(m.get("parley_rate_limit_disconnects_total"), a.closed_by_server);
    // the others' transits, split by the abuser's connections: a few
    // milliseconds each, so most arrived apart from them
    const during = a.others_transit_during_ms.count, apart = a.others_transit_apart_ms.count;
    assert.equal(during + apart, r.transit_ms.count, "every timed delivery is during or apart");
    assert.ok(during > 0 && apart > during, `during ${during}, apart ${apart}`);
  });

  test("joinspam: joins refused as rate_limited, closed with 4004", async () => {
    const srv = await startServer(NO_BANS);
    const { code, report: r } = await loadgen("rooms", ["--url", srv.url, ...rooms, "--abuse", "joinspam"]);
    assert.equal(code, 0, r.verdict);
    const a = r.abuser;
    assert.ok(a.closed_by_server >= 2 && a.close_codes["4004"] === a.closed_by_server, JSON.stringify(a));
    aboutPer(a.acked, 100, a.upgraded, a, a.closed_by_server); // the default join burst of 100, each time
    aboutPer(a.rate_limited, 11, a.closed_by_server, a);
    assert.equal(r.messages.lost, 0);
  });

  test("slowread: joins every room, never reads, and is cut off as a slow consumer", async () => {
    const srv = await startServer(["--out-queue-msgs", "20"]);
    // 3 KB messages at 8/s per user: 2 MB/s for the slow reader to take in,
    // so that the kernel's send buffer (up to 4 MB) fills within the run.
    const { code, report: r } = await loadgen("rooms", ["--url", srv.url, ...rooms, "--duration", "4",
      "--rate", "8", "--payload", "3000", "--abuse", "slowread", "--abuse-reconnect", "-1", "--abuse-priority", "normal"]);
    assert.equal(code, 0, r.verdict);
    const a = r.abuser;
    assert.equal(a.connections, 1, "no reconnect with --abuse-reconnect -1");
    assert.equal(a.priority, "normal", "--abuse-priority normal: not SCHED_IDLE");
    assert.equal(a.sent, 6, "it joined the 6 rooms");
    // The server cuts it off once its queue passes 20 frames; the TCP
    // connection itself goes 5 s later (the close frame cannot be written),
    // which may be after the run.
    await waitFor(async () => (await srv.metrics()).get("parley_slow_consumer_disconnects_total") === 1,
      10000 * SLOW, "the slow reader is cut off");
    assert.ok(a.closed_by_server <= 1, JSON.stringify(a));
    assert.equal(r.messages.lost, 0);
  });

  test("--abuse-hold: a slow reader that hangs up by itself and comes back, so its deliveries split into during and apart", async () => {
    const srv = await startServer();
    const { code, report: r } = await loadgen("rooms", ["--url", srv.url, ...rooms, "--duration", "3",
      "--abuse", "slowread", "--abuse-hold", "0.5", "--abuse-reconnect", "0.5"]);
    assert.equal(code, 0, r.verdict);
    const a = r.abuser;
    assert.equal(a.hold_s, 0.5);
    // 3 s of 0.5 s connected and 0.5 s away: 3 connections, give or take
    // one for where the window cuts; the server closed none of them.
    assert.ok(a.connections >= 2 && a.connections <= 4, JSON.stringify(a));
    assert.equal(a.closed_by_server, 0, "it hung up itself");
    assert.equal(a.sent, 6 * a.upgraded, "it joined the 6 rooms each time");
    assert.ok(a.connected_s > 0.25 * a.connections && a.connected_s < 0.75 * a.connections, `connected ${a.connected_s} s`);
    const during = a.others_transit_during_ms.count, apart = a.others_transit_apart_ms.count;
    assert.equal(during + apart, r.transit_ms.count);
    assert.ok(during > 0.3 * r.transit_ms.count && apart > 0.3 * r.transit_ms.count, `during ${during}, apart ${apart}`);
    assert.equal(r.messages.lost, 0);
    // The server saw each of its connections go.
    await waitFor(async () => (await srv.metrics()).get("parley_connections") === 0, 5000 * SLOW, "every connection gone");
  });
});

describe("parley-floor, the baseline server", () => {
  for (const mode of ["send", "coalesce"]) {
    test(`--mode ${mode}: serves the fanout scenario completely`, async (t) => {
      const floor = await startFloor(t, mode);
      const { code, report: r } = await loadgen("fanout", [
        "--url", floor.url, "--conns", "50", "--messages", "20", "--rate", "100", "--warmup", "0",
        "--server-pid", String(floor.pid), ...(mode === "coalesce" ? ["--burst"] : []),
      ]);
      assert.equal(code, 0, r.verdict);
      assert.equal(r.messages.unique, 20 * 51);
      assert.ok(r.cpu.server_s > 0);
    });
  }
});
