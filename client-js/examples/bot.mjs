// What every example bot shares: its command line (--url, --room, --name,
// --user, each also an environment variable), a Socket with the `user`
// connect parameter, one log line per connection change, and a clean stop on
// SIGINT or SIGTERM (disconnect, exit 0). A bot adds its channel handlers to
// the returned socket and channel, then calls socket.connect().

import { parseArgs } from "node:util";

import { Socket } from "../src/index.js";

// Node 20 has no WebSocket of its own; browsers and Node >= 22 do.
const WebSocket = globalThis.WebSocket ?? (await import("ws")).default;

/**
 * Parses the bot's options (printing the usage and exiting on -h or a
 * mistake) and creates its socket and its channel in the room.
 *
 * @param {string} script - The bot's file name, for the usage and log lines.
 * @param {string} defaultName - The name people see unless --name is given.
 * @param {object} [socketOpts] - More Socket options (e.g. a serializer).
 * @returns {{socket, channel, topic: string, name: string, user: string,
 *   log: (line: string) => void}}
 */
export function startBot(script, defaultName, socketOpts = {}) {
  const usage = `usage: node ${script} [--url URL] [--room ROOM] [--name NAME] [--user KEY]

  --url URL    the server's socket endpoint  ($PARLEY_URL; default ws://127.0.0.1:4000/socket)
  --room ROOM  the room; "lobby" is the topic room:lobby  ($PARLEY_ROOM; default lobby)
  --name NAME  the name people see  ($BOT_NAME; default ${defaultName})
  --user KEY   the presence key  ($BOT_USER; default: the name)`;
  let opts;
  try {
    ({ values: opts } = parseArgs({
      options: {
        url: { type: "string", default: process.env.PARLEY_URL || "ws://127.0.0.1:4000/socket" },
        room: { type: "string", default: process.env.PARLEY_ROOM || "lobby" },
        name: { type: "string", default: process.env.BOT_NAME || defaultName },
        user: { type: "string", default: process.env.BOT_USER || "" },
        help: { type: "boolean", short: "h", default: false },
      },
    }));
  } catch (err) {
    console.error(`${err.message}\n${usage}`);
    process.exit(2);
  }
  if (opts.help) {
    console.log(usage);
    process.exit(0);
  }

  const name = opts.name;
  const user = opts.user || name;
  const topic = opts.room.includes(":") ? opts.room : `room:${opts.room}`;
  const tag = script.replace(/\.mjs$/, "");
  const log = (line) => console.log(`[${tag}] ${line}`);

  const socket = new Socket(opts.url, { params: { user }, transport: WebSocket, ...socketOpts });
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

  function stop(signal) {
    stopping = true;
    log(`${signal}: leaving`);
    // A disconnect that hangs must not keep the process alive.
    setTimeout(() => process.exit(0), 2000).unref();
    socket.disconnect(() => process.exit(0));
  }
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);

  const channel = socket.channel(topic, { name, status: "online" });
  return { socket, channel, topic, name, user, log };
}
