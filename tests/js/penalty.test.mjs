// The reconnect penalty (docs/limits.md, "Reconnecting after a 4004"): a
// client closed with 4004 for flooding may not open a new WebSocket for
// --abuse-ban seconds (HTTP 429 with Retry-After), twice as long after each
// further offence; the identity is the token's user, else the address. The
// other clients (another address, another user) are never refused, open
// connections are never touched, the refusals are counted and logged, and
// --abuse-ban 0 turns it all off. A client that comes back within the
// memory of its offence starts on probation: no burst. In a cluster (a real
// redis-server on an ephemeral port) every node adopts every ban. The rate limits are tight (a burst of 2)
// and the bans short (1 s), so a flood takes a few messages and a ban ends
// within the test. Every server is ended when its test ends.

import assert from "node:assert/strict";
import { after, describe, test } from "node:test";

import { signJwt } from "./lib/jwt.mjs";
import { phoenixSocket } from "./lib/phoenix.mjs";
import { startRedis, stopAllRedis } from "./lib/redis.mjs";
import { connectRaw, RawClient, sleep, startServer, stopAllServers, upgradeStatus, waitFor, wsUrl } from "./lib/server.mjs";

after(async () => {
  await stopAllServers();
  await stopAllRedis();
});

const KEY = "secret-key-of-at-least-32-bytes!";
/** Limits that a flood of a dozen messages passes at once: a burst of 2,
 * then one refusal, then 4004. */
const TIGHT = ["--msg-rate", "1", "--msg-burst", "2", "--rate-strikes", "1"];
const OTHER_ADDRESS = "127.0.0.2"; // loopback too: Linux routes all of 127/8 to lo
const BANNED = 'parley_upgrades_rejected_total{reason="banned"}';
const BANS = "parley_abuse_bans_total";
const ADOPTED = "parley_abuse_bans_adopted_total";

async function server(t, args, opts = {}) {
  const s = await startServer([...TIGHT, ...args], opts);
  t.after(() => s.end());
  return s;
}

const tokenUrl = (srv, claims) => wsUrl(srv, "v2", `token=${encodeURIComponent(signJwt(claims, KEY))}`);

/** Opens a client (kept open until the test ends). */
async function open(t, url, opts = {}) {
  const c = await RawClient.connect(url, opts);
  t.after(() => c.terminate());
  return c;
}

/** Connects to url, floods heartbeats and waits for the 4004 close. */
async function floodOut(t, url, opts = {}) {
  const c = await open(t, url, opts);
  for (let i = 0; i < 12; i++) c.send(null, `f${i}`, "phoenix", "heartbeat", {});
  assert.deepEqual(await c.closed(), { code: 4004, reason: "rate limit exceeded" });
}

/** Asserts that upgrading url is refused with 429 and Retry-After `retry`. */
async function assertBanned(url, retry, opts = {}) {
  const r = await upgradeStatus(url, opts);
  assert.equal(r.status, 429, `refused: ${JSON.stringify(r)}`);
  assert.equal(r.headers["retry-after"], String(retry), "Retry-After: the seconds left, rounded up");
  assert.match(r.body, /^banned for exceeding rate limits; retry after \d+ s\n$/);
}

/** Sends two heartbeats at once; resolves their replies' status, or the
 * error reason. */
async function twoAtOnce(c) {
  const refs = [c.makeRef(), c.makeRef()];
  for (const ref of refs) c.send(null, ref, "phoenix", "heartbeat", {});
  const replies = await Promise.all(refs.map((ref) => c.reply("phoenix", ref)));
  return replies.map((r) => (r.payload.status === "ok" ? "ok" : r.payload.response.reason));
}

async function assertAlive(c) {
  assert.equal((await c.heartbeat()).payload.status, "ok");
}

