// Authentication, topic authorization and tenants, as users meet them:
// tokens (HS256/384/512 JWTs signed here with node:crypto) passed as the
// `token` connect parameter or as phoenix.js' authToken; HTTP 403 before the
// upgrade for a missing, forged, expired or unsupported token; the token's
// sub as the presence key; join and publish patterns; tenants that never see
// each other (also across two nodes through Redis); the 4003 close when a
// token expires; --max-connections, --max-conns-per-user, --allowed-origins
// and --namespaces. Every server is ended (server.end()) and every Redis
// killed by PID when its test ends, and again in after().

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, test } from "node:test";

import { Socket } from "phoenix";

import { now, signJwt } from "./lib/jwt.mjs";
import { startRedis, stopAllRedis } from "./lib/redis.mjs";
import {
  assertNoSanitizerReport,
  errKey,
  PARLEY_BIN,
  RawClient,
  sleep,
  startServer,
  stopAllServers,
  upgradeStatus,
  waitFor,
  WebSocket,
  withTimeout,
  wsUrl,
} from "./lib/server.mjs";

after(async () => {
  await stopAllServers();
  await stopAllRedis();
});

const WAIT = 5000;
const KEY = "secret-key-of-at-least-32-bytes!";
const KEY2 = "another-key-which-is-long-enough-too";
const rejected = (reason) => `parley_upgrades_rejected_total{reason="${reason}"}`;

const withToken = (server, token, format = "v2") =>
  wsUrl(server, format, `token=${encodeURIComponent(token)}`);

/** Connects phoenix.js with opts (e.g. authToken) and resolves the open socket. */
async function phoenixConnect(t, server, opts) {
  const socket = new Socket(server.socketBase, {
    transport: WebSocket,
    timeout: WAIT,
    reconnectAfterMs: () => 60000,
    rejoinAfterMs: () => 60000,
    ...opts,
  });
  const opened = new Promise((resolve, reject) => {
    socket.onOpen(resolve);
    socket.onError(() => reject(new Error("phoenix socket error")));
  });
  socket.connect();
  t.after(() => socket.disconnect());
  await withTimeout(opened, WAIT, "phoenix socket open");
  return socket;
}

async function client(t, server, token, format = "v2") {
  const c = await RawClient.connect(withToken(server, token, format), { format });
  t.after(() => c.terminate());
  return c;
}

