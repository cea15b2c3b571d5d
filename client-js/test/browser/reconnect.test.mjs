// The server dies under two open pages and comes back on the same port.
// Both pages must say the connection is lost, then, without anyone touching
// them, drop the banner, be back in the room with the full online list (the
// status chosen before the outage included) and chat again both ways.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { startServer, stopAllServers } from "../../../tests/js/lib/server.mjs";
import {
  banner,
  closeAllBrowsers,
  joinChat,
  launchBrowser,
  screenshot,
  sendMessage,
  waitForMessage,
  waitForNotice,
  waitForPeople,
  WWW,
} from "./helpers.mjs";

/** How long the pages may take to come back once the server is up again:
 * the library's reconnection backoff is jittered and capped. */
const RECOVERY = 25000;

let server;
let browser;

before(async () => {
  [server, browser] = await Promise.all([startServer(["--static-dir", WWW]), launchBrowser()]);
});
after(closeAllBrowsers);
after(stopAllServers);

test("the pages reconnect by themselves after the server restarts", async () => {
  const ada = await joinChat(browser, server, { name: "Ada", room: "ops" });
  const bob = await joinChat(browser, server, { name: "Bob", room: "ops" });
  const pages = [ada.page, bob.page];
  const [a, b] = pages;
  await waitForPeople(a, { Ada: "online", Bob: "online" });
  await waitForPeople(b, { Ada: "online", Bob: "online" });
  await b.getByLabel("Your status").selectOption("busy");
  await waitForPeople(a, { Ada: "online", Bob: "busy" });
  await sendMessage(a, "before the outage");
  await waitForMessage(b, "before the outage");
  for (const page of pages) assert.equal(await banner(page).isVisible(), false);

  // The server dies (SIGKILL, by PID): both pages say so.
  const port = server.port;
  server.kill();
  await server.exited;
  for (const page of pages) {
    await banner(page).waitFor({ state: "visible", timeout: 5000 });
    assert.equal(await banner(page).textContent(), "Connection lost — reconnecting…");
  }
  await screenshot(a, "reconnect-ada-offline");

  // It comes back on the same port; nobody touches the pages.
  const restartedAt = Date.now();
  server = await startServer(["--listen", `127.0.0.1:${port}`, "--static-dir", WWW]);
  for (const page of pages) await banner(page).waitFor({ state: "hidden", timeout: RECOVERY });
  const recoveredIn = Date.now() - restartedAt;

  // Back in the room: the online list is complete again on both pages, the
  // status Bob chose before the outage included.
  await waitForPeople(a, { Ada: "online", Bob: "busy" }, { timeout: RECOVERY });
  await waitForPeople(b, { Ada: "online", Bob: "busy" }, { timeout: RECOVERY });
  for (const page of pages) await waitForNotice(page, "Reconnected.");
  // Nothing is left of the dead server's presence: one connection each.
  for (const page of pages) {
    assert.equal(await page.locator("#people-list .person-status[title]").count(), 0);
  }

  // Messages flow both ways again.
  await sendMessage(a, "after the outage, from Ada");
  assert.equal((await waitForMessage(b, "after the outage, from Ada")).sender, "Ada");
  await sendMessage(b, "after the outage, from Bob");
  assert.equal((await waitForMessage(a, "after the outage, from Bob")).sender, "Bob");
  // What was said before the outage is still on the page.
  await waitForMessage(b, "before the outage");

  await screenshot(a, "reconnect-ada");
  await screenshot(b, "reconnect-bob");
  assert.deepEqual([...a.errors, ...b.errors].map(String), []);
  console.log(`# pages back ${recoveredIn} ms after the restart`);
});
