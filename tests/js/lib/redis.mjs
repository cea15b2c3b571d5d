// Helpers for the cluster tests: start real redis-server processes on
// ephemeral loopback ports, and talk RESP to them over a raw TCP socket
// (no redis client library: PING, PUBSUB ... are one request, one reply).
//
// Every redis-server started here is remembered by PID; a test file calls
// `after(stopAllRedis)` (the process exit hook below is a last resort), so
// that no redis-server outlives the test file that started it.

import { spawn } from "node:child_process";
import net from "node:net";

/** Path of redis-server: $REDIS_SERVER, else /usr/bin/redis-server. */
export const REDIS_BIN = process.env.REDIS_SERVER || "/usr/bin/redis-server";

const live = new Map(); // pid -> ChildProcess

function killPid(pid) {
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    /* already gone */
  }
}

process.on("exit", () => {
  for (const pid of live.keys()) killPid(pid);
});

/** Kills (SIGKILL, by PID) every redis-server this process started that is
 * still running, and waits for them to be reaped. For after() hooks. */
export async function stopAllRedis() {
  const waits = [];
  for (const [pid, proc] of live) {
    if (proc.exitCode === null && proc.signalCode === null) {
      waits.push(new Promise((resolve) => proc.once("exit", resolve)));
      killPid(pid);
    }
  }
  await Promise.all(waits);
  live.clear();
}

/** A TCP port on 127.0.0.1 that was free a moment ago: bind :0, read the
 * port, close. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// ---- RESP ----------------------------------------------------------------------

/** One command as a RESP array of bulk strings (a Buffer goes as it is). */
export function encodeCommand(args) {
  const parts = [`*${args.length}\r\n`];
  for (const a of args) {
    const b = Buffer.isBuffer(a) ? a : Buffer.from(String(a), "utf8");
    parts.push(`$${b.length}\r\n`, b, "\r\n");
  }
  return Buffer.concat(parts.map((p) => (Buffer.isBuffer(p) ? p : Buffer.from(p, "utf8"))));
}

/** Parses one RESP2 reply from buf at offset. Returns {value, end}, or null
 * if buf does not hold a whole reply yet. Errors become Error values; bulk
 * strings become utf8 strings; nil becomes null. */
export function parseReply(buf, offset = 0) {
  const eol = buf.indexOf("\r\n", offset);
  if (eol < 0) return null;
  const type = String.fromCharCode(buf[offset]);
  const line = buf.toString("utf8", offset + 1, eol);
  const next = eol + 2;
  switch (type) {
    case "+":
      return { value: line, end: next };
    case "-":
      return { value: new Error(line), end: next };
    case ":":
      return { value: Number(line), end: next };
    case "$": {
      const n = Number(line);
      if (n < 0) return { value: null, end: next };
      if (buf.length < next + n + 2) return null;
      return { value: buf.toString("utf8", next, next + n), end: next + n + 2 };
    }
    case "*": {
      const n = Number(line);
      if (n < 0) return { value: null, end: next };
      const out = [];
      let at = next;
      for (let i = 0; i < n; i++) {
        const r = parseReply(buf, at);
        if (!r) return null;
        out.push(r.value);
        at = r.end;
      }
      return { value: out, end: at };
    }
    default:
      throw new Error(`bad RESP type byte ${JSON.stringify(type)} in ${JSON.stringify(buf.toString("utf8"))}`);
  }
}

/** Sends one command to 127.0.0.1:port on a fresh connection and resolves
 * its reply (rejects on an error reply, a connection error or timeout). */
export function redisCommand(port, args, { timeoutMs = 2000 } = {}) {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    let done = false;
    const sock = net.connect({ host: "127.0.0.1", port });
    const finish = (err, value) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(value);
    };
    const timer = setTimeout(
      () => finish(new Error(`redis ${port} ${args.join(" ")}: no reply after ${timeoutMs} ms`)),
      timeoutMs,
    );
    sock.on("connect", () => sock.write(encodeCommand(args)));
    sock.on("data", (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      let r;
      try {
        r = parseReply(buf, 0);
      } catch (e) {
        finish(e);
        return;
      }
      if (!r) return;
      if (r.value instanceof Error) finish(new Error(`redis ${port} ${args.join(" ")}: ${r.value.message}`));
      else finish(null, r.value);
    });
    sock.on("error", (e) => finish(e));
    sock.on("close", () => finish(new Error(`redis ${port} closed the connection before replying`)));
  });
}

/** Sends the literal PING of the RESP spec and resolves true on "+PONG". */
export function ping(port, { timeoutMs = 1000 } = {}) {
  return new Promise((resolve) => {
    let buf = "";
    let done = false;
    const sock = net.connect({ host: "127.0.0.1", port });
    const finish = (ok) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    sock.on("connect", () => sock.write("*1\r\n$4\r\nPING\r\n"));
    sock.on("data", (d) => {
      buf += d.toString("utf8");
      if (buf.includes("\r\n")) finish(buf.startsWith("+PONG"));
    });
    sock.on("error", () => finish(false));
    sock.on("close", () => finish(false));
  });
}

// ---- redis-server ---------------------------------------------------------------

/**
 * Starts redis-server on 127.0.0.1:port (a free ephemeral port unless given),
 * without persistence, and waits until it answers PING. Returns a handle:
 *   port, addr ("127.0.0.1:PORT"), pid, proc, exited,
 *   output()        its stdout+stderr so far (the last 64 KiB),
 *   command(...a)   one command, resolves the parsed reply,
 *   kill(signal)    SIGKILL (or signal) by PID; resolves once it has exited,
 *   running().
 */
export async function startRedis({ port, timeoutMs = 10000 } = {}) {
  port ??= await freePort();
  const args = ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"];
  const proc = spawn(REDIS_BIN, args, { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  let spawnError = null;
  const keep = (chunk) => {
    output = (output + chunk).slice(-65536);
  };
  proc.on("error", (e) => {
    spawnError = e;
  });
  proc.stdout.setEncoding("utf8");
  proc.stderr.setEncoding("utf8");
  proc.stdout.on("data", keep);
  proc.stderr.on("data", keep);
  if (proc.pid) live.set(proc.pid, proc);
  const exited = new Promise((resolve) => {
    proc.once("exit", (code, signal) => {
      live.delete(proc.pid);
      resolve({ code, signal });
    });
  });
  const running = () => proc.exitCode === null && proc.signalCode === null && !spawnError;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!running()) {
      throw new Error(`redis-server ${args.join(" ")} exited early (error=${spawnError}): ${output}`);
    }
    if (await ping(port, { timeoutMs: 500 })) break;
    if (Date.now() > deadline) {
      if (proc.pid) killPid(proc.pid);
      throw new Error(`redis-server on port ${port} did not answer PING within ${timeoutMs} ms: ${output}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return {
    port,
    addr: `127.0.0.1:${port}`,
    pid: proc.pid,
    proc,
    exited,
    output: () => output,
    running,
    command: (...a) => redisCommand(port, a),
    kill(signal = "SIGKILL") {
      if (running()) {
        try {
          process.kill(proc.pid, signal);
        } catch {
          /* already gone */
        }
      }
      return exited;
    },
  };
}