describe("an anonymous flooder is banned by address", () => {
  test("refused with 429 on reconnecting, admitted once the ban ends, banned twice as long the second time; another address never", async (t) => {
    const srv = await server(t, ["--abuse-ban", "1", "--abuse-ban-max", "8"]);
    const url = wsUrl(srv);
    const bystander = await open(t, url, { localAddress: OTHER_ADDRESS });

    await floodOut(t, url);
    await assertBanned(url, 1);
    await assertAlive(bystander);
    assert.equal(await upgradeStatus(url, { localAddress: OTHER_ADDRESS }), 101, "another address connects");
    let m = await srv.metrics();
    assert.equal(m.get(BANNED), 1);
    assert.equal(m.get(BANS), 1);
    assert.match(srv.stderr(), /event=abuse_ban who="127\.0\.0\.1" offences=1 ban_s=1\n/);
    assert.match(srv.stderr(), /event=upgrade_refused status=429 reason=banned detail="127\.0\.0\.1" retry_after=1\n/);

    // The ban ends 1 s after the close; the client may then connect again,
    // on probation: its message bucket starts with one token, not the burst.
    await sleep(1100);
    assert.equal(await upgradeStatus(url), 101, "admitted after the ban");
    const back = await open(t, url);
    assert.deepEqual(await twoAtOnce(back), ["ok", "rate_limited"], "no burst on probation");
    const fresh = await open(t, url, { localAddress: OTHER_ADDRESS });
    assert.deepEqual(await twoAtOnce(fresh), ["ok", "ok"], "another address has its burst of 2");
    back.close();
    await sleep(1000); // let the bucket refill: rate 1/s

    // A second offence: 2 s.
    await floodOut(t, url);
    await assertBanned(url, 2);
    await sleep(1100);
    await assertBanned(url, 1); // still banned after 1 s, with ~0.9 s left
    await assertAlive(bystander);
    await sleep(1000);
    assert.equal(await upgradeStatus(url), 101, "admitted after the longer ban");

    m = await srv.metrics();
    assert.equal(m.get(BANNED), 3, "every refusal counted");
    assert.equal(m.get(BANS), 2);
    assert.equal(m.get("parley_rate_limit_disconnects_total"), 2);
    assert.match(srv.stderr(), /event=abuse_ban who="127\.0\.0\.1" offences=2 ban_s=2\n/);
  });

  test("the defaults: a 2 s ban", async (t) => {
    const srv = await server(t, []);
    await floodOut(t, wsUrl(srv));
    await assertBanned(wsUrl(srv), 2);
  });
});

describe("a flooder with a token is banned as its user", () => {
  test("that user is refused from any address; other users, other tenants and anonymous clients are not; its open sockets stay", async (t) => {
    const srv = await server(t, ["--abuse-ban", "1"], { env: { PARLEY_AUTH_KEYS: KEY } });
    const alice = tokenUrl(srv, { sub: "alice" });
    const aliceOpen = await open(t, alice);

    await floodOut(t, alice);
    await assertBanned(alice, 1);
    await assertBanned(alice, 1, { localAddress: OTHER_ADDRESS });
    assert.equal(await upgradeStatus(tokenUrl(srv, { sub: "bob" })), 101, "another user");
    assert.equal(await upgradeStatus(tokenUrl(srv, { sub: "alice", tenant: "acme" })), 101, "alice of another tenant");
    assert.equal(await upgradeStatus(wsUrl(srv)), 101, "an anonymous client from the same address");
    await assertAlive(aliceOpen);
    assert.match(srv.stderr(), /event=abuse_ban who="user:alice" offences=1 ban_s=1\n/);

    await sleep(1100);
    assert.equal(await upgradeStatus(alice), 101, "admitted after the ban");
    assert.equal((await srv.metrics()).get(BANNED), 2);
  });

  test("--abuse-ban-addresses no: an anonymous flooder reconnects at once; a user with a token is still banned", async (t) => {
    const srv = await server(t, ["--abuse-ban", "1", "--abuse-ban-addresses", "no"], {
      env: { PARLEY_AUTH_KEYS: KEY },
    });
    await floodOut(t, wsUrl(srv));
    assert.equal(await upgradeStatus(wsUrl(srv)), 101);
    const alice = tokenUrl(srv, { sub: "alice" });
    await floodOut(t, alice);
    await assertBanned(alice, 1);
    const m = await srv.metrics();
    assert.equal(m.get(BANS), 1, "only the user was banned");
    assert.equal(m.get("parley_rate_limit_disconnects_total"), 2);
  });
});

