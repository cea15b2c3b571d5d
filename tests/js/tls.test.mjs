// TLS: with --tls-cert and --tls-key the one port speaks only TLS (wss:// and
// https://, TLS 1.2 or newer). Each test makes a self-signed certificate for
// 127.0.0.1 with the openssl CLI; the clients trust only that certificate.

import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import tls from "node:tls";
import { after, describe, test } from "node:test";

import { assertOutcome, floodScenario, range } from "./lib/flood.mjs";
import { signJwt } from "./lib/jwt.mjs";
import { phoenixSocket } from "./lib/phoenix.mjs";
import {
  connectRaw,
  makeTestCert,
  RawClient,
  NO_RATE_LIMITS,
  startServer,
  stopAllServers,
  tcpQueues,
  trustingWebSocket,
  waitFor,
  withTimeout,
} from "./lib/server.mjs";

after(stopAllServers);

const cert = makeTestCert();
const FAILURES = "parley_tls_handshake_failures_total";

/** Resolves a TLS connection's outcome: {protocol, cipher} once the
 * handshake is done (then closes it), or {error} (the error's code). */
function tlsHandshake(server, opts = {}) {
  return withTimeout(
    new Promise((resolve) => {
      const s = tls.connect({ host: "127.0.0.1", port: server.port, ca: server.ca, ...opts });
      s.once("secureConnect", () => {
        resolve({ protocol: s.getProtocol(), cipher: s.getCipher().name, alpn: s.alpnProtocol });
        s.end();
      });
      s.once("error", (e) => resolve({ error: e.code ?? e.message }));
    }),
    5000,
    "a TLS handshake",
  );
}

/** Joins `topic` with the phoenix client and resolves the channel. */
function join(socket, topic) {
  const ch = socket.channel(topic, {});
  return withTimeout(
    new Promise((resolve, reject) =>
      ch.join().receive("ok", () => resolve(ch)).receive("error", (e) => reject(new Error(JSON.stringify(e)))),
    ),
    5000,
    `join ${topic}`,
  );
}

/** A body of n bytes that differs per message and per position, so that a
 * frame cut, shifted or mixed with another is noticed. */
const body = (seq, n) => {
  const unit = `<${seq}:${"abcdefghijklmnopqrstuvwxyz".slice(seq % 26)}>`;
  return unit.repeat(Math.ceil(n / unit.length)).slice(0, n);
};

/** A TLS server for the delivery tests: messages of up to 1 MiB, and
 * queues that may grow far (these tests are about delivery, not limits). */
async function roomyServer(t) {
  const server = await startServer(
    // The senders push large frames at machine speed: no rate or payload limits.
    [...NO_RATE_LIMITS, "--max-payload", "1048576", "--max-frame", "1048576", "--out-queue-msgs", "100000",
      "--out-queue-bytes", "268435456"],
    { tls: cert },
  );
  t.after(() => server.end());
  return server;
}

/** Sends one "mix" message per entry of sizes (body(seq, size)) to topic,
 * all at once, and resolves when the reply to the last has come. */
async function sendAll(sender, joinRef, topic, sizes) {
  sizes.forEach((n, seq) => sender.send(joinRef, `m${seq}`, topic, "mix", { seq, body: body(seq, n) }));
  await sender.reply(topic, `m${sizes.length - 1}`, 30000);
}

/** Asserts that client c got every "mix" message of sizes, in order, intact. */
function assertAllIntact(c, sizes) {
  const got = c.received((m) => m.event === "mix");
  assert.deepEqual(got.map((m) => m.payload.seq), range(sizes.length), "all, in order");
  got.forEach((m, seq) => assert.ok(m.payload.body === body(seq, sizes[seq]), `#${seq} intact`));
  assert.equal(c.received((m) => m.undecodable).length, 0);
}

/** SIGTERM: the server closes every socket and exits 0 (under the
 * sanitizers, also with nothing leaked: LeakSanitizer runs at exit). */
async function stopCleanly(server) {
  assert.deepEqual(await server.stop(), { code: 0, signal: null });
  assert.doesNotMatch(server.stderr(), /Sanitizer|runtime error/);
}

