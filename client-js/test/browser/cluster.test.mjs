// Two pages on two parley nodes that form a cluster through one real
// redis-server: each page sees the other person online, with their status,
// and each other's messages, as if they were on one server.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { startRedis, stopAllRedis } from "../../../tests/js/lib/redis.mjs";
import { startServer, stopAllServers } from "../../../tests/js/lib/server.mjs";
import {
  closeAllBrowsers,
  joinChat,
  launchBrowser,
  screenshot,
  sendMessage,
  waitForMessage,
  waitForPeople,
  waitForNotice,
  WWW,
} from "./helpers.mjs";

/** Presence crosses nodes in batched deltas; allow for cluster formation. */
const CROSS_NODE = 10000;

let nodes;
let browser;

before(async () => {
  const redis = await startRedis();
  const args = ["--redis", redis.addr, "--static-dir", WWW];
  [nodes, browser] = await Promise.all([
    Promise.all([startServer(args), startServer(args)]),
    launchBrowser(),
  ]);
});
after(closeAllBrowsers);
after(stopAllServers);
after(stopAllRedis);

test("pages on two nodes of a cluster chat and see each other", async () => {
  const [node1, node2] = nodes;
  assert.notEqual(node1.port, node2.port);
  const { page: a } = await joinChat(browser, node1, { name: "Ada", room: "cluster" });
  const { page: b } = await joinChat(browser, node2, { name: "Bob", room: "cluster" });

  // Presence across nodes, both ways, status changes included.
  await waitForPeople(a, { Ada: "online", Bob: "online" }, { timeout: CROSS_NODE });
  await waitForPeople(b, { Ada: "online", Bob: "online" }, { timeout: CROSS_NODE });
  await waitForNotice(a, "Bob joined");
  await a.getByLabel("Your status").selectOption("away");
  await waitForPeople(b, { Ada: "away", Bob: "online" }, { timeout: CROSS_NODE });

  // Messages across nodes, both ways.
  await sendMessage(a, "Hello from node 1");
  assert.equal((await waitForMessage(b, "Hello from node 1", { timeout: CROSS_NODE })).sender, "Ada");
  await sendMessage(b, "Hello from node 2");
  assert.equal((await waitForMessage(a, "Hello from node 2", { timeout: CROSS_NODE })).sender, "Bob");

  // Typing notices are broadcasts too: they cross as well.
  await b.getByLabel("Message", { exact: true }).pressSequentially("hm");
  await a.locator("#typing").filter({ hasText: "Bob is typing…" }).waitFor({ timeout: CROSS_NODE });

  await screenshot(a, "cluster-ada-node1");
  await screenshot(b, "cluster-bob-node2");
  assert.deepEqual([...a.errors, ...b.errors].map(String), []);
});