describe("connecting with a token", () => {
  test("--auth required: 403 before the upgrade without a valid token, counted by reason", async (t) => {
    const server = await startServer(["--auth", "required"], { env: { PARLEY_AUTH_KEYS: KEY } });
    t.after(() => server.end());
    const good = signJwt({ sub: "alice", exp: now(600) }, KEY);
    const cases = [
      ["no token", wsUrl(server), "token_missing", /token required/],
      ["wrong key", withToken(server, signJwt({ sub: "alice" }, "x".repeat(40))), "token_invalid", /invalid signature/],
      ["unsigned (alg none)", withToken(server, signJwt({ sub: "alice" }, KEY, { alg: "none" })), "token_invalid", /./],
      ["tampered claims", withToken(server, good.replace(/^([^.]+)\.[^.]+/, (_, h) => `${h}.${Buffer.from('{"sub":"root"}').toString("base64url")}`)), "token_invalid", /invalid signature/],
      ["not a JWT", withToken(server, "hello"), "token_invalid", /malformed token/],
      ["expired", withToken(server, signJwt({ sub: "alice", exp: now(-10) }, KEY)), "token_expired", /token expired/],
      ["not yet valid", withToken(server, signJwt({ sub: "alice", nbf: now(600) }, KEY)), "token_expired", /not yet valid/],
      ["no sub", withToken(server, signJwt({ name: "alice" }, KEY)), "token_invalid", /invalid claims/],
      ["tenant with a separator", withToken(server, signJwt({ sub: "a", tenant: "a\u001fb" }, KEY)), "token_invalid", /invalid claims/],
    ];
    for (const [what, url, reason, body] of cases) {
      const before = (await server.metrics()).get(rejected(reason));
      const r = await upgradeStatus(url);
      assert.equal(r.status, 403, `${what}: HTTP 403`);
      assert.match(r.body, body, `${what}: the reason is in the body`);
      assert.equal((await server.metrics()).get(rejected(reason)), before + 1, `${what}: counted as ${reason}`);
    }
    assert.equal((await server.metrics()).get("parley_connections_total"), 0, "no session was opened");
    assert.match(server.stderr(), /event=upgrade_refused status=403 reason=token_missing/);
    // HS256, HS384 and HS512 tokens are all accepted.
    for (const alg of ["HS256", "HS384", "HS512"]) {
      const c = await client(t, server, signJwt({ sub: `u-${alg}` }, KEY, { alg }));
      assert.deepEqual((await c.heartbeat()).payload, { status: "ok", response: {} }, alg);
    }
  });

  test("phoenix.js authToken (the Sec-WebSocket-Protocol entry) authenticates like the token parameter", async (t) => {
    const server = await startServer(["--auth", "required"], { env: { PARLEY_AUTH_KEYS: KEY } });
    t.after(() => server.end());
    // A long token: far past the 127 bytes lws allows in that header.
    const token = signJwt({ sub: "alice", meta: { role: "admin", bio: "b".repeat(500) } }, KEY);
    const socket = await phoenixConnect(t, server, { authToken: token });
    assert.equal(socket.conn.protocol, "phoenix", "the server answers with the phoenix protocol");
    const ch = socket.channel("room:lobby", { user: "mallory" });
    const state = new Promise((r) => ch.on("presence_state", r));
    const diff = new Promise((r) => ch.on("presence_diff", r));
    await withTimeout(new Promise((r) => ch.join().receive("ok", r)), WAIT, "join");
    const seen = { ...(await withTimeout(state, WAIT, "presence_state")) };
    Object.assign(seen, (await withTimeout(diff, WAIT, "presence_diff")).joins);
    assert.deepEqual(Object.keys(seen), ["alice"], "the token's sub is the presence key");
    assert.equal(seen.alice.metas[0].role, "admin", "with the token's meta");
    // A forged authToken is refused like a forged parameter.
    const forged = signJwt({ sub: "alice" }, "f".repeat(40));
    const b64 = Buffer.from(forged).toString("base64").replace(/=/g, "");
    const r = await upgradeStatus(wsUrl(server), { protocols: ["phoenix", `base64url.bearer.phx.${b64}`] });
    assert.equal(r.status, 403);
    // One that is not base64 at all is a bad token too, not a long header.
    const before = (await server.metrics()).get(rejected("token_invalid"));
    const junk = await upgradeStatus(wsUrl(server), { protocols: ["phoenix", `base64url.bearer.phx.${"*".repeat(300)}`] });
    assert.equal(junk.status, 403, "an undecodable authToken: 403");
    assert.match(junk.body, /malformed token/);
    assert.equal((await server.metrics()).get(rejected("token_invalid")), before + 1, "counted as token_invalid");
    // Long protocol entries without an authToken: lws' 126-byte limit, said as such.
    const long = await upgradeStatus(wsUrl(server), { protocols: ["phoenix", "x".repeat(200)] });
    assert.equal(long.status, 400);
    assert.match(long.body, /Sec-WebSocket-Protocol too long \(126 bytes at most\)/);
  });

  test("an authToken among thousands of packed protocol entries is refused with 400, and the node serves on", async (t) => {
    const server = await startServer(["--auth", "required"], { env: { PARLEY_AUTH_KEYS: KEY } });
    t.after(() => server.end());
    const b64 = Buffer.from(signJwt({ sub: "alice" }, KEY)).toString("base64url");
    // One-letter entries without spaces: with ", " between them, as a
    // rewritten head has them, these 7 KB would be 10 KB.
    const protocols = [`base64url.bearer.phx.${b64}`, ...Array(3300).fill("a")].join(",");
    const head =
      "GET /socket/websocket?vsn=2.0.0 HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n" +
      "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
      `Sec-WebSocket-Protocol: ${protocols}\r\n\r\n`;
    assert.ok(head.length < 8192, `a head the listener reads whole (${head.length} bytes)`);
    assert.ok(protocols.split(",").join(", ").length > 8192, "that would not fit 8 KB rewritten");
    const before = (await server.metrics()).get(rejected("protocol_header"));
    const answer = await new Promise((resolve, reject) => {
      const sock = net.connect(server.port, "127.0.0.1", () => sock.end(head));
      let got = "";
      sock.on("data", (d) => (got += d));
      sock.on("close", () => resolve(got));
      sock.on("error", reject);
    });
    assert.match(answer, /^HTTP\/1\.[01] 400 /, "a 400 for the head");
    assert.match(answer, /Sec-WebSocket-Protocol too long/, "saying why");
    assert.equal((await server.metrics()).get(rejected("protocol_header")), before + 1, "counted");
    assert.match(server.stderr(), /event=upgrade_refused status=400 reason=protocol_header/);
    // The node is whole: phoenix.js with its authToken still gets in.
    const socket = await phoenixConnect(t, server, { authToken: signJwt({ sub: "bob" }, KEY) });
    assert.equal(socket.conn.protocol, "phoenix");
  });

  test("a NUL byte in Sec-WebSocket-Protocol is refused with 400, and the node serves on", async (t) => {
    const keyed = await startServer(["--auth", "required"], { env: { PARLEY_AUTH_KEYS: KEY } });
    t.after(() => keyed.end());
    const plain = await startServer([]);
    t.after(() => plain.end());
    const ask = (server, protocols) =>
      new Promise((resolve, reject) => {
        const head =
          "GET /socket/websocket?vsn=2.0.0 HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n" +
          "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
          `Sec-WebSocket-Protocol: ${protocols}\r\n\r\n`;
        const sock = net.connect(server.port, "127.0.0.1", () => sock.end(head));
        let got = "";
        sock.on("data", (d) => (got += d));
        sock.on("close", () => resolve(got));
        sock.on("error", reject);
      });
    // Short, where a token is looked for; long, where lws' limit is explained.
    for (const [server, protocols] of [
      [keyed, "a\0b"],
      [keyed, `phoenix\0${"b".repeat(200)}`],
      [plain, `a\0${"b".repeat(200)}`],
    ]) {
      const before = (await server.metrics()).get(rejected("protocol_header"));
      const answer = await withTimeout(ask(server, protocols), WAIT, "an answer to the NUL header");
      assert.match(answer, /^HTTP\/1\.[01] 400 /);
      assert.match(answer, /malformed Sec-WebSocket-Protocol/);
      assert.equal((await server.metrics()).get(rejected("protocol_header")), before + 1, "counted");
    }
    // Both nodes still serve.
    const socket = await phoenixConnect(t, keyed, { authToken: signJwt({ sub: "bob" }, KEY) });
    assert.equal(socket.conn.protocol, "phoenix");
    assert.equal((await upgradeStatus(wsUrl(plain))), 101);
  });

  test("a request head that stops halfway costs the node no CPU while it waits, and is served once whole", async (t) => {
    // With keys, the node reads each head before lws does (for authToken).
    const server = await startServer(["--auth", "required"], { env: { PARLEY_AUTH_KEYS: KEY } });
    t.after(() => server.end());
    const cpu = () => {
      const f = readFileSync(`/proc/${server.pid}/stat`, "utf8").split(") ")[1].split(" ");
      return (Number(f[11]) + Number(f[12])) / 100; // utime + stime, in s (USER_HZ 100)
    };
    const b64 = Buffer.from(signJwt({ sub: "slow" }, KEY)).toString("base64url");
    const head =
      "GET /socket/websocket?vsn=2.0.0 HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n" +
      "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
      `Sec-WebSocket-Protocol: phoenix, base64url.bearer.phx.${b64}\r\n\r\n`;
    const socks = await Promise.all(
      Array.from({ length: 5 }, () => new Promise((resolve, reject) => {
        const sock = net.connect(server.port, "127.0.0.1", () => resolve(sock));
        sock.on("error", reject);
      })),
    );
    t.after(() => socks.forEach((s) => s.destroy()));
    for (const s of socks) s.write(head.slice(0, 100));
    await new Promise((r) => setTimeout(r, 200));
    const c0 = cpu();
    await new Promise((r) => setTimeout(r, 2000));
    const used = cpu() - c0;
    assert.ok(used < 0.3, `the node used ${used.toFixed(2)} s of CPU in 2 s, waiting for 5 half heads`);
    // The rest arrives: each is upgraded, its authToken read.
    const answers = await Promise.all(
      socks.map((s) => new Promise((resolve) => {
        let got = "";
        s.on("data", (d) => {
          got += d;
          if (got.includes("\r\n\r\n")) resolve(got);
        });
        s.write(head.slice(100));
      })),
    );
    for (const a of answers) assert.match(a, /^HTTP\/1\.1 101 /);
  });

  test("--auth anonymous: no token is fine, a bad one is still refused, a good one names the user", async (t) => {
    const server = await startServer([], { env: { PARLEY_AUTH_KEYS: KEY } });
    t.after(() => server.end());
    const anon = await RawClient.connect(wsUrl(server, "v2", "user=guest"));
    t.after(() => anon.terminate());
    assert.equal((await anon.join("room:1", { user: "guest" })).reply.payload.status, "ok");
    assert.equal((await upgradeStatus(withToken(server, signJwt({ sub: "x" }, "y".repeat(40))))).status, 403);
    // An authToken entry is a token given, even one of NUL bytes only.
    const nul = await upgradeStatus(wsUrl(server), { protocols: ["phoenix", "base64url.bearer.phx.AAAA"] });
    assert.equal(nul.status, 403, "an authToken of NUL bytes is refused, not taken for no token");
    assert.match(nul.body, /malformed token/);
    const c = await client(t, server, signJwt({ sub: "bob" }, KEY));
    // The join payload's "user" cannot override the token's sub.
    await c.join("room:1", { user: "mallory", role: "admin" });
    const diff = await c.next((m) => m.event === "presence_diff" && m.payload.joins.bob, WAIT, "bob's join");
    assert.equal(diff.payload.joins.bob.metas[0].role, "admin", "the payload's meta is kept");
    const keys = c
      .received((m) => m.event === "presence_state" || m.event === "presence_diff")
      .flatMap((m) => Object.keys(m.payload.joins ?? m.payload));
    assert.ok(!keys.includes("mallory"), `the payload's user is ignored: ${keys}`);
  });

  test("a user parameter that is not a valid presence key is refused with 400; a valid one names the connection", async (t) => {
    const server = await startServer([]);
    t.after(() => server.end());
    for (const [what, query] of [
      ["not UTF-8", "user=%ff%fe"],
      ["a control character", "user=a%01b"],
      ["longer than 256 bytes", `user=${"u".repeat(257)}`],
    ]) {
      const before = (await server.metrics()).get(rejected("user_param"));
      const r = await upgradeStatus(wsUrl(server, "v2", query));
      assert.equal(r.status, 400, what);
      assert.match(r.body, /user parameter must be at most 256 bytes of UTF-8 without control characters/, what);
      assert.equal((await server.metrics()).get(rejected("user_param")), before + 1, `${what}: counted`);
    }
    assert.match(server.stderr(), /event=upgrade_refused status=400 reason=user_param/);
    // Any UTF-8 name is fine, and is what the others see.
    const watcher = await RawClient.connect(wsUrl(server, "v2", "user=watcher"));
    t.after(() => watcher.terminate());
    await watcher.join("room:names", {});
    const zoe = await RawClient.connect(wsUrl(server, "v2", `user=${encodeURIComponent("Zoë 🦊")}`));
    t.after(() => zoe.terminate());
    await zoe.join("room:names", {});
    const diff = await watcher.next((m) => m.event === "presence_diff" && m.payload.joins["Zoë 🦊"], WAIT, "Zoë's join");
    assert.ok(diff, "the UTF-8 key arrives intact");
  });

  test("key rotation: tokens of every configured key are accepted, a kid picks its key", async (t) => {
    const server = await startServer(["--auth", "required"], {
      env: { PARLEY_AUTH_KEYS: `old:${KEY},new:${KEY2}` },
    });
    t.after(() => server.end());
    for (const [kid, key] of [["old", KEY], ["new", KEY2], [undefined, KEY2]]) {
      const c = await client(t, server, signJwt({ sub: "alice" }, key, { kid }));
      assert.equal((await c.heartbeat()).payload.status, "ok", `kid ${kid}`);
    }
    // A kid names the key that must verify the token.
    assert.equal((await upgradeStatus(withToken(server, signJwt({ sub: "a" }, KEY, { kid: "new" })))).status, 403);
  });

  test("a connection whose token expires is closed with 4003 and counted", async (t) => {
    const server = await startServer(["--auth", "required"], { env: { PARLEY_AUTH_KEYS: KEY } });
    t.after(() => server.end());
    const c = await client(t, server, signJwt({ sub: "alice", exp: now(2) }, KEY));
    const long = await client(t, server, signJwt({ sub: "bob", exp: now(600) }, KEY));
    assert.equal((await c.join("room:1")).reply.payload.status, "ok");
    const closed = await c.closed(6000);
    assert.deepEqual(closed, { code: 4003, reason: "token expired" });
    assert.equal((await server.metrics()).get("parley_token_expired_disconnects_total"), 1);
    assert.equal((await long.heartbeat()).payload.status, "ok", "a connection with a valid token stays");
  });
});

