// One whole flow in Spanish, picked by the browser's language
// (Accept-Language): register, approve a `claudemesh login`, generate a
// token; then the switcher to English and back.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import {
  DESKTOP,
  PHONE,
  cliHome,
  launchBrowser,
  newEmail,
  registerInBrowser,
  removeAll,
  screenshot,
  startDeviceLogin,
  startServer,
} from "../lib/harness.mjs";

let server;
let browser;
let home;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
  home = await cliHome();
});

after(async () => {
  await browser?.close();
  await server?.stop();
  await removeAll(home);
});

test("register, approve the CLI and make a token, all in Spanish", async () => {
  const context = await browser.newContext({ viewport: DESKTOP, locale: "es-ES" });
  const page = await context.newPage();
  await page.goto(`${server.url}/register`);
  assert.equal(await page.getAttribute("html", "lang"), "es");
  assert.equal(await page.textContent("h1"), "Crea tu cuenta");
  await registerInBrowser(page, server, { name: "Lucía", email: newEmail("Lucia") });
  assert.match(await page.textContent("h1"), /Hola, Lucía/);

  const { cli, url, code } = await startDeviceLogin(server, home, "portátil");
  await page.goto(url);
  assert.equal(await page.textContent("h1"), "¿Vincular esta sesión de la CLI?");
  assert.equal(await page.textContent("[data-testid=user-code]"), code);
  assert.match(await page.textContent(".warning"), /Aprueba solo si acabas de ejecutar claudemesh login tú mismo/);
  assert.match(await page.textContent(".facts"), /Caduca en/);
  await page.setViewportSize(PHONE);
  console.log(`# screenshot ${await screenshot(page, "cli-auth-card-es-phone")}`);
  await page.setViewportSize(DESKTOP);
  await Promise.all([page.waitForURL(/\/cli-auth\/approved$/), page.click("button:has-text('Aprobar')")]);
  assert.equal(await page.textContent("h1"), "✓ CLI autenticada. Vuelve a tu terminal.");
  const result = await cli.done;
  assert.equal(result.code, 0, result.stderr);

  await page.goto(`${server.url}/dashboard/settings/cli-tokens`);
  assert.equal(await page.textContent("h1"), "Tokens de la CLI");
  assert.match(await page.textContent("[data-testid=sessions]"), /portátil/);
  await page.fill("#token-name", "despliegue");
  await page.selectOption("#token-expiry", "never");
  await Promise.all([page.waitForNavigation(), page.click("button:has-text('Generar token')")]);
  assert.match(await page.textContent(".new-token"), /Este token no se volverá a mostrar/);
  assert.match(await page.textContent("[data-testid=pats]"), /despliegue[\s\S]*Nunca/);

  // The switcher: English, remembered by cookie over Accept-Language, then back.
  await Promise.all([page.waitForNavigation(), page.click(".lang-switch a:has-text('English')")]);
  assert.equal(await page.textContent("h1"), "CLI tokens");
  await page.goto(`${server.url}/dashboard`);
  assert.match(await page.textContent("h1"), /Welcome, Lucía/);
  await Promise.all([page.waitForNavigation(), page.click(".lang-switch a:has-text('Español')")]);
  assert.match(await page.textContent("h1"), /Hola, Lucía/);
  await context.close();
});
