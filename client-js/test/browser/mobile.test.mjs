// The page on a phone-sized screen (375×667, touch): nothing scrolls
// sideways, the send box and its button are on screen and work by tapping,
// and the online list opens from its button in the top bar.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { startServer, stopAllServers } from "../../../tests/js/lib/server.mjs";
import {
  closeAllBrowsers,
  joinChat,
  launchBrowser,
  screenshot,
  waitForMessage,
  waitForPeople,
  WWW,
} from "./helpers.mjs";

const PHONE = {
  viewport: { width: 375, height: 667 },
  deviceScaleFactor: 2,
  isMobile: true,
  hasTouch: true,
};

let server;
let browser;

before(async () => {
  [server, browser] = await Promise.all([startServer(["--static-dir", WWW]), launchBrowser()]);
});
after(closeAllBrowsers);
after(stopAllServers);

/** Asserts that the page does not scroll horizontally. */
async function assertNoSidewaysScroll(page, when) {
  const { scrollWidth, innerWidth } = await page.evaluate(() => ({
    scrollWidth: document.scrollingElement.scrollWidth,
    innerWidth: window.innerWidth,
  }));
  assert.ok(scrollWidth <= innerWidth, `${when}: scrollWidth ${scrollWidth} > innerWidth ${innerWidth}`);
}

/** Asserts that locator is visible and lies entirely inside the viewport. */
async function assertOnScreen(page, locator, what) {
  assert.ok(await locator.isVisible(), `${what} is visible`);
  const box = await locator.boundingBox();
  const { width, height } = page.viewportSize();
  assert.ok(
    box.x >= 0 && box.y >= 0 && box.x + box.width <= width && box.y + box.height <= height,
    `${what} lies inside the ${width}×${height} viewport: ${JSON.stringify(box)}`,
  );
}

test("a phone-sized screen: no sideways scrolling, the send box works", async () => {
  // The welcome form fits as well.
  const context = await browser.newContext(PHONE);
  const welcome = await context.newPage();
  await welcome.goto(`${server.httpBase}/?room=phones`);
  await assertNoSidewaysScroll(welcome, "welcome form");
  await screenshot(welcome, "mobile-welcome");
  await context.close();

  const { page } = await joinChat(browser, server, {
    name: "Grace",
    room: "phones",
    contextOptions: PHONE,
  });
  await assertNoSidewaysScroll(page, "chat");

  const box = page.getByLabel("Message", { exact: true });
  const send = page.getByRole("button", { name: "Send" });
  await assertOnScreen(page, box, "the message box");
  await assertOnScreen(page, send, "the send button");

  // Tap the box, type, tap Send: the message appears, as one's own.
  await box.tap();
  await page.keyboard.type("Sent from my phone");
  await send.tap();
  const shown = await waitForMessage(page, "Sent from my phone");
  assert.equal(shown.own, true);
  assert.equal(await box.inputValue(), "");

  // A long word without spaces and a long text wrap instead of widening
  // the page, and the send box stays on screen.
  await box.tap();
  await page.keyboard.type("x".repeat(300));
  await send.tap();
  await waitForMessage(page, "x".repeat(300));
  await box.fill("A longer message that goes on. ".repeat(12).trim());
  await send.tap();
  await waitForMessage(page, "A longer message that goes on. ".repeat(12).trim());
  await assertNoSidewaysScroll(page, "after long messages");
  await assertOnScreen(page, box, "the message box after long messages");
  await assertOnScreen(page, send, "the send button after long messages");
  await screenshot(page, "mobile-chat");

  // The online list is folded away on a phone, and opens from the top bar.
  const list = page.locator("#people");
  assert.equal(await list.isVisible(), false);
  const toggle = page.locator("#people-toggle");
  assert.equal(await toggle.textContent().then((t) => t.trim().endsWith("1")), true);
  await toggle.tap();
  assert.equal(await toggle.getAttribute("aria-expanded"), "true");
  await list.waitFor({ state: "visible" });
  await waitForPeople(page, { Grace: "online" });
  await assertNoSidewaysScroll(page, "online list open");
  await assertOnScreen(page, send, "the send button with the online list open");
  await screenshot(page, "mobile-people-open");
  await toggle.tap();
  await list.waitFor({ state: "hidden" });

  assert.deepEqual(page.errors.map(String), []);
});