describe("topic permissions", () => {
  test("join and publish patterns, with {sub}; a refused push reaches nobody", async (t) => {
    const server = await startServer(["--auth", "required"], { env: { PARLEY_AUTH_KEYS: KEY } });
    t.after(() => server.end());
    const alice = await client(
      t,
      server,
      signJwt({ sub: "alice", join: ["room:*", "user:{sub}", "news"], publish: ["room:*"] }, KEY),
    );
    const reader = await client(t, server, signJwt({ sub: "carol" }, KEY)); // no patterns: anything
    const status = async (topic) => (await alice.join(topic)).reply.payload;
    assert.equal((await status("room:1")).status, "ok");
    assert.equal((await status("user:alice")).status, "ok");
    assert.equal((await status("news")).status, "ok");
    for (const topic of ["user:bob", "user:alice2", "dm:1", "newsletter", "room"]) {
      assert.deepEqual(await status(topic), { status: "error", response: { reason: "unauthorized" } }, topic);
    }
    // May join news, may not publish there.
    const { joinRef } = await reader.join("news");
    const newsRef = alice.received((m) => m.topic === "news" && m.event === "phx_reply")[0].join_ref;
    const refused = await alice.push("news", "new_msg", { body: "spam" }, newsRef);
    assert.deepEqual(refused.reply.payload, { status: "error", response: { reason: "unauthorized" } });
    await reader.heartbeat();
    await sleep(100);
    assert.equal(reader.received((m) => m.event === "new_msg").length, 0, "nobody received it");
    assert.ok(joinRef);
    const m = await server.metrics();
    assert.equal(m.get(errKey("unauthorized")), 6);
  });

  test("a sub with '*' is matched literally in {sub} patterns", async (t) => {
    const server = await startServer(["--auth", "required"], { env: { PARLEY_AUTH_KEYS: KEY } });
    t.after(() => server.end());
    const c = await client(t, server, signJwt({ sub: "a*", join: ["user:{sub}"] }, KEY));
    assert.equal((await c.join("user:a*")).reply.payload.status, "ok");
    assert.equal((await c.join("user:abc")).reply.payload.status, "error");
  });
});

