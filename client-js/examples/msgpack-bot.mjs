#!/usr/bin/env node
// A command bot over MessagePack: answers "!ping" with "pong" and "!who" with
// who is in the room.
//
//   node client-js/examples/msgpack-bot.mjs --url ws://127.0.0.1:4000/socket --room lobby
//
// The only difference from a JSON bot is the serializer option: frames are
// binary MessagePack arrays, and the server translates between its JSON and
// MessagePack members, so the chat page sees this bot's messages like any
// other. Same message shape as the chat page: `new_msg` {user, name, body,
// bot: true}. SIGINT or SIGTERM disconnects and exits 0.

import { parseArgs } from "node:util";

import { Presence, Socket } from "../src/index.js";
import { MsgpackSerializer } from "../src/msgpack.js";

// Node 20 has no WebSocket of its own; browsers and Node >= 22 do.
const WebSocket = globalThis.WebSocket ?? (await import("ws")).default;

const USAGE = `usage: node msgpack-bot.mjs [--url URL] [--room ROOM] [--name NAME] [--user KEY]

  --url URL    the server's socket endpoint  ($PARLEY_URL; default ws://127.0.0.1:4000/socket)
  --room ROOM  the room; "lobby" is the topic room:lobby  ($PARLEY_ROOM; default lobby)
  --name NAME  the name people see  ($BOT_NAME; default Ping bot)
  --user KEY   the presence key  ($BOT_USER; default: the name)`;

let opts;
try {
  ({ values: opts } = parseArgs({
    options: {
      url: { type: "string", default: process.env.PARLEY_URL || "ws://127.0.0.1:4000/socket" },
      room: { type: "string", default: process.env.PARLEY_ROOM || "lobby" },
      name: { type: "string", default: process.env.BOT_NAME || "Ping bot" },
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
const log = (line) => console.log(`[msgpack-bot] ${line}`);

const socket = new Socket(opts.url, {
  params: { user },
  transport: WebSocket,
  serializer: MsgpackSerializer,
});
socket.onError(() => {});

const channel = socket.channel(topic, { name, status: "online" });
const presence = new Presence(channel);

/** "Ada, Bob (2 tabs), Ping bot": everyone online, by display name. */
function whoIsHere() {
  const people = presence.list((key, { metas }) => {
    const shown = metas[metas.length - 1]?.name || key;
    return metas.length > 1 ? `${shown} (${metas.length} tabs)` : shown;
  });
  return people.sort((a, b) => a.localeCompare(b)).join(", ");
}

const COMMANDS = {
  "!ping": () => "pong",
  "!who": () => `online: ${whoIsHere()}`,
};

channel.on("new_msg", (msg) => {
  if (typeof msg?.body !== "string" || msg.user === user || msg.bot) return;
  const command = COMMANDS[msg.body.trim()];
  if (command) channel.push("new_msg", { user, name, body: command(), bot: true });
});

channel
  .join()
  .receive("ok", () => log(`joined ${topic} as ${name} (${user}) over MessagePack`))
  .receive("error", (resp) => log(`join refused: ${resp?.reason}`));

socket.connect();

function stop() {
  setTimeout(() => process.exit(0), 2000).unref();
  socket.disconnect(() => process.exit(0));
}
process.once("SIGINT", stop);
process.once("SIGTERM", stop);