describe("TLS", () => {
  test("the official phoenix client joins, pushes and receives a broadcast over wss://", async (t) => {
    const server = await startServer([], { tls: cert });
    t.after(() => server.end());
    assert.equal(server.tls, true);
    assert.match(server.url, /^wss:\/\//);
    assert.match(server.stderr(), /event=listening .*\btls=on tls_min=TLSv1\.2 cert_expires=\d{4}-\d\d-\d\d\b/);

    const alice = await phoenixSocket(t, server);
    const bob = await phoenixSocket(t, server);
    const aliceRoom = await join(alice, "room:tls");
    const bobRoom = await join(bob, "room:tls");
    const got = new Promise((resolve) => bobRoom.on("new_msg", resolve));
    const echo = new Promise((resolve) => aliceRoom.on("new_msg", resolve));
    const reply = await withTimeout(
      new Promise((resolve, reject) =>
        aliceRoom.push("new_msg", { body: "over tls" }).receive("ok", resolve).receive("error", reject),
      ),
      5000,
      "push reply",
    );
    assert.deepEqual(reply, {});
    assert.deepEqual(await withTimeout(got, 5000, "bob's broadcast"), { body: "over tls" });
    assert.deepEqual(await withTimeout(echo, 5000, "alice's own broadcast"), { body: "over tls" });

    const m = await server.metrics();
    assert.equal(m.get("parley_connections"), 2);
    assert.equal(m.get(FAILURES), 0);
  });

  test("https:// serves /healthz, /metrics and static files; ALPN settles on http/1.1", async (t) => {
    const www = path.join(cert.dir, "www");
    mkdirSync(www, { recursive: true });
    writeFileSync(path.join(www, "index.html"), "<h1>tls</h1>\n");
    const server = await startServer(["--static-dir", www], { tls: cert });
    t.after(() => server.end());

    const health = await server.healthz();
    assert.equal(health.http, 200);
    assert.equal(health.status, "ok");
    assert.ok((await server.metrics()).has(FAILURES));
    const page = await server.get("/");
    assert.equal(page.status, 200);
    assert.equal(page.body, "<h1>tls</h1>\n");

    // A browser offers h2 first; the server must not take it (a WebSocket
    // over h2 would be a stream inside the connection).
    const h = await tlsHandshake(server, { ALPNProtocols: ["h2", "http/1.1"] });
    assert.equal(h.alpn, "http/1.1");
  });

  test("TLS 1.2 and 1.3 are accepted with forward-secret AEAD ciphers; TLS 1.0 and 1.1 are refused", async (t) => {
    const server = await startServer([], { tls: cert });
    t.after(() => server.end());

    // The client offers the old version for real (its own OpenSSL allows it
    // only at security level 0); the alert it gets is the server's refusal.
    for (const v of ["TLSv1.1", "TLSv1"]) {
      const old = await tlsHandshake(server, { minVersion: v, maxVersion: v, ciphers: "DEFAULT@SECLEVEL=0" });
      assert.equal(old.error, "ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION", `${v} refused by the server`);
    }
    assert.match(server.stderr(), /event=tls_handshake_failed peer=127\.0\.0\.1:\d+ reason="unsupported protocol"/);

    const v13 = await tlsHandshake(server);
    assert.equal(v13.protocol, "TLSv1.3");
    const v12 = await tlsHandshake(server, { maxVersion: "TLSv1.2" });
    assert.equal(v12.protocol, "TLSv1.2");
    assert.match(v12.cipher, /^ECDHE-ECDSA-(AES\d+-GCM|CHACHA20-POLY1305)/);
    // A TLS 1.2 client offering only CBC ciphers finds none in common.
    const cbc = await tlsHandshake(server, { maxVersion: "TLSv1.2", ciphers: "ECDHE-ECDSA-AES128-SHA" });
    assert.equal(cbc.error, "ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE");
    await waitFor(async () => (await server.metrics()).get(FAILURES) === 3, 5000, "3 failed handshakes counted");
    // The refusals came within the log's rate limit: one line for all three.
    assert.equal(server.stderr().match(/event=tls_handshake_failed/g).length, 1);
    assert.doesNotMatch(server.stderr(), /event=adopt_failed/);

    // Still serving.
    const c = await connectRaw(server, "v2");
    t.after(() => c.terminate());
    assert.equal((await c.join("room:after")).reply.payload.status, "ok");
  });

  test("a plaintext ws:// client gets no session; the server keeps serving the others", async (t) => {
    const server = await startServer([], { tls: cert });
    t.after(() => server.end());
    const good = await connectRaw(server, "v2");
    t.after(() => good.terminate());
    const { joinRef } = await good.join("room:mixed");

    const plainUrl = server.url.replace(/^wss:/, "ws:") + "?vsn=2.0.0";
    await assert.rejects(RawClient.connect(plainUrl), "a plaintext WebSocket upgrade fails");
    await waitFor(async () => (await server.metrics()).get(FAILURES) === 1, 5000, "the failure counted");
    assert.match(server.stderr(), /event=tls_handshake_failed peer=127\.0\.0\.1:\d+ reason="http request" not_logged=0/);

    // A burst of them: all counted, none logged again within the limit.
    const burst = Array.from({ length: 20 }, () => RawClient.connect(plainUrl).then(() => null, (e) => e));
    for (const e of await Promise.all(burst)) assert.ok(e instanceof Error);
    await waitFor(async () => (await server.metrics()).get(FAILURES) === 21, 5000, "21 failures counted");
    assert.equal(server.stderr().match(/event=tls_handshake_failed/g).length, 1);

    const m = await server.metrics();
    assert.equal(m.get("parley_connections"), 1, "no session for the plaintext clients");
    assert.equal(m.get("parley_errors_total{kind=\"adopt\"}"), 0);
    const { reply } = await good.push("room:mixed", "new_msg", { body: "still here" }, joinRef);
    assert.equal(reply.payload.status, "ok");
    await good.broadcast("room:mixed", "new_msg", (p) => p.body === "still here");
    const late = await connectRaw(server, "v2");
    t.after(() => late.terminate());
    assert.equal((await late.join("room:mixed")).reply.payload.status, "ok");
    await stopCleanly(server);
  });

  test("a fan-out of small and large frames arrives intact and in order at every TLS subscriber", async (t) => {
    const server = await roomyServer(t);
    const TOPIC = "room:fanout";
    const readers = [];
    for (let i = 0; i < 30; i++) readers.push(await connectRaw(server, i % 3 === 0 ? "msgpack" : "v2"));
    const sender = await connectRaw(server, "v2");
    t.after(() => [...readers, sender].forEach((c) => c.terminate()));
    for (const r of readers) await r.join(TOPIC);
    const { joinRef } = await sender.join(TOPIC);

    // Small frames get gathered into one write; 20 KB ones too, a few at a
    // time; 70 KB ones go alone (more than a gathered write holds); 300 KB
    // ones are more than lws hands to SSL_write at once.
    const sizes = [];
    for (let i = 0; i < 120; i++) sizes.push(i % 40 === 13 ? 300000 : i % 11 === 5 ? 70000 : i % 4 === 1 ? 20000 : (i * 97) % 400);
    await sendAll(sender, joinRef, TOPIC, sizes);
    for (const r of [...readers, sender]) {
      await r.broadcast(TOPIC, "mix", (p) => p.seq === sizes.length - 1, 30000);
      assertAllIntact(r, sizes);
    }
    const m = await server.metrics();
    assert.equal(m.get("parley_slow_consumer_disconnects_total"), 0);
    assert.equal(m.get("parley_connections"), readers.length + 1);
  });

  test("a reader that stops while megabytes are sent to it catches up with every frame intact", async (t) => {
    const server = await roomyServer(t);
    const TOPIC = "room:catchup";
    const slow = await connectRaw(server, "v2");
    const fast = await connectRaw(server, "v2");
    const sender = await connectRaw(server, "v2");
    t.after(() => [slow, fast, sender].forEach((c) => c.terminate()));
    for (const c of [slow, fast]) await c.join(TOPIC);
    const { joinRef } = await sender.join(TOPIC);

    slow.ws._socket.pause();
    const sizes = [];
    for (let i = 0; i < 80; i++) sizes.push(i % 2 === 0 ? 250000 : i % 3 === 0 ? 40000 : 150 + i);
    const total = sizes.reduce((a, n) => a + n, 0);
    await sendAll(sender, joinRef, TOPIC, sizes);
    await fast.broadcast(TOPIC, "mix", (p) => p.seq === sizes.length - 1, 30000);

    // The kernel holds only part of it (both ends' socket buffers); the rest
    // waits in the server: what SSL_write could not send, kept by lws and
    // sent again when the socket drains.
    const local = slow.ws._socket.localPort;
    const held = await waitFor(() => {
      const srv = tcpQueues(server.port, local);
      const cli = tcpQueues(local, server.port);
      return srv && cli && srv.tx > 0 ? srv.tx + cli.rx : null;
    }, 5000, "the paused reader's socket to fill up");
    assert.ok(total - held > 1e6, `kernel holds ${held} of ${total} bytes: megabytes wait in the server`);

    slow.ws._socket.resume();
    await slow.broadcast(TOPIC, "mix", (p) => p.seq === sizes.length - 1, 30000);
    for (const r of [slow, fast, sender]) assertAllIntact(r, sizes);
    assert.equal(slow.isOpen, true);
    // The connection works both ways afterwards.
    await slow.heartbeat();
    assert.equal((await server.metrics()).get("parley_slow_consumer_disconnects_total"), 0);
    await stopCleanly(server);
  });

  test("a paused subscriber is still closed as a slow consumer (4001); the others get everything", async (t) => {
    const s = await floodScenario(t, ["--out-queue-msgs", "50", "--out-queue-bytes", "65536"], { tls: cert, extra: 150 });
    assert.equal(s.server.tls, true);
    await assertOutcome(s);
    assert.equal((await s.server.metrics()).get(FAILURES), 0);
  });

  test("--auth required: a token passed as the connect parameter opens a wss:// socket", async (t) => {
    const KEY = "secret-key-of-at-least-32-bytes!";
    const server = await startServer(["--auth", "required"], { tls: cert, env: { PARLEY_AUTH_KEYS: KEY } });
    t.after(() => server.end());
    await assert.rejects(connectRaw(server, "v2"), /unexpected response 403/);
    const token = encodeURIComponent(signJwt({ sub: "alice" }, KEY));
    const socket = await phoenixSocket(t, server, { params: { token } });
    const room = socket.channel("room:auth", {});
    const state = new Promise((resolve) => room.on("presence_state", resolve));
    await withTimeout(new Promise((resolve) => room.join().receive("ok", resolve)), 5000, "join");
    const seen = await withTimeout(state, 5000, "presence_state");
    assert.deepEqual(Object.keys(seen), ["alice"], "the token's sub is the presence key");
    // phoenix.js' authToken cannot work over Parley's own TLS (docs/tls.md):
    // the refusal says what to do instead.
    const b64 = Buffer.from(signJwt({ sub: "alice" }, KEY)).toString("base64").replace(/=/g, "");
    const refusal = await withTimeout(
      new Promise((resolve, reject) => {
        const ws = new (trustingWebSocket(server.ca))(server.url + "?vsn=2.0.0", [
          "phoenix",
          `base64url.bearer.phx.${b64}`,
        ]);
        ws.once("open", () => reject(new Error("opened")));
        ws.once("error", () => {});
        ws.once("unexpected-response", (_req, res) => {
          let body = "";
          res.on("data", (d) => (body += d));
          res.on("end", () => resolve({ status: res.statusCode, body }));
        });
      }),
      5000,
      "the authToken refusal",
    );
    assert.equal(refusal.status, 400);
    assert.match(refusal.body, /pass the token as the token parameter/);
    assert.equal(
      (await server.metrics()).get('parley_upgrades_rejected_total{reason="protocol_header"}'),
      1,
    );
  });

  test("a server with a missing, mismatched or lone key file exits at once with an error", async () => {
    const other = makeTestCert({ keyType: "rsa" });
    const cases = [
      [["--tls-cert", cert.cert, "--tls-key", path.join(cert.dir, "missing.pem")], /--tls-key .*missing\.pem: No such file or directory/],
      [["--tls-cert", cert.cert, "--tls-key", other.key], /--tls-key .* does not match the certificate in --tls-cert/],
      [["--tls-cert", cert.key, "--tls-key", cert.key], /--tls-cert .*: not a PEM certificate/],
      [["--tls-cert", cert.cert], /--tls-cert and --tls-key go together/],
      [["--tls-cert", cert.cert, "--tls-key", cert.key, "--tls-ciphers", "NOPE"], /--tls-ciphers "NOPE": no cipher matches/],
    ];
    for (const [args, message] of cases) {
      const err = await startServer(args).then(
        (s) => (s.kill(), null),
        (e) => e,
      );
      assert.ok(err, `parley ${args.join(" ")} must not start`);
      assert.match(err.message, /exited before listening \(code=2 /);
      assert.match(err.message, message);
    }
  });
});