describe("tenants", () => {
  test("the same topic name in two tenants: messages and presence never cross", async (t) => {
    const server = await startServer(["--auth", "required"], { env: { PARLEY_AUTH_KEYS: KEY } });
    t.after(() => server.end());
    const a1 = await client(t, server, signJwt({ sub: "ann", tenant: "acme" }, KEY));
    const a2 = await client(t, server, signJwt({ sub: "art", tenant: "acme" }, KEY), "msgpack");
    const b1 = await client(t, server, signJwt({ sub: "bea", tenant: "globex" }, KEY));
    const d1 = await client(t, server, signJwt({ sub: "dan" }, KEY)); // the default tenant
    const joins = {};
    for (const [name, c] of Object.entries({ a1, a2, b1, d1 })) {
      joins[name] = (await c.join("room:1")).joinRef;
    }
    const state = await a2.next((m) => m.event === "presence_state", WAIT, "presence_state");
    assert.equal(state.topic, "room:1", "clients see their own topic name");
    await a1.push("room:1", "new_msg", { body: "acme only" }, joins.a1);
    const got = await a2.broadcast("room:1", "new_msg");
    assert.deepEqual(got.payload, { body: "acme only" });
    for (const c of [b1, d1]) await c.heartbeat();
    await sleep(150); // past a presence batch
    for (const [name, c] of Object.entries({ b1, d1 })) {
      assert.equal(c.received((m) => m.event === "new_msg").length, 0, `${name} got nothing`);
      for (const m of c.received((m) => m.event === "presence_state" || m.event === "presence_diff")) {
        const keys = [...Object.keys(m.payload.joins ?? m.payload), ...Object.keys(m.payload.leaves ?? {})];
        assert.ok(!keys.some((k) => ["ann", "art"].includes(k)), `${name} sees no acme presence: ${keys}`);
      }
    }
    // A topic name cannot reach into another tenant's namespace.
    const r = await d1.join("\u001facme\u001froom:1");
    assert.deepEqual(r.reply.payload, { status: "error", response: { reason: "invalid topic" } });
  });

  test("across two nodes through Redis, tenants stay apart", async (t) => {
    const redis = await startRedis();
    t.after(() => redis.kill());
    const opts = { env: { PARLEY_AUTH_KEYS: KEY } };
    const n1 = await startServer(["--auth", "required", "--redis", redis.addr], opts);
    const n2 = await startServer(["--auth", "required", "--redis", redis.addr], opts);
    t.after(() => n1.end());
    t.after(() => n2.end());
    const a1 = await client(t, n1, signJwt({ sub: "ann", tenant: "acme" }, KEY));
    const a2 = await client(t, n2, signJwt({ sub: "art", tenant: "acme" }, KEY));
    const b2 = await client(t, n2, signJwt({ sub: "bea", tenant: "globex" }, KEY));
    const ja1 = (await a1.join("room:x")).joinRef;
    await a2.join("room:x");
    await b2.join("room:x");
    // Subscriptions propagate asynchronously: retry until the other node delivers.
    await waitFor(
      async () => {
        await a1.push("room:x", "new_msg", { body: "hi" }, ja1);
        return a2.received((m) => m.event === "new_msg").length > 0;
      },
      WAIT,
      "acme's message on the other node",
      100,
    );
    const presence = await waitFor(
      () =>
        a2.received(
          (m) =>
            (m.event === "presence_diff" && m.payload.joins.ann) ||
            (m.event === "presence_state" && m.payload.ann),
        ).length > 0,
      WAIT,
      "ann's presence on node 2",
    );
    assert.ok(presence);
    await b2.heartbeat();
    assert.equal(b2.received((m) => m.event === "new_msg").length, 0, "globex got nothing");
    assert.ok(
      !b2.received((m) => m.event.startsWith("presence_")).some((m) => JSON.stringify(m.payload).includes("ann")),
      "globex sees no acme presence",
    );
  });
});

