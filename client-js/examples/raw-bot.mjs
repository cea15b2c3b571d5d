// An echo bot on the bare Phoenix V2 JSON protocol: no client library, only a WebSocket.
// node raw-bot.mjs [URL] [TOPIC] [NAME]   (see docs/bots.md; no reconnect: a real bot needs one)
const WebSocket = globalThis.WebSocket ?? (await import("ws")).default;
const [url = "ws://127.0.0.1:4000/socket", topic = "room:lobby", name = "raw-bot"] = process.argv.slice(2);
const ws = new WebSocket(`${url}/websocket?vsn=2.0.0&user=${encodeURIComponent(name)}`);
const JOIN_REF = "1"; // the ref of our phx_join; every later push on the topic carries it
let ref = 1;
const send = (joinRef, topic, event, payload) => ws.send(JSON.stringify([joinRef, String(ref++), topic, event, payload]));
ws.onopen = () => {
  send(JOIN_REF, topic, "phx_join", { name });
  setInterval(() => send(null, "phoenix", "heartbeat", {}), 30000);
};
ws.onmessage = ({ data }) => {
  const [, , msgTopic, event, payload] = JSON.parse(data);
  if (event === "phx_reply" && payload.status !== "ok") console.error("error:", payload.response);
  if (msgTopic === topic && event === "new_msg" && payload.user !== name && !payload.bot)
    send(JOIN_REF, topic, "new_msg", { user: name, name, body: `echo: ${payload.body}`, bot: true });
};
ws.onclose = ({ code, reason }) => { console.error(`closed ${code} ${reason}`); process.exit(1); };
