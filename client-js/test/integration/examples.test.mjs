// The example bots (client-js/examples/) run as they would for a user: each
// is a child process of `node <example> --url ... --room ...` against a real
// parley, and people in the room are official phoenix clients. What a person
// in the room would notice is asserted: the echo bot answers each message
// once and never itself, the greeter greets each person once however many
// tabs they open and never the people already there, the bots come back
// after the server restarts, and SIGTERM makes them leave and exit 0.
//
// Every child (bot or server) is stopped by PID when its test ends, passed or
// failed, and again by after() and the exit hook as a last resort.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";

import { Presence, Socket } from "phoenix";
import WebSocket from "ws";

import { sleep, startServer, stopAllServers, waitFor, withTimeout } from "../../../tests/js/lib/server.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const EXAMPLES = path.resolve(here, "..", "..", "examples");
const REPO = path.resolve(here, "..", "..", "..");
const WAIT = 5000;
/** Longer than a presence batch window (50 ms), with room to spare. */
const SETTLE_MS = 250;

// ---- bots as child processes ----------------------------------------------------

const bots = new Map(); // pid -> bot

function killBot(bot) {
  if (bot.running()) {
    try {
      process.kill(bot.proc.pid, "SIGKILL");
    } catch {
      /* already gone */
    }
  }
}

process.on("exit", () => bots.forEach(killBot));

after(async () => {
  for (const bot of bots.values()) killBot(bot);
  await Promise.all([...bots.values()].map((b) => b.exited));
  await stopAllServers();
});

/**
 * Starts `node examples/<file> ...args` and returns a handle: output()
 * (stdout and stderr so far), waitOutput(regex, count) for the count-th
 * match, signal(name), stop(signal) resolving {code, signal} once it has
 * exited, exited. Killed by PID when test t ends.
 */