describe("connection limits and origins", () => {
  test("--max-conns-per-user: 403 past the limit, a slot frees when a connection closes", async (t) => {
    const server = await startServer(["--auth", "required", "--max-conns-per-user", "2"], {
      env: { PARLEY_AUTH_KEYS: KEY },
    });
    t.after(() => server.end());
    const tok = signJwt({ sub: "alice" }, KEY);
    const c1 = await client(t, server, tok);
    await client(t, server, tok);
    const r = await upgradeStatus(withToken(server, tok));
    assert.equal(r.status, 403);
    assert.match(r.body, /too many connections for this user/);
    assert.equal((await server.metrics()).get(rejected("user_limit")), 1);
    // Another user, or another tenant's user of the same name, is not affected.
    await client(t, server, signJwt({ sub: "bob" }, KEY));
    await client(t, server, signJwt({ sub: "alice", tenant: "other" }, KEY));
    c1.close();
    await c1.closed();
    await waitFor(async () => (await upgradeStatus(withToken(server, tok))) === 101, WAIT, "a freed slot");
  });

  test("--max-connections: 503 when the node is full", async (t) => {
    const server = await startServer(["--max-connections", "2"]);
    t.after(() => server.end());
    const a = await RawClient.connect(wsUrl(server));
    const b = await RawClient.connect(wsUrl(server));
    t.after(() => a.terminate());
    t.after(() => b.terminate());
    const r = await upgradeStatus(wsUrl(server));
    assert.equal(r.status, 503);
    assert.equal((await server.metrics()).get(rejected("server_full")), 1);
    assert.equal((await a.heartbeat()).payload.status, "ok", "the others keep working");
    // The descriptor limit, and with it lws' fd table that lws walks on every
    // close, is what the node needs: its connections and 1024 more.
    assert.match(server.stderr(), /event=listening .*fd_limit=1026 /);
  });

  test("--allowed-origins: browsers from other sites get 403; non-browsers send no Origin", async (t) => {
    const server = await startServer(["--allowed-origins", "https://chat.example, http://localhost:8080"]);
    t.after(() => server.end());
    const origin = (o) => upgradeStatus(wsUrl(server), { headers: { Origin: o } });
    assert.equal(await origin("https://chat.example"), 101);
    assert.equal(await origin("http://localhost:8080"), 101);
    assert.equal((await origin("https://evil.example")).status, 403);
    assert.equal((await origin("https://chat.example.evil.example")).status, 403);
    assert.equal(await upgradeStatus(wsUrl(server)), 101, "no Origin: not a browser");
    assert.equal((await server.metrics()).get(rejected("origin")), 2);
  });
});

