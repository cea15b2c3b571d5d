// Operations: /healthz, /metrics, orderly shutdown on SIGTERM / SIGINT, the
// idle timeout, static files, and which paths upgrade to a WebSocket.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, test } from "node:test";

import { Socket } from "phoenix";

import {
  connectRaw,
  httpGet,
  PARLEY_BIN,
  RawClient,
  sleep,
  NO_RATE_LIMITS,
  startServer,
  stopAllServers,
  tcpQueues,
  waitFor,
  WebSocket,
  withTimeout,
} from "./lib/server.mjs";

after(stopAllServers);

/** WebSocket frame header size the server uses for a payload of n bytes. */
const wsHeader = (n) => (n < 126 ? 2 : n < 65536 ? 4 : 10);

describe("/healthz", () => {
  test("reports status, version, uptime, connections and topics", async (t) => {
    const server = await startServer();
    t.after(() => server.end());
    const version = execFileSync(PARLEY_BIN, ["--version"], { encoding: "utf8" }).trim();

    const raw = await httpGet(server.port, "/healthz");
    assert.equal(raw.status, 200);
    assert.match(raw.headers["content-type"], /^application\/json/);
    const h0 = JSON.parse(raw.body);
    assert.deepEqual(Object.keys(h0).sort(), ["connections", "node", "status", "topics", "uptime_s", "version"]);
    assert.equal(h0.status, "ok");
    // The node id is unique per start and appears in the startup log line.
    assert.match(h0.node, /^n[0-9a-f]{12}$/);
    assert.match(server.stderr(), new RegExp(`event=listening .*node=${h0.node}`));
    assert.equal(`parley ${h0.version}`, version);
    assert.equal(typeof h0.uptime_s, "number");
    assert.ok(h0.uptime_s >= 0 && h0.uptime_s < 30, `uptime_s ${h0.uptime_s}`);
    assert.equal(h0.connections, 0);
    assert.equal(h0.topics, 0);

    const a = await connectRaw(server, "v2");
    const b = await connectRaw(server, "v1");
    const c = await connectRaw(server, "msgpack");
    t.after(() => [a, b, c].forEach((x) => x.terminate()));
    await a.join("room:h1");
    await b.join("room:h1");
    await c.join("room:h2");
    const h1 = await server.healthz();
    assert.equal(h1.http, 200);
    assert.equal(h1.connections, 3);
    assert.equal(h1.topics, 2);

    c.close();
    await c.closed();
    const h2 = await waitFor(
      async () => {
        const h = await server.healthz();
        return h.connections === 2 ? h : null;
      },
      5000,
      "connections to drop to 2",
    );
    assert.equal(h2.topics, 1, "room:h2 lost its only subscriber");
    await sleep(1100);
    const h3 = await server.healthz();
    assert.ok(h3.uptime_s >= h0.uptime_s + 1, `uptime grows: ${h0.uptime_s} -> ${h3.uptime_s}`);
  });
});

