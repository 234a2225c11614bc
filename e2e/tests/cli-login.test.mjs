// The spec's happy path with the real CLI: `claudemesh login --no-browser`
// prints a link and a code; a signed-out browser opens the link, signs in,
// comes back to the approval card, checks the code and device, approves; the
// CLI finishes and saves auth.json, within a second of the click (its poll is
// held by the server and answered by the approval; the time is printed).
// Also: Deny, and the pages for unknown and typed codes.

import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import {
  DESKTOP,
  PASSWORD,
  PHONE,
  cliHome,
  launchBrowser,
  newEmail,
  overflowsHorizontally,
  registerInBrowser,
  removeAll,
  runCli,
  screenshot,
  signInOnPage,
  startDeviceLogin,
  startServer,
} from "../lib/harness.mjs";

let server;
let browser;
const homes = [];

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
  await removeAll(...homes);
});

/** An account, made in its own browser context. */
async function account(name) {
  const email = newEmail(name);
  const context = await browser.newContext();
  await registerInBrowser(await context.newPage(), server, { name, email });
  await context.close();
  return email;
}

test("claudemesh login, approved in the browser", async () => {
  const email = await account("Bea");
  const home = await cliHome();
  homes.push(home);
  const { cli, url, code } = await startDeviceLogin(server, home, "e2e laptop");
  assert.equal(url, `${server.url}/cli-auth?code=${code}`);

  // A browser that is not signed in: sign in first, then straight back.
  const context = await browser.newContext({ viewport: DESKTOP });
  const page = await context.newPage();
  await page.goto(url);
  const login = new URL(page.url());
  assert.equal(login.pathname, "/login");
  assert.equal(login.searchParams.get("next"), `/cli-auth?code=${code}`);
  assert.match(await page.textContent(".hint"), /approve the login from your terminal/);
  await signInOnPage(page, { email });
  assert.equal(page.url(), url);

  // The card: the same code and device the CLI has.
  assert.equal(await page.textContent("h1"), "Link this CLI session?");
  assert.equal(await page.textContent("[data-testid=user-code]"), code);
  const device = (await page.textContent("[data-testid=device]")).trim();
  assert.match(device, new RegExp(`^e2e laptop · ${process.platform} · \\w+$`));
  assert.match(await page.textContent(".warning"), /Approve only if you just ran claudemesh login yourself/);
  assert.match(await page.textContent(".facts"), /127\.0\.0\.1[\s\S]*same as the request/);
  const countdown = page.locator("[data-countdown]");
  const first = await countdown.textContent();
  assert.match(first, /^(9|10):\d\d$/);
  await page.waitForFunction((before) => document.querySelector("[data-countdown]").textContent !== before, first);
  assert.match(await countdown.textContent(), /^\d+:\d\d$/, "the countdown runs");

  console.log(`# screenshot ${await screenshot(page, "cli-auth-card-desktop")}`);
  await page.setViewportSize(PHONE);
  assert.equal(await overflowsHorizontally(page), false);
  console.log(`# screenshot ${await screenshot(page, "cli-auth-card-phone")}`);
  await page.setViewportSize(DESKTOP);

  // The GETs above approved nothing: the CLI is still waiting.
  assert.equal(cli.process.exitCode, null);

  // The CLI says it saved auth.json right after writing it.
  const savedLine = cli.waitForStderr(/✔ Token saved to .*auth\.json/, 30_000).then(() => performance.now());
  const clicked = performance.now();
  await Promise.all([page.waitForURL(`${server.url}/cli-auth/approved`), page.click("button[value=approve]")]);
  assert.equal(await page.textContent("h1"), "✓ CLI authenticated. Return to your terminal.");
  const savedAt = await savedLine;
  const result = await cli.done;
  const toSaved = Math.round(savedAt - clicked);
  console.log(`# approve click → auth.json written: ${toSaved} ms`);
  console.log(`# approve click → CLI success (exit, after the mesh sync): ${Math.round(result.at - clicked)} ms`);
  assert.equal(result.code, 0, result.stderr);
  // Typically tens of milliseconds; a second is the product's promise, far
  // from the 1.5 s a polling CLI could take.
  assert.ok(toSaved < 1000, `auth.json written ${toSaved} ms after the click`);
  assert.match(result.stderr, /Authenticated as Bea/);
  const authFile = join(home, "auth.json");
  assert.ok(existsSync(authFile), "auth.json is written");
  const saved = JSON.parse(readFileSync(authFile, "utf8"));
  assert.match(saved.token, /^cm_session_[a-z0-9]{32,}$/);

  const whoami = await runCli(["whoami"], { server, home });
  assert.equal(whoami.code, 0, whoami.stderr);

  await page.goto(`${server.url}/dashboard/settings/cli-tokens`);
  assert.match(await page.textContent("[data-testid=sessions]"), /e2e laptop/);

  // Nothing secret reached the server's log.
  const logs = server.logs();
  assert.ok(!logs.includes(saved.token), "the session token is not logged");
  assert.ok(!logs.includes(PASSWORD), "the password is not logged");
  await context.close();
});

test("Deny in the browser ends the CLI with its message", async () => {
  const email = await account("Cal");
  const home = await cliHome();
  homes.push(home);
  const { cli, url } = await startDeviceLogin(server, home, "shared box");
  const context = await browser.newContext({ viewport: DESKTOP });
  const page = await context.newPage();
  await page.goto(url);
  await signInOnPage(page, { email });
  const clicked = performance.now();
  await Promise.all([page.waitForURL(`${server.url}/cli-auth/denied`), page.click("button[value=deny]")]);
  assert.equal(await page.textContent("h1"), "Login request denied");
  const result = await cli.done;
  console.log(`# deny click → CLI exit: ${Math.round(result.at - clicked)} ms`);
  assert.equal(result.code, 1, result.stderr);
  assert.match(result.stderr, /Denied in browser/);
  assert.ok(!existsSync(join(home, "auth.json")), "nothing saved");

  // The code is spent: opening the link again says so.
  await page.goto(url);
  assert.equal(await page.textContent("h1"), "This code was already used");
  await context.close();
});

test("a typed code: unknown first, then the right one", async () => {
  const email = await account("Dan");
  const home = await cliHome();
  homes.push(home);
  const { cli, code } = await startDeviceLogin(server, home, "typed");
  const context = await browser.newContext({ viewport: DESKTOP });
  const page = await context.newPage();
  await page.goto(`${server.url}/login?next=/cli-auth`);
  await signInOnPage(page, { email });
  assert.equal(page.url(), `${server.url}/cli-auth`);
  assert.equal(await page.textContent("h1"), "Enter the code from your terminal");

  await page.fill("#code", "ZZZZ-ZZZZ");
  const [unknown] = await Promise.all([page.waitForNavigation(), page.click("form.code-form button")]);
  assert.equal(unknown.status(), 404);
  assert.equal(await page.textContent("h1"), "Unknown code");

  // As a person types it: lower case, no dash.
  await page.fill("#code", code.toLowerCase().replace("-", ""));
  await Promise.all([page.waitForNavigation(), page.click("form.code-form button")]);
  assert.equal(await page.textContent("[data-testid=user-code]"), code);
  await Promise.all([page.waitForURL(/\/cli-auth\/approved$/), page.click("button[value=approve]")]);
  const result = await cli.done;
  assert.equal(result.code, 0, result.stderr);
  await context.close();
});
