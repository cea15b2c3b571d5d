// Helpers for the integration tests: start the real parley binary on an
// ephemeral port (plaintext, or TLS with a certificate made by makeTestCert),
// read its /metrics and /healthz, and drive it with raw WebSocket clients
// (the `ws` package) that record every frame.
//
// Every server started here is remembered; a test ends the servers it
// started with `end()` (or a test file calls `after(stopAllServers)`), and the
// process exit hook below is a last resort, so that no parley process
// outlives the test file that started it.
//
// Under the sanitizers (PARLEY_SANITIZED=1, set by ctest for a build with
// PARLEY_ASAN or PARLEY_UBSAN), ending a server as cleanup is a SIGTERM, so
// that it exits through its orderly stop and LeakSanitizer checks its heap
// at exit; a server that does not then exit 0 fails the test, and so does
// one whose stderr holds a sanitizer report, however it ended (a crash
// simulated with kill() included). Without the sanitizers cleanup stays a
// SIGKILL, as fast as ever.

import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { decode as mpDecode, encode as mpEncode } from "@msgpack/msgpack";
import WebSocket from "ws";

const here = path.dirname(fileURLToPath(import.meta.url));

/** Path of the parley binary: $PARLEY_BIN, else ../../../build/server/parley
 * relative to this helper (i.e. /work/main/build/server/parley). */
export const PARLEY_BIN =
  process.env.PARLEY_BIN || path.resolve(here, "..", "..", "..", "build", "server", "parley");

/** True when the binaries under test are built with AddressSanitizer and
 * UndefinedBehaviorSanitizer. */
export const SANITIZED = Boolean(process.env.PARLEY_SANITIZED);

const REPORT_START = /ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|SUMMARY: /;

/** The sanitizer report in a process' output `text` (from the line where it
 * starts, at most 20 lines of it), or null if there is none. */
export function sanitizerReport(text) {
  const m = REPORT_START.exec(text);
  if (!m) return null;
  const start = text.lastIndexOf("\n", m.index) + 1;
  return text.slice(start).split("\n").slice(0, 20).join("\n");
}

/** Throws if `text`, the output of the process `what`, holds a sanitizer
 * report. */
export function assertNoSanitizerReport(text, what) {
  const report = sanitizerReport(text);
  if (report) throw new Error(`${what} printed a sanitizer report:\n${report}`);
}

const unchecked = new Set(); // servers whose end has not been checked yet

function killPid(pid) {
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    /* already gone */
  }
}

process.on("exit", () => {
  for (const server of unchecked) {
    if (server.running()) killPid(server.pid);
    else if (sanitizerReport(server.stderr())) {
      console.error(`parley (pid ${server.pid}) printed a sanitizer report:\n${sanitizerReport(server.stderr())}`);
      process.exitCode = 1;
    }
  }
});

/** Ends (server.end()) every server this process started and has not ended
 * yet, those that already exited included; throws if any of them fails its
 * check. For after() hooks. */
export async function stopAllServers() {
  const results = await Promise.allSettled([...unchecked].map((server) => server.end()));
  const failed = results.filter((r) => r.status === "rejected").map((r) => r.reason.message);
  if (failed.length) throw new Error(failed.join("\n\n"));
}

/** Resolves after ms milliseconds. */
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Rejects with `what timed out` after ms, unless promise settles first. */
export function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Polls fn() until it returns a truthy value (which is returned), or throws
 * after timeoutMs. */
