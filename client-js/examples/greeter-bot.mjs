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

import { Presence } from "../src/index.js";
import { startBot } from "./bot.mjs";

const { socket, channel, topic, name, user, log } = startBot("greeter-bot.mjs", "Greeter");
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
