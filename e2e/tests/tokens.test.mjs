// Personal access tokens in the dashboard with the real CLI: generate one,
// read it off the page (shown once, copy button), `claudemesh login --token`
// with it; revoke it in the dashboard (through the confirmation step) and the
// next CLI call fails with exit code 2.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import {
  DESKTOP,
  PHONE,
  cliHome,
  launchBrowser,
  newEmail,
  overflowsHorizontally,
  registerInBrowser,
  removeAll,
  runCli,
  screenshot,
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

test("a token made in the dashboard logs the CLI in, and revoking it logs it out", async () => {
  const context = await browser.newContext({ viewport: DESKTOP });
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: server.url });
  const page = await context.newPage();
  await registerInBrowser(page, server, { name: "Eve Ops", email: newEmail("Eve") });
  await page.click("text=CLI tokens");
  await page.waitForURL(`${server.url}/dashboard/settings/cli-tokens`);
  assert.match(await page.textContent("main"), /No personal access tokens yet/);

  await page.fill("#token-name", "e2e-ci");
  await page.selectOption("#token-expiry", "90");
  await Promise.all([page.waitForNavigation(), page.click("form.generate button[type=submit]")]);
  const token = await page.inputValue("#new-token");
  assert.match(token, /^cm_pat_[a-z0-9]{32,}$/);
  assert.match(await page.textContent(".new-token"), /This token will not be shown again/);
  assert.ok(!page.url().includes(token), "the token is not in the URL");

  const copy = page.locator("button[data-copy]");
  await copy.click();
  await page.locator("button[data-copy]:has-text('Copied ✓')").waitFor({ timeout: 5_000 });
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), token);
  assert.match(await page.textContent("[data-testid=pats]"), /e2e-ci/);

  console.log(`# screenshot ${await screenshot(page, "cli-tokens-desktop")}`);
  await page.setViewportSize(PHONE);
  assert.equal(await overflowsHorizontally(page), false);
  console.log(`# screenshot ${await screenshot(page, "cli-tokens-phone")}`);
  await page.setViewportSize(DESKTOP);

  // Shown once: the page, opened again, does not have it.
  await page.goto(`${server.url}/dashboard/settings/cli-tokens`);
  assert.ok(!(await page.content()).includes(token));

  const home = await cliHome();
  homes.push(home);
  const login = await runCli(["login", "--token", token], { server, home });
  assert.equal(login.code, 0, login.stderr);
  assert.match(login.stderr, /Authenticated as Eve Ops/);
  const whoami = await runCli(["whoami"], { server, home });
  assert.equal(whoami.code, 0, whoami.stderr);

  // Revoke, through the confirmation page.
  await page.click("[data-testid=pats] tr:has-text('e2e-ci') a:has-text('Revoke')");
  await page.waitForURL(/\/cli-tokens\/revoke\?/);
  assert.equal(await page.textContent("h1"), "Revoke this token?");
  const stillWorks = await runCli(["whoami"], { server, home });
  assert.equal(stillWorks.code, 0, "asking is not revoking");
  await Promise.all([page.waitForURL(/notice=revoked/), page.click("button:has-text('Revoke')")]);
  assert.match(await page.textContent("[role=status]"), /Revoked/);
  assert.match(await page.textContent("main"), /No personal access tokens yet/);

  const afterRevoke = await runCli(["whoami"], { server, home });
  assert.equal(afterRevoke.code, 2, afterRevoke.stderr);
  assert.match(afterRevoke.stderr, /Authentication failed|revoked/i);

  assert.ok(!server.logs().includes(token), "the token is not logged");
  await context.close();
});