function startBot(t, file, args) {
  const proc = spawn(process.execPath, [path.join(EXAMPLES, file), ...args], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  proc.stdout.setEncoding("utf8");
  proc.stderr.setEncoding("utf8");
  proc.stdout.on("data", (chunk) => (output += chunk));
  proc.stderr.on("data", (chunk) => (output += chunk));
  const bot = {
    proc,
    output: () => output,
    running: () => proc.exitCode === null && proc.signalCode === null,
    exited: new Promise((resolve) => proc.once("exit", (code, signal) => resolve({ code, signal }))),
    count: (re) => (output.match(new RegExp(re.source, "g")) ?? []).length,
    waitOutput(re, count = 1, timeoutMs = WAIT) {
      return waitFor(() => bot.count(re) >= count, timeoutMs, `${file} to print ${re} (x${count}); output:\n${output}`);
    },
    signal(name) {
      if (bot.running()) process.kill(proc.pid, name);
    },
    stop(signal = "SIGTERM") {
      bot.signal(signal);
      return withTimeout(bot.exited, WAIT, `${file} to exit after ${signal}; output:\n${output}`);
    },
  };
  bots.set(proc.pid, bot);
  t.after(async () => {
    killBot(bot);
    if (bot.proc.pid) await bot.exited;
  });
  return bot;
}

// ---- people: official phoenix clients ----------------------------------------------

/**
 * A person's tab: a phoenix socket connected as `user` (the presence key, as
 * the chat page does) that joins `topic` with {name, status} and records
 * every new_msg and its presence. It does not reconnect: a test that loses
 * it fails. Disconnected when test t ends.
 */
async function joinAs(t, server, topic, user, name = user) {
  const socket = new Socket(server.socketBase, {
    transport: WebSocket,
    params: { user },
    timeout: WAIT,
    heartbeatIntervalMs: 30000,
    reconnectAfterMs: () => 60000,
    rejoinAfterMs: () => 60000,
  });
  t.after(() => socket.disconnect());
  await withTimeout(
    new Promise((resolve, reject) => {
      socket.onOpen(resolve);
      socket.onError((e) => reject(new Error(`${user}'s socket: ${e?.message ?? e}`)));
      socket.connect();
    }),
    WAIT,
    `${user} to connect`,
  );
  const channel = socket.channel(topic, { name, status: "online" });
  const messages = [];
  channel.on("new_msg", (payload) => messages.push(payload));
  const presence = new Presence(channel);
  await withTimeout(
    new Promise((resolve, reject) => channel.join().receive("ok", resolve).receive("error", reject)),
    WAIT,
    `${user} to join ${topic}`,
  );
  const tab = {
    socket,
    channel,
    presence,
    messages,
    /** Sends a chat message the way the chat page does; resolves on "ok". */
    say(body, extra = {}) {
      return withTimeout(
        new Promise((resolve, reject) =>
          channel.push("new_msg", { user, name, body, ...extra }).receive("ok", resolve).receive("error", reject),
        ),
        WAIT,
        `${user} to send ${body}`,
      );
    },
    /** The bodies of the messages received from presence key `from`. */
    bodiesFrom: (from) => messages.filter((m) => m.user === from).map((m) => m.body),
    /** Waits for a message from `from` with this body; returns it. */
    heard(from, body) {
      return waitFor(
        () => messages.find((m) => m.user === from && m.body === body),
        WAIT,
        `${user} to hear ${from} say ${JSON.stringify(body)}; heard ${JSON.stringify(messages)}`,
      );
    },
    /** Waits until presence lists (or, present=false, no longer lists) key. */
    sees(key, present = true) {
      return waitFor(
        () => presence.list((k) => k).includes(key) === present,
        WAIT,
        `${user} to see ${key} ${present ? "online" : "gone"}`,
      );
    },
    leave: () => socket.disconnect(),
  };
  return tab;
}

const botArgs = (server, room, name, user) => [
  "--url",
  server.socketBase,
  "--room",
  room,
  "--name",
  name,
  "--user",
  user,
];

// ---- the echo bot ----------------------------------------------------------------

test("echo bot: answers each message from a person once, never itself nor another bot", async (t) => {
  const server = await startServer();
  t.after(() => server.end());
  const bot = startBot(t, "echo-bot.mjs", botArgs(server, "echo", "Echo bot", "echo-bot"));
  await bot.waitOutput(/joined room:echo/);
  const ada = await joinAs(t, server, "room:echo", "ada", "Ada");
  await ada.sees("echo-bot");

  await ada.say("hello");
  const echo = await ada.heard("echo-bot", "echo: hello");
  assert.deepEqual(echo, { user: "echo-bot", name: "Echo bot", body: "echo: hello", bot: true });

  // Another bot's message is not answered (two bots would answer each other
  // forever), nor a message bearing the bot's own key.
  await ada.say("from a bot", { bot: true });
  await ada.channel.push("new_msg", { user: "echo-bot", name: "Echo bot", body: "own key" });

  // The bot handles messages in order and the server keeps one sender's
  // messages in order: once the answer to "marker" is here, an answer to
  // anything earlier (its own echo included) would have arrived before it.
  await ada.say("marker");
  await ada.heard("echo-bot", "echo: marker");
  await sleep(SETTLE_MS);
  assert.deepEqual(ada.bodiesFrom("echo-bot"), ["echo: hello", "own key", "echo: marker"]);

  // SIGTERM: the bot leaves the room and exits 0.
  assert.deepEqual(await bot.stop("SIGTERM"), { code: 0, signal: null });
  await ada.sees("echo-bot", false);
});

test("echo bot: comes back by itself after the server restarts, and answers once", async (t) => {
  const first = await startServer();
  t.after(() => first.end());
  const bot = startBot(t, "echo-bot.mjs", botArgs(first, "restart", "Echo bot", "echo-bot"));
  await bot.waitOutput(/joined room:restart/);
  await first.stop("SIGTERM"); // closes every socket with 1001
  const server = await startServer(["--listen", `127.0.0.1:${first.port}`]);
  t.after(() => server.end());
  await bot.waitOutput(/joined room:restart/, 2, 15000);

  const ada = await joinAs(t, server, "room:restart", "ada", "Ada");
  await ada.say("are you back?");
  await ada.heard("echo-bot", "echo: are you back?");
  await ada.say("marker");
  await ada.heard("echo-bot", "echo: marker");
  assert.deepEqual(ada.bodiesFrom("echo-bot"), ["echo: are you back?", "echo: marker"]);
  assert.deepEqual(await bot.stop("SIGINT"), { code: 0, signal: null });
});

// ---- the greeter -------------------------------------------------------------------

test("greeter: one hello and one goodbye per person, whatever their tabs; not the people already there", async (t) => {
  const server = await startServer();
  t.after(() => server.end());
  const bob = await joinAs(t, server, "room:greet", "bob", "Bob"); // there before the greeter
  await sleep(SETTLE_MS);
  const bot = startBot(t, "greeter-bot.mjs", botArgs(server, "greet", "Greeter", "greeter"));
  await bot.waitOutput(/joined room:greet/);
  await bob.sees("greeter");

  const ada1 = await joinAs(t, server, "room:greet", "ada", "Ada");
  const hello = await bob.heard("greeter", "Ada joined");
  assert.deepEqual(hello, { user: "greeter", name: "Greeter", body: "Ada joined", bot: true });

  const ada2 = await joinAs(t, server, "room:greet", "ada", "Ada"); // a second tab: not news
  await sleep(SETTLE_MS);
  ada1.leave(); // one tab closed, one still open: not news
  await sleep(SETTLE_MS);
  ada2.leave();
  await bob.heard("greeter", "Ada left");

  // Two tabs opening in the same batch window, then closing together.
  const cy1 = await joinAs(t, server, "room:greet", "cy", "Cy");
  const cy2 = await joinAs(t, server, "room:greet", "cy", "Cy");
  await bob.heard("greeter", "Cy joined");
  cy1.leave();
  cy2.leave();
  await bob.heard("greeter", "Cy left");

  // The greeter's messages reach Bob in the order it sent them: once "Dan
  // joined" is here, any duplicate announcement would have come before.
  await joinAs(t, server, "room:greet", "dan", "Dan");
  await bob.heard("greeter", "Dan joined");
  await sleep(SETTLE_MS);
  assert.deepEqual(bob.bodiesFrom("greeter"), ["Ada joined", "Ada left", "Cy joined", "Cy left", "Dan joined"]);

  assert.deepEqual(await bot.stop("SIGTERM"), { code: 0, signal: null });
  await bob.sees("greeter", false);
});

test("greeter: after a reconnect, the room as it is now is not announced", async (t) => {
  const first = await startServer();
  t.after(() => first.end());
  const bot = startBot(t, "greeter-bot.mjs", botArgs(first, "again", "Greeter", "greeter"));
  await bot.waitOutput(/joined room:again/);
  const zed = await joinAs(t, first, "room:again", "zed", "Zed"); // gone with the first server
  await zed.heard("greeter", "Zed joined");

  // While the greeter is frozen the server dies and a new one starts on the
  // same port, where Bob and Cy are already in the room when the greeter
  // comes back: its rejoin's presence_state shows them there and Zed gone,
  // none of which it saw happen.
  bot.signal("SIGSTOP");
  t.after(() => bot.signal("SIGCONT"));
  await first.kill();
  const server = await startServer(["--listen", `127.0.0.1:${first.port}`]);
  t.after(() => server.end());
  const bob = await joinAs(t, server, "room:again", "bob", "Bob");
  await joinAs(t, server, "room:again", "cy", "Cy");
  await sleep(SETTLE_MS);
  bot.signal("SIGCONT");
  await bot.waitOutput(/joined room:again/, 2, 15000);
  await bob.sees("greeter");

  await joinAs(t, server, "room:again", "dan", "Dan");
  await bob.heard("greeter", "Dan joined");
  await sleep(SETTLE_MS);
  assert.deepEqual(bob.bodiesFrom("greeter"), ["Dan joined"]);
  assert.deepEqual(await bot.stop("SIGTERM"), { code: 0, signal: null });
});

test("every library bot exits 0 on SIGTERM while it cannot reach the server", async (t) => {
  const gone = await startServer();
  t.after(() => gone.end());
  await gone.stop("SIGTERM"); // a port where nothing listens any more
  const started = ["echo-bot.mjs", "greeter-bot.mjs", "msgpack-bot.mjs"].map((file) =>
    startBot(t, file, botArgs(gone, "nowhere", "Bot", "bot")),
  );
  await Promise.all(started.slice(0, 2).map((bot) => bot.waitOutput(/cannot connect/)));
  await sleep(SETTLE_MS); // the MessagePack bot says nothing; give it as long
  for (const result of await Promise.all(started.map((bot) => bot.stop("SIGTERM")))) {
    assert.deepEqual(result, { code: 0, signal: null });
  }
});

// ---- the MessagePack bot and the raw bot --------------------------------------------

test("msgpack bot: answers !ping and !who over MessagePack, to JSON clients", async (t) => {
  const server = await startServer();
  t.after(() => server.end());
  const bot = startBot(t, "msgpack-bot.mjs", botArgs(server, "mp", "Ping bot", "ping-bot"));
  await bot.waitOutput(/joined room:mp/);
  const ada = await joinAs(t, server, "room:mp", "ada", "Ada");
  await joinAs(t, server, "room:mp", "ada", "Ada");
  await sleep(SETTLE_MS);

  await ada.say("!ping");
  const pong = await ada.heard("ping-bot", "pong");
  assert.deepEqual(pong, { user: "ping-bot", name: "Ping bot", body: "pong", bot: true });
  await ada.say("not a command");
  await ada.say("!who");
  await ada.heard("ping-bot", "online: Ada (2 tabs), Ping bot");
  await sleep(SETTLE_MS);
  assert.deepEqual(ada.bodiesFrom("ping-bot"), ["pong", "online: Ada (2 tabs), Ping bot"]);
  assert.deepEqual(await bot.stop("SIGTERM"), { code: 0, signal: null });
});

test("raw bot: echoes once with nothing but a WebSocket; docs/bots.md shows it verbatim", async (t) => {
  const source = readFileSync(path.join(EXAMPLES, "raw-bot.mjs"), "utf8").trimEnd();
  const docs = readFileSync(path.join(REPO, "docs", "bots.md"), "utf8");
  assert.ok(docs.includes("```js\n" + source + "\n```"), "docs/bots.md must quote examples/raw-bot.mjs exactly");

  const server = await startServer();
  t.after(() => server.end());
  startBot(t, "raw-bot.mjs", [server.socketBase, "room:raw", "raw-bot"]);
  const ada = await joinAs(t, server, "room:raw", "ada", "Ada");
  await ada.sees("raw-bot");
  await ada.say("hello");
  await ada.heard("raw-bot", "echo: hello");
  await ada.say("marker");
  await ada.heard("raw-bot", "echo: marker");
  assert.deepEqual(ada.bodiesFrom("raw-bot"), ["echo: hello", "echo: marker"]);
});
