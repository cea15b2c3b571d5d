// Measures what TLS costs the server per connection, against plaintext:
// starts parley (build/server/parley, or $PARLEY_BIN) once without and once
// with a self-signed certificate, opens N WebSocket connections that each
// join one topic, and reports
//  - the growth of the server's RSS per connection once they are idle, and
//    again after a series of broadcasts has reached every one of them;
//  - the server's CPU time (user + system, from /proc) per delivery over
//    those broadcasts (each one waited for before the next).
// docs/tls.md quotes its output. Loopback only; every server it starts is
// killed by PID at the end.
//
//   node tests/js/tools/tls-memory.mjs [N=3000] [BROADCASTS=50]

import { readFileSync } from "node:fs";

import { connectRaw, makeTestCert, sleep, startServer, stopAllServers } from "../lib/server.mjs";

const N = Number(process.argv[2] ?? 3000);
const BROADCASTS = Number(process.argv[3] ?? 50);
const BATCH = 100; // connections opened at once
const TICK_S = 0.01; // /proc/PID/stat counts CPU time in ticks of 10 ms

/** User + system CPU seconds of process pid so far. */
function cpuSeconds(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) * TICK_S; // utime, stime
}

async function measure(tls) {
  const server = await startServer(["--idle-timeout", "3600", "--out-queue-msgs", "100000"], { tls });
  await sleep(200);
  const base = server.rssKb();
  const clients = [];
  for (let i = 0; i < N; i += BATCH) {
    const batch = [];
    for (let j = i; j < Math.min(N, i + BATCH); j++) batch.push(connectRaw(server, "v2", { timeoutMs: 30000 }));
    clients.push(...(await Promise.all(batch)));
  }
  for (let i = 0; i < N; i += BATCH) {
    await Promise.all(clients.slice(i, i + BATCH).map((c) => c.join("room:idle", {}, 30000)));
  }
  await sleep(500);
  const idle = server.rssKb();

  const cpu0 = cpuSeconds(server.pid);
  for (let b = 0; b < BROADCASTS; b++) {
    clients[0].send(null, `b${b}`, "room:idle", "hello", { b, body: "x".repeat(100) });
    await Promise.all(clients.map((c) => c.broadcast("room:idle", "hello", (p) => p.b === b, 30000)));
    for (const c of clients) c.messages.length = 0, c.consumed.clear();
  }
  const cpuPerDelivery = (cpuSeconds(server.pid) - cpu0) / (BROADCASTS * N);
  await sleep(500);
  const after = server.rssKb();
  for (const c of clients) c.terminate();
  await stopAllServers();
  return { base, idle, after, cpuPerDelivery };
}

const plain = await measure(null);
const secure = await measure(makeTestCert());
const per = (r, k) => (r[k] - r.base) / N; // kB of RSS per connection
const show = (name, r) =>
  console.log(
    `${name} RSS ${r.base} -> ${r.idle} kB idle (${per(r, "idle").toFixed(2)} kB each), ` +
      `${r.after} kB after the broadcasts (${per(r, "after").toFixed(2)} kB each); ` +
      `${(r.cpuPerDelivery * 1e6).toFixed(1)} us of server CPU per delivery`,
  );
console.log(`${N} connections, each joined to one topic; ${BROADCASTS} broadcasts of ~130-byte frames`);
show("plaintext:", plain);
show("TLS:      ", secure);
console.log(`TLS costs ${(per(secure, "idle") - per(plain, "idle")).toFixed(2)} kB more per idle connection`);
