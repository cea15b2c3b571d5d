// Helpers for the browser tests: headless Chromium driven by playwright-core
// against the real parley serving the chat page (build/www), and questions
// asked of the page the way a user would look at it (the DOM).
//
// Every browser launched here is closed in the test file's after() hook
// (closeAllBrowsers); servers and redis are stopped by the helpers in
// tests/js/lib.

import { mkdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "..", "..", "..");

/** The directory parley serves: the page plus the library under lib/parley. */
export const WWW = process.env.PARLEY_WWW || path.join(repo, "build", "www");

/** Where screenshots go. */
export const SHOTS = path.join(
  process.env.PARLEY_ARTIFACTS || path.join(repo, "build", "test-artifacts"),
  "browser",
);

/** An upper bound for ordinary waits (a message, a presence change). */
export const WAIT = 10000;

const browsers = new Set();

/** Launches headless Chromium (/usr/bin/chromium, or $CHROMIUM). */
export async function launchBrowser() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    timeout: 20000,
  });
  browsers.add(browser);
  return browser;
}

/** Closes every browser launched here. For after() hooks. */
export async function closeAllBrowsers() {
  await Promise.all([...browsers].map((b) => b.close().catch(() => {})));
  browsers.clear();
}

/**
 * Opens the page of `server` in a new browser context (a fresh profile:
 * nothing remembered) and joins `room` as `name` through the welcome form.
 * Returns {context, page}; page.errors collects uncaught page exceptions.
 * Resolves once the page lists the user as online.
 */
export async function joinChat(browser, server, { name, room, contextOptions = {} }) {
  const context = await browser.newContext(contextOptions);
  const page = await context.newPage();
  watchErrors(page);
  await page.goto(`${server.httpBase}/?room=${encodeURIComponent(room)}`);
  await page.getByLabel("Your name").fill(name);
  await page.getByRole("button", { name: "Join room" }).click();
  await waitForPeople(page, { [name]: "online" }, { atLeast: true });
  return { context, page };
}

/** Collects the page's uncaught exceptions in page.errors. */
export function watchErrors(page) {
  page.errors = [];
  page.on("pageerror", (err) => page.errors.push(err));
  return page;
}

/** Returns the online list as the page shows it: {name: status}, plus the
 * count shown in its heading. */
export function people(page) {
  return page.evaluate(() => {
    const list = {};
    for (const li of document.querySelectorAll("#people-list .person")) {
      const name = li.querySelector(".person-name").firstChild.textContent;
      list[name] = li.querySelector(".person-status").textContent.toLowerCase();
    }
    return { list, count: Number(document.getElementById("people-count").textContent) };
  });
}

/**
 * Waits until the online list is exactly `expected` ({name: status}) and
 * the count says so; with atLeast, until it contains those entries.
 * Throws, saying what the page showed, after timeout ms.
 */
export async function waitForPeople(page, expected, { atLeast = false, timeout = WAIT } = {}) {
  const deadline = Date.now() + timeout;
  let seen;
  for (;;) {
    seen = await people(page);
    const names = Object.keys(seen.list);
    const matches =
      Object.entries(expected).every(([n, s]) => seen.list[n] === s) &&
      (atLeast || (names.length === Object.keys(expected).length && seen.count === names.length));
    if (matches) return seen;
    if (Date.now() > deadline) {
      throw new Error(
        `online list: wanted ${JSON.stringify(expected)}${atLeast ? " (at least)" : ""}, ` +
          `the page shows ${JSON.stringify(seen)}`,
      );
    }
    await page.waitForTimeout(50);
  }
}

/** The message list item whose text is `text` (a locator). */
export function message(page, text) {
  return page.locator("#messages .message").filter({
    has: page.locator(".text", { hasText: new RegExp(`^${escapeRe(text)}$`) }),
  });
}

/** Waits for the message `text` from `sender` and returns what the page
 * shows of it: {sender, text, own, time}. */
export async function waitForMessage(page, text, { timeout = WAIT } = {}) {
  const item = message(page, text);
  await item.first().waitFor({ state: "visible", timeout });
  return item.first().evaluate((li) => ({
    sender: li.querySelector(".sender").textContent,
    text: li.querySelector(".text").textContent,
    own: li.classList.contains("own"),
    time: li.querySelector("time").textContent,
  }));
}

/** Types text into the message box and presses Enter. */
export async function sendMessage(page, text) {
  const box = page.getByLabel("Message", { exact: true });
  await box.fill(text);
  await box.press("Enter");
}

/** Waits until a notice line (join, leave...) with exactly `text` shows. */
export async function waitForNotice(page, text, { timeout = WAIT } = {}) {
  await page
    .locator("#messages .notice", { hasText: new RegExp(`^${escapeRe(text)}$`) })
    .first()
    .waitFor({ state: "visible", timeout });
}

/** The connection banner (a locator). */
export const banner = (page) => page.locator("#banner");

/** Saves a PNG of the page as <SHOTS>/<name>.png. */
export async function screenshot(page, name) {
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`) });
}

function escapeRe(s) {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
