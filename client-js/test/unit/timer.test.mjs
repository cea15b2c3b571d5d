// The reconnect backoff: every delay within [0, min(cap, base * 2^(n-1))],
// the cap really reached and never passed, and the jitter spreading a crowd
// of clients that lost their server at the same instant.

import assert from "node:assert/strict";
import { test } from "node:test";

import { Socket, Timer, jitteredBackoff } from "../../src/index.js";
import { createMockTransport, seededRandom } from "./helpers.mjs";

test("every delay lies in [0, min(cap, base * 2^(tries-1))] and the cap is reached", () => {
  const random = seededRandom(1);
  const backoff = jitteredBackoff(250, 10000, random);
  for (let tries = 1; tries <= 40; tries++) {
    const ceiling = Math.min(10000, 250 * 2 ** (tries - 1));
    let max = 0;
    for (let i = 0; i < 500; i++) {
      const delay = backoff(tries);
      assert.ok(Number.isInteger(delay) && delay >= 0 && delay <= ceiling, `try ${tries}: ${delay} ms`);
      max = Math.max(max, delay);
    }
    // 500 draws come close to the top of the window: the window really is
    // this wide, it is not stuck at the base.
    assert.ok(max > ceiling * 0.95, `try ${tries}: largest of 500 draws ${max} of ${ceiling}`);
  }
});

test("the extremes of the random source give 0 and just under the cap, even after many tries", () => {
  assert.equal(jitteredBackoff(250, 10000, () => 0)(1), 0);
  assert.equal(jitteredBackoff(250, 10000, () => 0.999999)(1), 249);
  assert.equal(jitteredBackoff(250, 10000, () => 0.999999)(3), 999);
  assert.equal(jitteredBackoff(250, 10000, () => 0.999999)(10000), 9999);
  assert.equal(jitteredBackoff(250, 10000, () => 0.5)(0), 125, "tries below 1 count as the first");
});

test("1000 sockets whose server went away do not come back in the same few milliseconds", (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const { MockWebSocket, instances } = createMockTransport();
  const random = seededRandom(42);
  const sockets = [];
  for (let i = 0; i < 1000; i++) {
    const socket = new Socket("ws://example.test/socket", { transport: MockWebSocket, random });
    socket.connect();
    instances.at(-1).serverOpen();
    sockets.push(socket);
  }
  // The server restarts: every connection drops at the same instant.
  for (const ws of instances.slice()) ws.serverClose(1006);

  const reconnectAt = [];
  for (let ms = 1; ms <= 250; ms++) {
    const before = instances.length;
    t.mock.timers.tick(1);
    for (let i = before; i < instances.length; i++) reconnectAt.push(ms);
  }
  assert.equal(reconnectAt.length, 1000, "every socket reconnected within the first window (250 ms)");
  // Uniform over 250 ms means about 20 per 5 ms; a deterministic or badly
  // jittered backoff would put hundreds in one bucket.
  const perBucket = new Map();
  for (const ms of reconnectAt) perBucket.set(Math.floor(ms / 5), (perBucket.get(Math.floor(ms / 5)) || 0) + 1);
  const busiest = Math.max(...perBucket.values());
  assert.ok(busiest <= 45, `at most 45 reconnects in any 5 ms, got ${busiest}`);
  assert.ok(perBucket.size >= 48, `reconnects spread over ${perBucket.size} of 50 buckets of 5 ms`);
  for (const socket of sockets) socket.disconnect();
});

test("a Timer backs off further per try, and reset() starts over", (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  let fired = 0;
  const delays = [];
  const timer = new Timer(
    () => fired++,
    (tries) => {
      delays.push(tries);
      return tries * 100;
    },
  );
  timer.scheduleTimeout();
  t.mock.timers.tick(99);
  assert.equal(fired, 0);
  t.mock.timers.tick(1);
  assert.equal(fired, 1);
  timer.scheduleTimeout();
  t.mock.timers.tick(199);
  assert.equal(fired, 1, "the second try waits 200 ms");
  t.mock.timers.tick(1);
  assert.equal(fired, 2);

  timer.scheduleTimeout();
  timer.reset();
  t.mock.timers.tick(10000);
  assert.equal(fired, 2, "reset() cancels the pending call");
  timer.scheduleTimeout();
  t.mock.timers.tick(100);
  assert.equal(fired, 3, "after reset() the first delay applies again");
  assert.deepEqual(delays, [1, 2, 3, 1]);
});

test("cancel() stops the pending call but keeps the count of tries", (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const tried = [];
  const timer = new Timer(() => {}, (tries) => {
    tried.push(tries);
    return 10;
  });
  timer.scheduleTimeout();
  t.mock.timers.tick(10);
  timer.scheduleTimeout();
  timer.cancel();
  assert.equal(timer.isScheduled(), false);
  timer.scheduleTimeout();
  assert.deepEqual(tried, [1, 2, 2]);
});
