// Accounts in a real browser: register, sign out, sign in (one message for a
// wrong password and an unknown email), `?next=` that stays on this site, a
// form posted from another origin, and the layout at phone width.

import assert from "node:assert/strict";
import { createServer } from "node:http";
import { after, before, test } from "node:test";
import {
  DESKTOP,
  PHONE,
  launchBrowser,
  newEmail,
  overflowsHorizontally,
  registerInBrowser,
  signInOnPage,
  startServer,
} from "../lib/harness.mjs";

let server;
let browser;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test("register, sign out and sign in again in the browser", async () => {
  const context = await browser.newContext({ viewport: DESKTOP });
  const page = await context.newPage();
  const email = newEmail("Ana");
  await registerInBrowser(page, server, { name: "Ana García", email });
  assert.match(await page.textContent("h1"), /Welcome, Ana García/);
  assert.equal(await page.textContent("header .who"), "Ana García");

  await Promise.all([
    page.waitForURL(`${server.url}/login?notice=signed-out`),
    page.click("header form[action='/logout'] button"),
  ]);
  assert.equal(await page.textContent("[role=status]"), "You are signed out.");

  await page.goto(`${server.url}/dashboard`);
  const login = new URL(page.url());
  assert.equal(login.pathname, "/login");
  assert.equal(login.searchParams.get("next"), "/dashboard");

  await signInOnPage(page, { email, password: "not the password" });
  const wrongPassword = await page.textContent("[role=alert]");
  await signInOnPage(page, { email: newEmail("nobody") });
  const unknownEmail = await page.textContent("[role=alert]");
  assert.equal(wrongPassword, "Wrong email or password.");
  assert.equal(unknownEmail, wrongPassword, "the same message for both");

  await signInOnPage(page, { email });
  assert.equal(page.url(), `${server.url}/dashboard`);
  await context.close();
});

test("sign-in never sends the browser to another site", async () => {
  const context = await browser.newContext({ viewport: DESKTOP });
  const page = await context.newPage();
  const email = newEmail("Bo");
  await registerInBrowser(page, server, { name: "Bo", email });
  await context.clearCookies();
  for (const next of ["//evil.example/", "https://evil.example/", "/\\evil.example/"]) {
    await context.clearCookies();
    await page.goto(`${server.url}/login?next=${encodeURIComponent(next)}`);
    await signInOnPage(page, { email });
    assert.equal(page.url(), `${server.url}/dashboard`, `next=${next}`);
  }
  await context.close();
});

test("a form posted from another origin is refused", async () => {
  const context = await browser.newContext({ viewport: DESKTOP });
  const page = await context.newPage();
  await registerInBrowser(page, server, { name: "Cy", email: newEmail("Cy") });
  // Another port is another origin (but the same site, so the cookie goes along).
  const attacker = createServer((_, response) => {
    response.setHeader("content-type", "text/html");
    response.end(`<!doctype html><form method="post" action="${server.url}/dashboard/settings/cli-tokens">
      <input name="name" value="stolen"><input name="expiry" value="never"><button>win a prize</button></form>`);
  });
  await new Promise((done) => attacker.listen(0, "127.0.0.1", done));
  try {
    await page.goto(`http://127.0.0.1:${attacker.address().port}/`);
    const [response] = await Promise.all([page.waitForNavigation(), page.click("button")]);
    assert.equal(response.status(), 403);
    assert.equal(await page.textContent("h1"), "Request refused");
    await page.goto(`${server.url}/dashboard/settings/cli-tokens`);
    assert.equal(await page.locator("text=stolen").count(), 0, "no token was made");
  } finally {
    attacker.close();
    await context.close();
  }
});

test("the pages fit a phone screen", async () => {
  const context = await browser.newContext({ viewport: PHONE, isMobile: true, hasTouch: true });
  const page = await context.newPage();
  await page.goto(`${server.url}/register`);
  assert.equal(await overflowsHorizontally(page), false, "register");
  await registerInBrowser(page, server, { name: "Dee Longname-Withaverylongsurname", email: newEmail("Dee") });
  for (const path of ["/dashboard", "/dashboard/settings/cli-tokens", "/dashboard/settings/password", "/cli-auth"]) {
    await page.goto(`${server.url}${path}`);
    assert.equal(await overflowsHorizontally(page), false, path);
  }
  await context.close();
});
