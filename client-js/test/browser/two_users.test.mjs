// Two people chatting in one room, each in their own browser (two browser
// contexts: separate profiles) against the real parley serving the page.
// Everything is checked the way the users would see it: the online list
// with statuses, each other's messages, the typing indicator, join and
// leave notices, and a second tab of one user counting as one person.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { startServer, stopAllServers } from "../../../tests/js/lib/server.mjs";
import {
  closeAllBrowsers,
  joinChat,
  launchBrowser,
  message,
  screenshot,
  sendMessage,
  WAIT,
  waitForMessage,
  waitForNotice,
  waitForPeople,
  watchErrors,
  WWW,
} from "./helpers.mjs";

let server;
let browser;

before(async () => {
  [server, browser] = await Promise.all([startServer(["--static-dir", WWW]), launchBrowser()]);
});
after(closeAllBrowsers);
after(stopAllServers);

test("two people see each other, chat, type, change status and leave", async () => {
  const ada = await joinChat(browser, server, { name: "Ada", room: "lobby" });
  const bob = await joinChat(browser, server, { name: "Bob", room: "lobby" });
  const a = ada.page;
  const b = bob.page;

  // Who is online: both, on both pages, with their status.
  await waitForPeople(a, { Ada: "online", Bob: "online" });
  await waitForPeople(b, { Ada: "online", Bob: "online" });
  assert.equal(await a.locator("#room-title").textContent(), "#lobby");
  // Ada was there first: she is told that Bob came in.
  await waitForNotice(a, "Bob joined");

  // Messages both ways, with the sender's name; one's own are marked.
  await sendMessage(a, "Hello Bob!");
  assert.deepEqual(
    { ...(await waitForMessage(b, "Hello Bob!")), time: "" },
    { sender: "Ada", text: "Hello Bob!", own: false, time: "" },
  );
  const own = await waitForMessage(a, "Hello Bob!");
  assert.equal(own.own, true);
  assert.equal(own.sender, "Ada (you)");
  assert.match(own.time, /\d{1,2}.\d{2}/);
  await sendMessage(b, "Hi Ada, how are you?");
  assert.equal((await waitForMessage(a, "Hi Ada, how are you?")).sender, "Bob");
  // The box is emptied after sending.
  assert.equal(await a.getByLabel("Message", { exact: true }).inputValue(), "");

  // Markup in a message is shown as text, never interpreted.
  const markup = '<img src="x" id="injected"> <b>bold</b>';
  await sendMessage(a, markup);
  assert.equal((await waitForMessage(b, markup)).text, markup);
  assert.equal(await b.locator("#messages img, #messages b").count(), 0);

  // Typing: Bob sees that Ada is typing; Ada does not see herself.
  await a.getByLabel("Message", { exact: true }).pressSequentially("I am fi");
  const typingB = b.locator("#typing");
  await typingB.filter({ hasText: "Ada is typing…" }).waitFor({ timeout: WAIT });
  assert.equal(await a.locator("#typing").textContent(), "");
  // Ada stops typing: the indicator goes away by itself after a few seconds.
  const stoppedAt = Date.now();
  await b.waitForFunction(() => document.getElementById("typing").textContent === "", null, {
    timeout: 8000,
    polling: 100,
  });
  const expiredAfter = Date.now() - stoppedAt;
  assert.ok(expiredAfter >= 2500, `typing expired after only ${expiredAfter} ms`);
  // Sending ends typing at once.
  await a.getByLabel("Message", { exact: true }).pressSequentially("ne");
  await typingB.filter({ hasText: "Ada is typing…" }).waitFor({ timeout: WAIT });
  await a.getByLabel("Message", { exact: true }).press("Enter");
  await waitForMessage(b, "I am fine");
  assert.equal(await typingB.textContent(), "");

  // Ada goes away; Bob sees it.
  await a.getByLabel("Your status").selectOption("away");
  await waitForPeople(b, { Ada: "away", Bob: "online" });
  await waitForPeople(a, { Ada: "away", Bob: "online" });

  // A second tab of Ada (same profile): it remembers her name and joins the
  // room named in the address by itself; she is still one person.
  const a2 = watchErrors(await ada.context.newPage());
  await a2.goto(`${server.httpBase}/#lobby`);
  await waitForPeople(a2, { Ada: "away", Bob: "online" });
  assert.equal(await a2.getByLabel("Your status").inputValue(), "away");
  await waitForPeople(b, { Ada: "away", Bob: "online" });
  // ...and the second tab gets the conversation from now on.
  await sendMessage(b, "Two tabs?");
  await waitForMessage(a2, "Two tabs?");
  await waitForMessage(a, "Two tabs?");
  // A status chosen in one tab is taken up by her other tab.
  await a2.getByLabel("Your status").selectOption("busy");
  await a.waitForFunction(() => document.getElementById("status-select").value === "busy", null, {
    timeout: WAIT,
  });
  await waitForPeople(b, { Ada: "busy", Bob: "online" });
  // Closing one of her tabs does not make her leave.
  await a2.close();
  await b.waitForTimeout(300);
  await waitForPeople(b, { Ada: "busy", Bob: "online" });
  assert.equal(await message(b, "Two tabs?").count(), 1);
  assert.equal(await b.locator("#messages .notice", { hasText: "Ada" }).count(), 0);

  await screenshot(a, "two_users-ada");
  await screenshot(b, "two_users-bob");

  // Bob closes his page: he disappears from Ada's list, with a notice.
  await bob.context.close();
  await waitForPeople(a, { Ada: "busy" });
  await waitForNotice(a, "Bob left");
  await screenshot(a, "two_users-ada-after-bob-left");

  assert.deepEqual([...a.errors, ...b.errors, ...a2.errors].map(String), []);
  await ada.context.close();
});

test("leaving a room and joining another one", async () => {
  const { context, page } = await joinChat(browser, server, { name: "Cy", room: "first" });
  const dee = await joinChat(browser, server, { name: "Dee", room: "first" });
  assert.match(page.url(), /\?room=first$/);
  await sendMessage(page, "in the first room");
  await waitForMessage(page, "in the first room");
  await waitForMessage(dee.page, "in the first room");

  // Leave: back to the welcome form, the name remembered; the others see
  // Cy leave.
  await page.getByRole("button", { name: "Leave" }).click();
  await page.getByLabel("Your name").waitFor({ state: "visible" });
  assert.equal(await page.getByLabel("Your name").inputValue(), "Cy");
  assert.doesNotMatch(page.url(), /room=/);
  await waitForPeople(dee.page, { Dee: "online" });
  await waitForNotice(dee.page, "Cy left");

  // Another room: a fresh conversation, and the address names it.
  await page.getByLabel("Room").fill("Second Room");
  await page.getByRole("button", { name: "Join room" }).click();
  await waitForPeople(page, { Cy: "online" });
  assert.equal(await page.locator("#room-title").textContent(), "#second-room");
  assert.match(page.url(), /\?room=second-room$/);
  assert.equal(await message(page, "in the first room").count(), 0);
  // The connection left behind does not come back into the first room.
  await dee.page.waitForTimeout(500);
  await waitForPeople(dee.page, { Dee: "online" });

  // With the name remembered, a reload goes straight back into the room
  // named in the address.
  await page.reload();
  await waitForPeople(page, { Cy: "online" });
  assert.equal(await page.locator("#room-title").textContent(), "#second-room");
  assert.deepEqual([...page.errors, ...dee.page.errors].map(String), []);
  await Promise.all([context.close(), dee.context.close()]);
});
