#!/usr/bin/env node
// The echo bot: joins one room and answers every chat message from someone
// else with "echo: <text>".
//
//   node client-js/examples/echo-bot.mjs --url ws://127.0.0.1:4000/socket --room lobby
//
// It speaks the chat page's message shape, so it shows up in the page like a
// person: the connect parameter `user` is its presence key, the join payload
// {name, status} its entry in the online list, and it sends
// `new_msg` {user, name, body, bot: true}. The server sends every message
// back to its sender too, so the bot skips messages carrying its own `user`;
// it also skips messages marked `bot: true`, so that two bots in a room do
// not answer each other forever.
//
// The library reconnects and rejoins by itself when the connection drops.
// SIGINT or SIGTERM disconnects and exits 0.

import { parseArgs } from "node:util";

import { Socket } from "../src/index.js";

// Node 20 has no WebSocket of its own; browsers and Node >= 22 do.
const WebSocket = globalThis.WebSocket ?? (await import("ws")).default;

const USAGE = `usage: node echo-bot.mjs [--url URL] [--room ROOM] [--name NAME] [--user KEY]

  --url URL    the server's socket endpoint  ($PARLEY_URL; default ws://127.0.0.1:4000/socket)
  --room ROOM  the room; "lobby" is the topic room:lobby  ($PARLEY_ROOM; default lobby)
  --name NAME  the name people see  ($BOT_NAME; default Echo bot)
  --user KEY   the presence key  ($BOT_USER; default: the name)`;

let opts;
try {
  ({ values: opts } = parseArgs({
    options: {
      url: { type: "string", default: process.env.PARLEY_URL || "ws://127.0.0.1:4000/socket" },
      room: { type: "string", default: process.env.PARLEY_ROOM || "lobby" },
      name: { type: "string", default: process.env.BOT_NAME || "Echo bot" },
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
const log = (line) => console.log(`[echo-bot] ${line}`);

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

channel.on("new_msg", (msg) => {
  if (typeof msg?.body !== "string") return;
  if (msg.user === user || msg.bot) return; // ourselves, or another bot
  channel
    .push("new_msg", { user, name, body: `echo: ${msg.body}`, bot: true })
    .receive("error", (resp) => log(`echo refused: ${resp?.reason}`));
});

channel
  .join()
  .receive("ok", () => log(`joined ${topic} as ${name} (${user})`))
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