describe("namespaces", () => {
  test("publish false, max_members and presence per namespace", async (t) => {
    const dir = mkdtempSync(path.join(tmpdir(), "parley-ns-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const file = path.join(dir, "namespaces.json");
    writeFileSync(
      file,
      JSON.stringify({
        news: { publish: false },
        lobby: { max_members: 2, presence: false },
      }),
    );
    const server = await startServer(["--namespaces", `@${file}`], { env: { PARLEY_AUTH_KEYS: KEY } });
    t.after(() => server.end());
    const editor = await client(t, server, signJwt({ sub: "ed", publish: ["news:*"] }, KEY));
    const reader = await client(t, server, signJwt({ sub: "rea" }, KEY));
    const anon = await RawClient.connect(wsUrl(server));
    t.after(() => anon.terminate());
    const je = (await editor.join("news:today")).joinRef;
    const jr = (await reader.join("news:today")).joinRef;
    const ja = (await anon.join("news:today")).joinRef;
    assert.equal((await editor.push("news:today", "story", { t: 1 }, je)).reply.payload.status, "ok");
    assert.deepEqual((await reader.broadcast("news:today", "story")).payload, { t: 1 });
    for (const [c, jref] of [[reader, jr], [anon, ja]]) {
      const r = await c.push("news:today", "story", { t: 2 }, jref);
      assert.deepEqual(r.reply.payload, { status: "error", response: { reason: "unauthorized" } });
    }
    // lobby: two members at most, and no presence.
    assert.equal((await editor.join("lobby:1")).reply.payload.status, "ok");
    assert.equal((await reader.join("lobby:1")).reply.payload.status, "ok");
    assert.deepEqual((await anon.join("lobby:1")).reply.payload, {
      status: "error",
      response: { reason: "topic full" },
    });
    assert.equal((await anon.join("lobby:2")).reply.payload.status, "ok", "the limit is per topic");
    await editor.heartbeat();
    assert.equal(editor.received((m) => m.topic === "lobby:1" && m.event === "presence_state").length, 0);
    assert.equal(editor.received((m) => m.topic === "news:today" && m.event === "presence_state").length, 1);
    assert.equal((await server.metrics()).get(errKey("topic_full")), 1);
  });
});

describe("startup checks", () => {
  const run = (args, env = {}) =>
    spawnSync(PARLEY_BIN, ["--listen", "127.0.0.1:0", ...args], {
      env: { ...process.env, ...env },
      encoding: "utf8",
      timeout: 10000,
    });
  test("bad auth settings stop the start with a clear message", () => {
    const cases = [
      [["--auth", "required"], {}, /--auth required needs --auth-keys/],
      [["--auth", "sometimes"], {}, /--auth must be anonymous or required/],
      [[], { PARLEY_AUTH_KEYS: "short" }, /a secret must be 32 to 512 bytes/],
      [["--auth-keys", "@/nonexistent/keys"], {}, /cannot read \/nonexistent\/keys/],
      [["--namespaces", "{not json"], {}, /--namespaces must be a JSON object/],
      [["--namespaces", '{"room": {"publish": "yes"}}'], {}, /unknown option or wrong type/],
    ];
    for (const [args, env, message] of cases) {
      const r = run(args, env);
      assert.equal(r.status, 2, `${args.join(" ")} exits 2`);
      assert.match(r.stderr, message);
      assertNoSanitizerReport(r.stderr, `parley ${args.join(" ")}`);
    }
  });
});
