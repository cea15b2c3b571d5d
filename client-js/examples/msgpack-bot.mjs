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

import { Presence } from "../src/index.js";
import { MsgpackSerializer } from "../src/msgpack.js";
import { startBot } from "./bot.mjs";

const { socket, channel, topic, name, user, log } = startBot("msgpack-bot.mjs", "Ping bot", {
  serializer: MsgpackSerializer,
});
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