describe("/metrics", () => {
  test("exposes every documented metric with HELP/TYPE, in Prometheus text", async (t) => {
    const server = await startServer();
    t.after(() => server.end());
    const res = await httpGet(server.port, "/metrics");
    assert.equal(res.status, 200);
    assert.match(res.headers["content-type"], /^text\/plain/);
    const names = {
      parley_connections: "gauge",
      parley_connections_total: "counter",
      parley_joins_total: "counter",
      parley_channels: "gauge",
      parley_topics: "gauge",
      parley_messages_in_total: "counter",
      parley_messages_out_total: "counter",
      parley_bytes_in_total: "counter",
      parley_bytes_out_total: "counter",
      parley_broadcasts_total: "counter",
      parley_slow_consumer_disconnects_total: "counter",
      parley_idle_disconnects_total: "counter",
      parley_errors_total: "counter",
    };
    for (const [name, type] of Object.entries(names)) {
      assert.match(res.body, new RegExp(`^# TYPE ${name} ${type}$`, "m"), `TYPE of ${name}`);
      assert.match(res.body, new RegExp(`^# HELP ${name} \\S`, "m"), `HELP of ${name}`);
    }
    const m = await server.metrics();
    for (const name of Object.keys(names)) {
      if (name !== "parley_errors_total") assert.equal(m.get(name), 0, `${name} starts at 0`);
    }
    const kinds = [
      "malformed", "not_a_message", "field_type", "invalid_utf8", "too_deep", "too_big",
      "frame_type", "unsupported_type", "bad_vsn", "bad_topic", "bad_event", "bad_payload",
      "unmatched_topic", "too_many_channels", "reserved_event", "stale_join_ref",
    ];
    for (const k of kinds) assert.equal(m.get(`parley_errors_total{kind="${k}"}`), 0, `errors kind ${k}`);
  });

  test("event loop iterations: a cumulative histogram that grows with traffic; stalls counted beside it", async (t) => {
    const server = await startServer();
    t.after(() => server.end());
    const les = ["0.001", "0.005", "0.02", "0.1", "0.5", "+Inf"];
    const read = async () => {
      const res = await httpGet(server.port, "/metrics");
      assert.match(res.body, /^# TYPE parley_loop_iteration_seconds histogram$/m);
      assert.match(res.body, /^# TYPE parley_loop_stalls_total counter$/m);
      const m = await server.metrics();
      const buckets = les.map((le) => m.get(`parley_loop_iteration_seconds_bucket{le="${le}"}`));
      for (let i = 1; i < buckets.length; i++) assert.ok(buckets[i] >= buckets[i - 1], `cumulative at le=${les[i]}`);
      assert.equal(buckets.at(-1), m.get("parley_loop_iteration_seconds_count"), "+Inf holds every iteration");
      assert.ok(m.get("parley_loop_iteration_seconds_sum") >= 0);
      assert.ok(m.get("parley_loop_stalls_total") <= buckets.at(-1) - buckets[3], "a stall is an iteration over 50 ms");
      return m;
    };
    const m0 = await read();
    const a = await connectRaw(server, "v2");
    t.after(() => a.terminate());
    for (let i = 0; i < 5; i++) {
      await a.sendRaw(JSON.stringify([null, `hb${i}`, "phoenix", "heartbeat", {}]));
      await a.reply("phoenix", `hb${i}`);
    }
    const m1 = await read();
    const iterations = m1.get("parley_loop_iteration_seconds_count") - m0.get("parley_loop_iteration_seconds_count");
    assert.ok(iterations >= 5, `${iterations} iterations for a connection and 5 heartbeats`);
  });

  test("counters move exactly with connections, joins and messages", async (t) => {
    const server = await startServer();
    t.after(() => server.end());
    const m0 = await server.metrics();
    const a = await connectRaw(server, "v2");
    const b = await connectRaw(server, "v2");
    t.after(() => (a.terminate(), b.terminate()));
    const sent = [];
    const send = (c, arr) => {
      const text = JSON.stringify(arr);
      sent.push(text);
      return c.sendRaw(text);
    };
    const T = "room:metrics";
    await send(a, ["1", "1", T, "phx_join", {}]);
    await a.reply(T, "1");
    await send(b, ["1", "1", T, "phx_join", {}]);
    await b.reply(T, "1");
    for (let i = 0; i < 3; i++) {
      await send(a, ["1", `m${i}`, T, "talk", { i, text: "x".repeat(200 * i) }]);
      await a.reply(T, `m${i}`);
    }
    await send(a, [null, "hb", "phoenix", "heartbeat", {}]);
    await a.reply("phoenix", "hb");
    for (let i = 0; i < 3; i++) await b.broadcast(T, "talk", (p) => p.i === i);
    for (let i = 0; i < 3; i++) await a.broadcast(T, "talk", (p) => p.i === i);

    const m1 = await server.metrics();
    const d = (k) => m1.get(k) - m0.get(k);
    assert.equal(m1.get("parley_connections"), 2);
    assert.equal(d("parley_connections_total"), 2);
    assert.equal(d("parley_joins_total"), 2);
    assert.equal(m1.get("parley_channels"), 2);
    assert.equal(m1.get("parley_topics"), 1);
    assert.equal(d("parley_messages_in_total"), 6, "2 joins + 3 messages + 1 heartbeat");
    assert.equal(d("parley_broadcasts_total"), 3);
    // Out: 2 join replies + 2 presence_state pushes (every topic has presence by
    // default) + 3 push replies + 1 heartbeat reply + 3 x 2 broadcasts.
    assert.equal(d("parley_messages_out_total"), 14);
    const inBytes = sent.reduce((n, s) => n + Buffer.byteLength(s), 0);
    assert.equal(d("parley_bytes_in_total"), inBytes, "bytes in = bytes of the messages sent");
    const outBytes = [...a.messages, ...b.messages].reduce((n, msg) => n + msg.raw.length + wsHeader(msg.raw.length), 0);
    assert.equal(a.messages.length + b.messages.length, 14);
    assert.equal(d("parley_bytes_out_total"), outBytes, "bytes out = WebSocket frames received");

    b.close();
    await b.closed();
    const m2 = await waitFor(
      async () => {
        const m = await server.metrics();
        return m.get("parley_connections") === 1 ? m : null;
      },
      5000,
      "connections gauge to drop",
    );
    assert.equal(m2.get("parley_connections_total"), m1.get("parley_connections_total"), "total does not drop");
    assert.equal(m2.get("parley_channels"), 1);
    assert.equal(m2.get("parley_topics"), 1);
    assert.equal(m2.get("parley_joins_total"), m1.get("parley_joins_total"));
  });
});

describe("shutdown", () => {
  test("SIGTERM: clients get 1001, new connections are refused, exit code 0", async (t) => {
    const server = await startServer([
      ...NO_RATE_LIMITS,
      "--shutdown-grace", "2",
      "--out-queue-msgs", "1000000",
      "--out-queue-bytes", "268435456",
    ]);
    t.after(() => server.end());

    const a = await connectRaw(server, "v2");
    await a.join("room:a");
    const phx = new Socket(server.socketBase, { transport: WebSocket, reconnectAfterMs: () => 60000, heartbeatIntervalMs: 30000 });
    const phxClosed = new Promise((resolve) => phx.onClose(resolve));
    await withTimeout(new Promise((resolve) => (phx.onOpen(resolve), phx.connect())), 5000, "phoenix open");
    t.after(() => phx.disconnect());

    // A stuck client: it stops reading while a flood fills the kernel
    // buffers, so the server cannot finish closing it and stays in its
    // stopping state until --shutdown-grace runs out. That is the window in
    // which new connections must be refused.
    const stuck = await connectRaw(server, "v2");
    t.after(() => stuck.terminate());
    await stuck.join("room:stuck");
    const flood = await connectRaw(server, "v2");
    t.after(() => flood.terminate());
    const { joinRef } = await flood.join("room:stuck");
    stuck.ws._socket.pause();
    const pad = "s".repeat(2000);
    // The server's send buffer is full once the bytes the kernel holds for
    // the stuck socket stop growing while the flood goes on (parley's own
    // queue holds the rest). The kernel grows a send buffer over time, so the
    // plateau must last a while: five checks 250 ms apart.
    let full = 0;
    let lastTx = -1;
    for (let sent = 0; sent < 30000 && full < 5; ) {
      const refs = [];
      for (let i = 0; i < 50; i++, sent++) {
        const ref = flood.makeRef();
        refs.push(ref);
        flood.send(joinRef, ref, "room:stuck", "fill", { sent, pad });
      }
      for (const ref of refs) await flood.reply("room:stuck", ref, 10000);
      flood.messages.length = 0; // the flood's own copies are not needed
      flood.consumed.clear();
      const q = tcpQueues(server.port, stuck.ws._socket.localPort);
      assert.ok(q, "the stuck client's connection is in /proc/net/tcp");
      full = q.tx > 64 * 1024 && q.tx === lastTx ? full + 1 : 0;
      if (q.tx > 64 * 1024 && q.tx <= lastTx) await sleep(250);
      lastTx = q.tx;
    }
    assert.ok(full >= 5, "the stuck client's socket filled up");
    flood.close();
    await flood.closed();

    const t0 = Date.now();
    server.proc.kill("SIGTERM");
    assert.deepEqual(await a.closed(5000), { code: 1001, reason: "server shutting down" });
    const ev = await withTimeout(phxClosed, 5000, "phoenix onClose");
    assert.equal(ev.code, 1001);
    assert.equal(ev.reason, "server shutting down");

    // During the stop: still running, but refusing WebSockets and HTTP.
    assert.equal(server.running(), true, "server still stopping (held by the stuck client)");
    await assert.rejects(RawClient.connect(`${server.url}?vsn=2.0.0`, { timeoutMs: 3000 }), "WebSocket refused while stopping");
    await assert.rejects(httpGet(server.port, "/healthz", { timeoutMs: 3000 }), "HTTP refused while stopping");
    assert.equal(server.running(), true, "still within the grace period");

    const { code, signal } = await withTimeout(server.exited, 8000, "exit after SIGTERM");
    const took = Date.now() - t0;
    assert.equal(signal, null);
    assert.equal(code, 0);
    assert.ok(took < 2000 + 5000, `exited within the grace period plus slack (${took} ms)`);
    assert.match(server.stderr(), /event=stopping signal=15/);
    assert.match(server.stderr(), /event=shutdown_grace_expired connections=1/);
    assert.match(server.stderr(), /event=stopped/);

    // After exit: nothing listens any more.
    await assert.rejects(RawClient.connect(`${server.url}?vsn=2.0.0`, { timeoutMs: 3000 }), /ECONNREFUSED/);
    // The stuck client's connection ended too.
    stuck.ws._socket.resume();
    const sc = await stuck.closed(10000);
    assert.ok([1001, 1006].includes(sc.code), `stuck client closed with ${sc.code}`);
  });

  test("SIGINT: every socket closed with 1001 and a prompt exit 0", async (t) => {
    const server = await startServer();
    t.after(() => server.end());
    const clients = [await connectRaw(server, "v2"), await connectRaw(server, "v1"), await connectRaw(server, "msgpack")];
    t.after(() => clients.forEach((c) => c.terminate()));
    for (const c of clients) await c.join("room:int");
    const t0 = Date.now();
    server.proc.kill("SIGINT");
    for (const c of clients) assert.deepEqual(await c.closed(5000), { code: 1001, reason: "server shutting down" });
    assert.deepEqual(await withTimeout(server.exited, 5000, "exit after SIGINT"), { code: 0, signal: null });
    assert.ok(Date.now() - t0 < 3000, "clients that answer the close do not hold the exit");
    assert.match(server.stderr(), /event=stopping signal=2/);
  });
});

describe("idle timeout", () => {
  test("--idle-timeout 1: a silent client is closed with 1000, a heartbeating one stays", async (t) => {
    const server = await startServer(["--idle-timeout", "1"]);
    t.after(() => server.end());
    const silent = await connectRaw(server, "v2");
    const alive = await connectRaw(server, "v2");
    t.after(() => (silent.terminate(), alive.terminate()));
    const t0 = Date.now();
    let beats = 0;
    const timer = setInterval(() => {
      alive.heartbeat().then(() => beats++, () => {});
    }, 300);
    t.after(() => clearInterval(timer));
    assert.deepEqual(await silent.closed(3000), { code: 1000, reason: "idle timeout" });
    const closedAfter = Date.now() - t0;
    assert.ok(closedAfter >= 900, `not before the timeout (${closedAfter} ms)`);
    // The heartbeating client outlives the timeout by far.
    await sleep(3500 - closedAfter);
    assert.equal(alive.isOpen, true, "heartbeating client still open after 3.5 s");
    assert.ok(beats >= 8, `heartbeats answered: ${beats}`);
    clearInterval(timer);
    const m = await server.metrics();
    assert.equal(m.get("parley_idle_disconnects_total"), 1);
    assert.equal(m.get("parley_connections"), 1);
    // Once it stops talking, it is closed too.
    assert.deepEqual(await alive.closed(3000), { code: 1000, reason: "idle timeout" });
    assert.equal((await server.metrics()).get("parley_idle_disconnects_total"), 2);
  });
});

describe("static files", () => {
  const root = mkdtempSync(path.join(tmpdir(), "parley-static-"));
  const www = path.join(root, "www");
  mkdirSync(path.join(www, "sub"), { recursive: true });
  const INDEX = "<!doctype html><title>parley</title><h1>index of parley test</h1>\n";
  writeFileSync(path.join(www, "index.html"), INDEX);
  writeFileSync(path.join(www, "sub", "note.txt"), "a note\n");
  writeFileSync(path.join(root, "secret.txt"), "TOP-SECRET-OUTSIDE-ROOT\n");
  after(() => rmSync(root, { recursive: true, force: true }));

  test("GET / serves index.html; files and 404s under --static-dir", async (t) => {
    const server = await startServer(["--static-dir", www]);
    t.after(() => server.end());
    const r = await httpGet(server.port, "/");
    assert.equal(r.status, 200);
    assert.equal(r.body, INDEX);
    assert.match(r.headers["content-type"], /^text\/html/);
    const idx = await httpGet(server.port, "/index.html");
    assert.equal(idx.status, 200);
    assert.equal(idx.body, INDEX);
    const note = await httpGet(server.port, "/sub/note.txt");
    assert.equal(note.status, 200);
    assert.equal(note.body, "a note\n");
    assert.equal((await httpGet(server.port, "/missing.html")).status, 404);
    // The dynamic endpoints still win over the static mount.
    assert.equal((await server.healthz()).status, "ok");
    assert.equal((await server.metrics()).get("parley_connections"), 0);
  });

  test("a kept-alive connection that fetched a file is not taken for a slow handshake", async (t) => {
    const server = await startServer(["--static-dir", www, "--handshake-timeout", "1"]);
    t.after(() => server.end());
    const sock = net.connect(server.port, "127.0.0.1");
    t.after(() => sock.destroy());
    let got = "";
    let closed = false;
    sock.on("data", (d) => (got += d));
    sock.on("close", () => (closed = true));
    sock.write("GET /sub/note.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    await waitFor(() => got.includes("a note"), 5000, "the file");
    await sleep(2500); // past the handshake timeout, twice the sweep
    assert.equal(closed, false, "still open");
    assert.equal((await server.metrics()).get("parley_handshake_timeouts_total"), 0);
    sock.write("GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n");
    await waitFor(() => got.includes("index of parley test"), 5000, "the second file on the same connection");
  });

  test("path traversal does not escape --static-dir", async (t) => {
    const server = await startServer(["--static-dir", www]);
    t.after(() => server.end());
    const attempts = [
      "/../secret.txt",
      "/../../../../../../etc/passwd",
      "/sub/../../secret.txt",
      "/%2e%2e/secret.txt",
      "/..%2fsecret.txt",
      "/sub/..%2f..%2fsecret.txt",
      "/%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
      "/..\\secret.txt",
      "//etc/passwd",
      "/./../secret.txt",
    ];
    for (const p of attempts) {
      let res;
      try {
        res = await httpGet(server.port, p);
      } catch (e) {
        continue; // a dropped connection does not leak anything either
      }
      assert.ok(!res.body.includes("TOP-SECRET"), `${p} leaked the file outside the root`);
      assert.ok(!/^root:/m.test(res.body), `${p} leaked /etc/passwd`);
      assert.notEqual(res.status, 200, `${p} answered 200: ${res.body.slice(0, 80)}`);
    }
    // And the server is still fine.
    assert.equal((await httpGet(server.port, "/")).body, INDEX);
  });

  test("without --static-dir, / is 404", async (t) => {
    const server = await startServer();
    t.after(() => server.end());
    const r = await httpGet(server.port, "/");
    assert.equal(r.status, 404);
    assert.equal((await httpGet(server.port, "/index.html")).status, 404);
  });
});

describe("WebSocket upgrade paths", () => {
  test("only /socket/websocket upgrades", async (t) => {
    const server = await startServer();
    t.after(() => server.end());
    const base = `ws://127.0.0.1:${server.port}`;
    for (const p of ["/", "/other/websocket", "/socket", "/socket/websocket/extra", "/socket/websocketX", "/healthz", "/metrics"]) {
      await assert.rejects(RawClient.connect(`${base}${p}?vsn=2.0.0`, { timeoutMs: 3000 }), `${p} must not upgrade`);
    }
    const m = await server.metrics();
    assert.equal(m.get("parley_connections_total"), 0, "no WebSocket session was opened");
    // The real path works, with and without a query.
    const ok = await RawClient.connect(`${base}/socket/websocket?vsn=2.0.0`, { format: "v2" });
    t.after(() => ok.terminate());
    assert.deepEqual((await ok.heartbeat()).payload, { status: "ok", response: {} });
    const v1 = await RawClient.connect(`${base}/socket/websocket`, { format: "v1" });
    t.after(() => v1.terminate());
    assert.equal((await v1.join("room:path")).reply.payload.status, "ok");
  });
});
