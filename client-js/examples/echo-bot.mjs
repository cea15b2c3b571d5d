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

import { startBot } from "./bot.mjs";

const { socket, channel, topic, name, user, log } = startBot("echo-bot.mjs", "Echo bot");

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
