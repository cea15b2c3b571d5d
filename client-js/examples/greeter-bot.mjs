#!/usr/bin/env node
// The greeter bot: says "Ada joined" when a person arrives in a room and
// "Ada left" when they are gone.
//
//   node client-js/examples/greeter-bot.mjs --url ws://127.0.0.1:4000/socket --room lobby
//
// It follows the room's presence with the library's Presence:
//
// - A person is a presence key; each tab (connection) of theirs is one meta.
//   Only the first meta of a key arriving is a join (onJoin's `current` is
//   undefined) and only the last one going is a leave (`current.metas` is
//   empty), so a second tab, a closed tab or a status change say nothing.
// - Each (re)join of the channel is followed by a presence_state: the whole
//   room, which the Presence reports through onJoin/onLeave as the
//   difference with what it knew. Those people did not just arrive (or, after
//   a reconnect, did not leave just now), so nothing is said from a join's
//   reply until the sync that follows it.
// - Its own key is not announced.
//
// It speaks the chat page's message shape: `new_msg` {user, name, body,
// bot: true}. SIGINT or SIGTERM disconnects and exits 0.

import { parseArgs } from "node:util";

import { Presence, Socket } from "../src/index.js";

// Node 20 has no WebSocket of its own; browsers and Node >= 22 do.
const WebSocket = globalThis.WebSocket ?? (await import("ws")).default;

const USAGE = `usage: node greeter-bot.mjs [--url URL] [--room ROOM] [--name NAME] [--user KEY]

  --url URL    the server's socket endpoint  ($PARLEY_URL; default ws://127.0.0.1:4000/socket)
  --room ROOM  the room; "lobby" is the topic room:lobby  ($PARLEY_ROOM; default lobby)
  --name NAME  the name people see  ($BOT_NAME; default Greeter)
  --user KEY   the presence key  ($BOT_USER; default: the name)`;

let opts;
try {
  ({ values: opts } = parseArgs({
    options: {
      url: { type: "string", default: process.env.PARLEY_URL || "ws://127.0.0.1:4000/socket" },
      room: { type: "string", default: process.env.PARLEY_ROOM || "lobby" },
      name: { type: "string", default: process.env.BOT_NAME || "Greeter" },
      user: { type: "string", default: process.env.BOT_USER || "" },
      help: { type: "boolean", short: "h", default: false },
    },
  }));
} catch (err) {
  console.error(`${err.message}\n${USAGE}`);
  process.exit(2);
}
if (opts.help) {
  console.log(USAGE);
  process.exit(0);
}

const name = opts.name;
const user = opts.user || name;
const topic = opts.room.includes(":") ? opts.room : `room:${opts.room}`;
const log = (line) => console.log(`[greeter-bot] ${line}`);

const socket = new Socket(opts.url, { params: { user }, transport: WebSocket });
let stopping = false;
let connected = false;
socket.onOpen(() => {
  connected = true;
  log(`connected to ${opts.url}`);
});
socket.onClose((event) => {
  if (!stopping) log(`${connected ? "connection lost" : "cannot connect"} (${event?.code}); retrying`);
  connected = false;
});

const channel = socket.channel(topic, { name, status: "online" });
const presence = new Presence(channel);

// True from a join's reply until the presence_state after it has been synced.
let settling = true;

/** The name a presence shows in the chat page: its newest meta's name, else the key. */
const displayName = (key, { metas }) => metas[metas.length - 1]?.name || key;

function say(body) {
  log(`says: ${body}`);
  channel
    .push("new_msg", { user, name, body, bot: true })
    .receive("error", (resp) => log(`message refused: ${resp?.reason}`));
}

presence.onJoin((key, current, joined) => {
  if (settling || key === user || current) return;
  say(`${displayName(key, joined)} joined`);
});

presence.onLeave((key, current, left) => {
  if (settling || key === user || current.metas.length > 0) return;
  say(`${displayName(key, left)} left`);
});

presence.onSync(() => {
  settling = false;
});

channel
  .join()
  .receive("ok", () => {
    settling = true;
    log(`joined ${topic} as ${name} (${user})`);
  })
  .receive("error", (resp) => log(`join refused: ${resp?.reason}`))
  .receive("timeout", () => log("join timed out; retrying"));

socket.connect();

function stop(signal) {
  stopping = true;
  log(`${signal}: leaving`);
  // A disconnect that hangs must not keep the process alive.
  setTimeout(() => process.exit(0), 2000).unref();
  socket.disconnect(() => process.exit(0));
}
process.once("SIGINT", stop);
process.once("SIGTERM", stop);