describe("phoenix.js", () => {
  test("with its own backoff, it is refused while banned, then reconnects and rejoins by itself", async (t) => {
    const srv = await server(t, ["--abuse-ban", "1"]);
    // phoenix.js' default backoff: 10, 50, 100, 150, 200, 250, 500, 1000 ms...
    const socket = await phoenixSocket(t, srv, { reconnectAfterMs: undefined, rejoinAfterMs: undefined });
    const closes = [];
    socket.onClose((e) => closes.push(e.code));
    const channel = socket.channel("room:penalty", {});
    await new Promise((resolve, reject) => channel.join().receive("ok", resolve).receive("error", reject));
    const start = Date.now();
    for (let i = 0; i < 12; i++) channel.push("spam", { i });
    await waitFor(() => closes.length > 1 && socket.isConnected() && channel.state === "joined", 5000, "reconnected and rejoined");
    const back = Date.now() - start;
    assert.equal(closes[0], 4004);
    assert.ok(back >= 950 && back < 3000, `back after ${back} ms`);
    const refused = (await srv.metrics()).get(BANNED);
    assert.ok(refused >= 3 && refused === closes.length - 1, `${refused} refusals, closes ${closes}`);
    assert.equal((await srv.metrics()).get("parley_connections"), 1);
  });
});

describe("in a cluster", () => {
  test("a ban imposed by one node holds on the others, and the next offence anywhere doubles it everywhere", async (t) => {
    const redis = await startRedis();
    t.after(() => redis.kill());
    const [a, b] = await Promise.all([1, 2].map(() => server(t, ["--abuse-ban", "2", "--redis", redis.addr])));
    await waitFor(
      async () => (await Promise.all([a.healthz(), b.healthz()])).every((h) => h.cluster === "ok" && h.peers === 1),
      5000,
      "the two nodes see each other",
    );
    const bystander = await open(t, wsUrl(b), { localAddress: OTHER_ADDRESS });

    await floodOut(t, wsUrl(a));
    await assertBanned(wsUrl(a), 2);
    // Node B hears of it through Redis and refuses the flooder too.
    await waitFor(async () => (await b.metrics()).get(ADOPTED) === 1, 5000, "node B adopts the ban");
    const r = await upgradeStatus(wsUrl(b));
    assert.equal(r.status, 429, "refused by the node it never flooded");
    assert.ok(["1", "2"].includes(r.headers["retry-after"]), `Retry-After: what is left (${r.headers["retry-after"]})`);
    assert.match(b.stderr(), /event=abuse_ban_adopted node="[^"]+" who=address offences=1 ban_s=2\n/);
    assert.equal((await b.metrics()).get(BANNED), 1, "counted as a refusal there");
    assert.equal(await upgradeStatus(wsUrl(b), { localAddress: OTHER_ADDRESS }), 101, "another address connects to B");
    await assertAlive(bystander);
    assert.equal((await a.metrics()).get(ADOPTED), 0, "a node does not adopt its own ban");

    // Once it ends, a flood on node B is a second offence: 4 s, on both.
    await sleep(2100);
    await floodOut(t, wsUrl(b));
    await assertBanned(wsUrl(b), 4);
    assert.match(b.stderr(), /event=abuse_ban who="127\.0\.0\.1" offences=2 ban_s=4\n/);
    await waitFor(async () => (await a.metrics()).get(ADOPTED) === 1, 5000, "node A adopts the second ban");
    const back = await upgradeStatus(wsUrl(a));
    assert.equal(back.status, 429);
    assert.ok(["3", "4"].includes(back.headers["retry-after"]), `Retry-After on A: ${back.headers["retry-after"]}`);
  });
});

describe("settings", () => {
  test("--abuse-ban 0: no bans at all", async (t) => {
    const srv = await server(t, ["--abuse-ban", "0"]);
    for (let i = 0; i < 3; i++) {
      await floodOut(t, wsUrl(srv));
      assert.equal(await upgradeStatus(wsUrl(srv)), 101, `reconnect ${i}`);
    }
    const m = await srv.metrics();
    assert.equal(m.get(BANNED), 0);
    assert.equal(m.get(BANS), 0);
    assert.equal(m.get("parley_rate_limit_disconnects_total"), 3);
  });

  test("bad settings stop the server at startup", async () => {
    for (const args of [
      ["--abuse-ban", "10", "--abuse-ban-max", "5"],
      ["--abuse-ban-addresses", "maybe"],
      ["--abuse-ban", "-1"],
    ]) {
      await assert.rejects(startServer(args), /exited before listening/, args.join(" "));
    }
  });

  test("from the environment, like every setting", async (t) => {
    const srv = await server(t, [], { env: { PARLEY_ABUSE_BAN: "3", PARLEY_ABUSE_BAN_ADDRESSES: "yes" } });
    await floodOut(t, wsUrl(srv));
    await assertBanned(wsUrl(srv), 3);
    // connectRaw reports a refused upgrade as an error, as clients see it.
    await assert.rejects(connectRaw(srv, "v2"), /unexpected response 429/);
  });
});