export async function waitFor(fn, timeoutMs, what, intervalMs = 25) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${what}`);
    await sleep(intervalMs);
  }
}

/** A plain HTTP GET that sends `pathname` exactly as given (no URL
 * normalisation, unlike fetch). Resolves {status, headers, body}. With `ca`
 * (PEM), the GET is HTTPS and trusts that certificate. */
export function httpGet(port, pathname, { timeoutMs = 5000, ca = null } = {}) {
  return new Promise((resolve, reject) => {
    const req = (ca ? https : http).request(
      { host: "127.0.0.1", port, path: pathname, method: "GET", agent: false, ...(ca ? { ca } : {}) },
      (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () =>
          resolve({
            status: res.statusCode,
            headers: res.headers,
            body: Buffer.concat(chunks).toString("utf8"),
          }),
        );
        res.on("error", reject);
      },
    );
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`GET ${pathname} timed out`)));
    req.on("error", reject);
    req.end();
  });
}

/** Send and receive queue sizes (bytes) of the TCP socket 127.0.0.1:localPort
 * <-> 127.0.0.1:remotePort, from /proc/net/tcp; null if there is none. */
export function tcpQueues(localPort, remotePort) {
  const hex = (p) => p.toString(16).toUpperCase().padStart(4, "0");
  const want = [`0100007F:${hex(localPort)}`, `0100007F:${hex(remotePort)}`];
  for (const line of readFileSync("/proc/net/tcp", "utf8").split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[1] === want[0] && f[2] === want[1]) {
      const [tx, rx] = f[4].split(":").map((h) => parseInt(h, 16));
      return { tx, rx };
    }
  }
  return null;
}

/** Parses Prometheus text into a Map of "name" or "name{labels}" -> number. */
export function parseMetrics(text) {
  const m = new Map();
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?)\s+(\S+)$/.exec(line);
    if (!match) throw new Error(`unparseable metrics line: ${JSON.stringify(line)}`);
    m.set(match[1], Number(match[2]));
  }
  return m;
}

/** Flags that lift the per-socket rate limits (docs/limits.md), for tests
 * whose clients push at machine speed: far faster than the defaults allow
 * any one socket, which is the point of them. */
export const NO_RATE_LIMITS = ["--msg-rate", "0", "--join-rate", "0"];

/** The metrics key of parley_errors_total for one kind. */
export const errKey = (kind) => `parley_errors_total{kind="${kind}"}`;

/**
 * Makes a self-signed certificate for 127.0.0.1 (subjectAltName IP:127.0.0.1,
 * valid for 2 days, key type `keyType`: "ec" (P-256) or "rsa") with the
 * openssl CLI, in a new temporary directory that is removed when this
 * process exits. Returns {dir, cert, key} (file paths) and ca: the
 * certificate's PEM text, which clients pass as their only trusted CA.
 */
export function makeTestCert({ keyType = "ec" } = {}) {
  const dir = mkdtempSync(path.join(os.tmpdir(), "parley-tls-"));
  tempDirs.push(dir);
  const cert = path.join(dir, "cert.pem");
  const key = path.join(dir, "key.pem");
  const keyArgs = keyType === "rsa" ? ["-newkey", "rsa:2048"] : ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"];
  execFileSync(
    "openssl",
    ["req", "-x509", ...keyArgs, "-nodes", "-keyout", key, "-out", cert, "-days", "2",
     "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  return { dir, cert, key, ca: readFileSync(cert, "utf8") };
}

const tempDirs = [];
process.on("exit", () => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

/** A WebSocket class (the `ws` package) whose connections trust only `ca`:
 * the transport to give the phoenix client for a wss:// server. */
export function trustingWebSocket(ca) {
  return class extends WebSocket {
    constructor(url, protocols, opts = {}) {
      super(url, protocols, { ...opts, ca });
    }
  };
}

/**
 * Starts parley with `args` (on 127.0.0.1:0 unless args has --listen) and
 * waits for its `event=listening` line. With `tls` (from makeTestCert) it
 * serves TLS with that certificate, and the handle's URLs, HTTP helpers and
 * connectRaw() use wss:// and https:// trusting it. Returns a handle:
 *   port, url (ws[s]://127.0.0.1:PORT/socket/websocket), httpBase, pid, proc,
 *   tls           true when the server said tls=on; ca: the PEM to trust,
 *   stderr()      all stderr text so far,
 *   metrics()     GET /metrics parsed into a Map,
 *   healthz()     GET /healthz parsed as JSON ({status, body} in .http),
 *   rssKb()       VmRSS from /proc/PID/status, in kB,
 *   stop(signal)  sends SIGTERM (or signal) and resolves {code, signal},
 *   exited        a promise of {code, signal},
 *   kill()        SIGKILL by PID: a crash, for tests of what follows one,
 *   end()         cleanup: ends the server if it still runs (see the top of
 *                 this file) and throws if it printed a sanitizer report or,
 *                 ended by a SIGTERM here, did not exit 0. Once it resolves,
 *                 all of the server's stderr has been read.
 */
export async function startServer(args = [], { timeoutMs = 10000, env = {}, tls = null } = {}) {
  const fullArgs = args.includes("--listen") ? [...args] : ["--listen", "127.0.0.1:0", ...args];
  if (tls) fullArgs.push("--tls-cert", tls.cert, "--tls-key", tls.key);
  const proc = spawn(PARLEY_BIN, fullArgs, {
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, ...env },
  });
  let stderr = "";
  let spawnError = null;
  proc.on("error", (e) => {
    spawnError = e;
  });
  const exited = new Promise((resolve) => proc.once("exit", (code, signal) => resolve({ code, signal })));
  // "close" comes after "exit", once the stderr pipe is drained.
  const closed = new Promise((resolve) => proc.once("close", resolve));
  proc.stderr.setEncoding("utf8");
  const listening = await withTimeout(
    new Promise((resolve, reject) => {
      proc.stderr.on("data", (chunk) => {
        stderr += chunk;
        const m = /event=listening\b[^\n]*\n/.exec(stderr);
        if (m) resolve(m[0]);
      });
      exited.then(({ code, signal }) =>
        reject(
          new Error(
            `parley exited before listening (code=${code} signal=${signal} ` +
              `error=${spawnError}): ${stderr}`,
          ),
        ),
      );
    }),
    timeoutMs,
    `parley ${fullArgs.join(" ")} to print its listening line`,
  ).catch((e) => {
    if (proc.pid) killPid(proc.pid);
    throw e;
  });
  const port = Number(/\bport=(\d+)/.exec(listening)[1]);
  const tlsOn = /\btls=on\b/.test(listening);
  const ca = tlsOn ? tls?.ca ?? null : null;
  const ws = tlsOn ? "wss" : "ws";

  const server = {
    port,
    pid: proc.pid,
    proc,
    exited,
    tls: tlsOn,
    ca,
    url: `${ws}://127.0.0.1:${port}/socket/websocket`,
    socketBase: `${ws}://127.0.0.1:${port}/socket`,
    httpBase: `${tlsOn ? "https" : "http"}://127.0.0.1:${port}`,
    stderr: () => stderr,
    /** GET pathname over this server's scheme (HTTPS trusting ca under TLS). */
    get: (pathname, opts = {}) => httpGet(port, pathname, { ca, ...opts }),
    async metrics() {
      const res = await server.get("/metrics");
      if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`);
      return parseMetrics(res.body);
    },
    async healthz() {
      const res = await server.get("/healthz");
      return { http: res.status, ...JSON.parse(res.body) };
    },
    rssKb() {
      const status = readFileSync(`/proc/${proc.pid}/status`, "utf8");
      const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
      if (!m) throw new Error("no VmRSS line");
      return Number(m[1]);
    },
    running: () => proc.exitCode === null && proc.signalCode === null,
    async stop(signal = "SIGTERM", { timeoutMs: t = 15000 } = {}) {
      if (server.running()) proc.kill(signal);
      return withTimeout(exited, t, `parley to exit after ${signal}`);
    },
    kill() {
      if (server.running()) killPid(proc.pid);
      return exited;
    },
    async end({ timeoutMs: t = 30000 } = {}) {
      unchecked.delete(server);
      let ended = null;
      if (server.running() && SANITIZED) {
        // SIGCONT: a stopped server takes the SIGTERM once it runs again.
        proc.kill("SIGTERM");
        proc.kill("SIGCONT");
        ended = await withTimeout(exited, t, `parley (pid ${proc.pid}) to exit after SIGTERM`).catch((e) => {
          killPid(proc.pid);
          throw new Error(`${e.message}; stderr:\n${stderr.slice(-4000)}`);
        });
      } else if (server.running()) {
        killPid(proc.pid);
      }
      await closed;
      assertNoSanitizerReport(stderr, `parley (pid ${proc.pid})`);
      if (ended && (ended.code !== 0 || ended.signal !== null)) {
        throw new Error(
          `parley (pid ${proc.pid}) ended by SIGTERM exited with code=${ended.code} signal=${ended.signal}; ` +
            `stderr:\n${stderr.slice(-4000)}`,
        );
      }
    },
  };
  unchecked.add(server);
  return server;
}

// ---- raw WebSocket client --------------------------------------------------

/**
 * A WebSocket client that records every message it receives and can wait for
 * one matching a predicate. `format` is "v2" (JSON arrays, vsn=2.0.0), "v1"
 * (JSON objects, no vsn) or "msgpack" (vsn=2.0.0&serializer=msgpack); `ca`
 * (PEM) is the one certificate a wss:// connection trusts. Each recorded
 * message is {join_ref, ref, topic, event, payload, raw, binary}.
 * `localAddress` (e.g. "127.0.0.2") is the address it connects from.
 */
export class RawClient {
  constructor(url, { format = "v2", ca = null, localAddress = null } = {}) {
    this.format = format;
    this.url = url;
    this.messages = [];
    this.consumed = new Set();
    this.waiters = [];
    this.refCounter = 0;
    this.closeInfo = null;
    this.ws = new WebSocket(url, {
      perMessageDeflate: false,
      ...(ca ? { ca } : {}),
      ...(localAddress ? { localAddress } : {}),
    });
    this.ws.binaryType = "nodebuffer";
    this.closedPromise = new Promise((resolve) => {
      this.ws.on("close", (code, reason) => {
        this.closeInfo = { code, reason: reason.toString("utf8") };
        for (const w of this.waiters) w.reject(new Error(`socket closed ${code} ${this.closeInfo.reason} while waiting for ${w.what}`));
        this.waiters = [];
        resolve(this.closeInfo);
      });
    });
    this.errors = [];
    this.ws.on("error", (e) => this.errors.push(e));
    this.ws.on("message", (data, isBinary) => this._onMessage(data, isBinary));
  }

  /** Opens a client; rejects if the connection or upgrade fails. */
  static async connect(url, opts = {}) {
    const c = new RawClient(url, opts);
    await withTimeout(
      new Promise((resolve, reject) => {
        c.ws.once("open", resolve);
        c.ws.once("error", reject);
        c.ws.once("unexpected-response", (_req, res) =>
          reject(new Error(`unexpected response ${res.statusCode}`)),
        );
      }),
      opts.timeoutMs ?? 5000,
      `connect ${url}`,
    );
    return c;
  }

  _decode(data, isBinary) {
    if (this.format === "msgpack" && isBinary) {
      const arr = mpDecode(data);
      const [join_ref, ref, topic, event, payload] = arr;
      return { join_ref, ref, topic, event, payload, decoded: arr };
    }
    const text = data.toString("utf8");
    const v = JSON.parse(text);
    if (Array.isArray(v)) {
      const [join_ref, ref, topic, event, payload] = v;
      return { join_ref, ref, topic, event, payload, decoded: v };
    }
    return { join_ref: v.join_ref, ref: v.ref, topic: v.topic, event: v.event, payload: v.payload, decoded: v };
  }

  _onMessage(data, isBinary) {
    let msg;
    try {
      msg = { ...this._decode(data, isBinary), raw: data, binary: isBinary };
    } catch (e) {
      msg = { undecodable: String(e), raw: data, binary: isBinary };
    }
    const index = this.messages.length;
    this.messages.push(msg);
    for (let i = 0; i < this.waiters.length; i++) {
      const w = this.waiters[i];
      if (w.predicate(msg)) {
        this.consumed.add(index);
        this.waiters.splice(i, 1);
        w.resolve(msg);
        return;
      }
    }
  }

  /** Resolves with the earliest not yet consumed message matching predicate
   * (already received or still to come), marking it consumed. */
  next(predicate = () => true, timeoutMs = 5000, what = "a message") {
    for (let i = 0; i < this.messages.length; i++) {
      if (!this.consumed.has(i) && predicate(this.messages[i])) {
        this.consumed.add(i);
        return Promise.resolve(this.messages[i]);
      }
    }
    if (this.closeInfo) {
      return Promise.reject(new Error(`socket already closed ${this.closeInfo.code} while waiting for ${what}`));
    }
    return new Promise((resolve, reject) => {
      const w = { predicate, resolve, reject, what };
      this.waiters.push(w);
      const timer = setTimeout(() => {
        const i = this.waiters.indexOf(w);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      const done = (f) => (v) => {
        clearTimeout(timer);
        f(v);
      };
      w.resolve = done(resolve);
      w.reject = done(reject);
    });
  }

  /** Resolves {code, reason} when the socket closes (rejects after timeoutMs). */
  closed(timeoutMs = 5000) {
    return withTimeout(this.closedPromise, timeoutMs, `close of ${this.url}`);
  }

  makeRef() {
    this.refCounter += 1;
    return String(this.refCounter);
  }

  /** Encodes and sends one message in this client's format. */
  send(join_ref, ref, topic, event, payload) {
    if (this.format === "msgpack") {
      this.ws.send(mpEncode([join_ref, ref, topic, event, payload]), { binary: true });
    } else if (this.format === "v1") {
      const obj = { topic, event, payload, ref };
      if (join_ref !== undefined) obj.join_ref = join_ref;
      this.ws.send(JSON.stringify(obj));
    } else {
      this.ws.send(JSON.stringify([join_ref, ref, topic, event, payload]));
    }
  }

  /** Sends exactly these bytes / this text (opts go to ws.send). */
  sendRaw(data, opts = {}) {
    return new Promise((resolve, reject) =>
      this.ws.send(data, opts, (err) => (err ? reject(err) : resolve())),
    );
  }

  /** Waits for the phx_reply to `ref` on `topic`. */
  reply(topic, ref, timeoutMs = 5000) {
    return this.next(
      (m) => m.event === "phx_reply" && m.ref === ref && m.topic === topic,
      timeoutMs,
      `phx_reply ref=${ref} on ${topic}`,
    );
  }

  /** Sends event on topic with a fresh ref and returns {ref, reply}. */
  async push(topic, event, payload, joinRef = null, timeoutMs = 5000) {
    const ref = this.makeRef();
    this.send(joinRef, ref, topic, event, payload);
    const reply = await this.reply(topic, ref, timeoutMs);
    return { ref, reply };
  }

  /** Joins topic; returns {joinRef, reply} (the reply is not checked). */
  async join(topic, payload = {}, timeoutMs = 5000) {
    const joinRef = this.makeRef();
    this.send(joinRef, joinRef, topic, "phx_join", payload);
    const reply = await this.reply(topic, joinRef, timeoutMs);
    return { joinRef, reply };
  }

  /** A heartbeat round trip. Since the server handles one socket's messages
   * in order, its reply also proves every earlier message was processed. */
  async heartbeat(timeoutMs = 5000) {
    const ref = this.makeRef();
    this.send(null, ref, "phoenix", "heartbeat", {});
    return this.reply("phoenix", ref, timeoutMs);
  }

  /** Waits for the broadcast of `event` on topic whose payload satisfies pred. */
  broadcast(topic, event, pred = () => true, timeoutMs = 5000) {
    return this.next(
      (m) => m.topic === topic && m.event === event && m.ref === null && pred(m.payload),
      timeoutMs,
      `broadcast ${event} on ${topic}`,
    );
  }

  /** Messages received so far that satisfy pred (consumed or not). */
  received(pred = () => true) {
    return this.messages.filter(pred);
  }

  get isOpen() {
    return this.ws.readyState === WebSocket.OPEN;
  }

  close() {
    if (this.ws.readyState === WebSocket.CONNECTING || this.ws.readyState === WebSocket.OPEN) {
      this.ws.close();
    }
  }

  /** Tears the TCP connection down immediately. */
  terminate() {
    this.ws.terminate();
  }
}

/** What the upgrade of `url` got: 101 when it opened (the socket is then
 * closed at once), else {status, body, headers} of the HTTP refusal.
 * `localAddress` is the address to connect from. */
export async function upgradeStatus(url, { headers = {}, protocols, localAddress, timeoutMs = 5000 } = {}) {
  return withTimeout(
    new Promise((resolve, reject) => {
      const ws = new WebSocket(url, protocols, { headers, perMessageDeflate: false, ...(localAddress ? { localAddress } : {}) });
      ws.once("open", () => {
        ws.terminate();
        resolve(101);
      });
      ws.once("unexpected-response", (_req, res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (d) => (body += d));
        res.on("end", () => resolve({ status: res.statusCode, body, headers: res.headers }));
        ws.on("error", () => {});
      });
      ws.once("error", (e) => reject(e));
    }),
    timeoutMs,
    `upgrade of ${url}`,
  );
}

/** URL query for a raw client format. */
export function wsUrl(server, format = "v2", extra = "") {
  const q =
    format === "v1"
      ? ""
      : format === "msgpack"
        ? "?vsn=2.0.0&serializer=msgpack"
        : "?vsn=2.0.0";
  const sep = q ? "&" : "?";
  return `${server.url}${q}${extra ? sep + extra : ""}`;
}

/** Connects a raw client of `format` to server (over TLS if it serves TLS). */
/** A masked client text frame (RFC 6455, 5.3) carrying `text`, as a client
 * on a bare socket writes it. */
export function maskedTextFrame(text) {
  const payload = Buffer.from(text);
  const mask = Buffer.from([7, 1, 3, 9]);
  const head = payload.length < 126
    ? Buffer.from([0x81, 0x80 | payload.length])
    : Buffer.from([0x81, 0x80 | 126, payload.length >> 8, payload.length & 0xff]);
  return Buffer.concat([head, mask, Buffer.from(payload.map((b, i) => b ^ mask[i % 4]))]);
}

/** A WebSocket client on a bare TCP socket (V2 JSON), for what the ws
 * library will not do: several frames in one TCP write, writing on after a
 * close frame. `ready` resolves once the 101 head is in; the server's
 * frames, {opcode, payload}, collect in `frames` (onFrame is called for
 * each); `closed` resolves with them when the socket ends. */
export function rawWebSocket(server) {
  const sock = net.connect(server.port, "127.0.0.1", () =>
    sock.write(
      "GET /socket/websocket?vsn=2.0.0 HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n" +
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    ),
  );
  let upgraded = false;
  let onReady;
  const ws = {
    sock,
    frames: [],
    onFrame: () => {},
    ready: new Promise((resolve) => (onReady = resolve)),
    closed: new Promise((resolve) => sock.on("close", () => resolve(ws.frames))),
  };
  let buf = Buffer.alloc(0);
  sock.on("data", (d) => {
    buf = Buffer.concat([buf, d]);
    if (!upgraded) {
      const end = buf.indexOf("\r\n\r\n");
      if (end < 0) return;
      upgraded = true;
      buf = buf.subarray(end + 4);
      onReady();
    }
    for (;;) { // the server's frames: unmasked, under 64 KiB
      if (buf.length < 2) return;
      let len = buf[1] & 0x7f;
      let hdr = 2;
      if (len === 126) {
        if (buf.length < 4) return;
        len = buf.readUInt16BE(2);
        hdr = 4;
      }
      if (buf.length < hdr + len) return;
      const f = { opcode: buf[0] & 0x0f, payload: buf.subarray(hdr, hdr + len) };
      buf = buf.subarray(hdr + len);
      ws.frames.push(f);
      ws.onFrame(f);
    }
  });
  sock.on("error", () => {}); // a reset ends it like a close
  return ws;
}

export function connectRaw(server, format = "v2", opts = {}) {
  return RawClient.connect(wsUrl(server, format, opts.query), { ca: server.ca, ...opts, format });
}

export { WebSocket, mpEncode, mpDecode };
