// Meshes in a real browser with the real CLI: `claudemesh create` makes a
// mesh that shows on the dashboard; its admin creates an invite on the mesh
// page (link shown, copy button); a second person opens the link signed out,
// signs in from it, accepts, and the mesh page lists two members. Their
// `claudemesh sync` then registers a machine key for the membership.

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
  signInOnPage,
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

/** Generates a personal access token on the tokens page and returns it. */
async function generateToken(page, name) {
  await page.goto(`${server.url}/dashboard/settings/cli-tokens`);
  await page.fill("#token-name", name);
  await Promise.all([page.waitForNavigation(), page.click("form.generate button[type=submit]")]);
  return page.inputValue("#new-token");
}

/** Signs the CLI in a fresh home with a token made in the browser. */
async function cliSignedIn(page, name) {
  const token = await generateToken(page, name);
  const home = await cliHome();
  homes.push(home);
  const login = await runCli(["login", "--token", token], { server, home });
  assert.equal(login.code, 0, login.stderr);
  return { home, token };
}

/** Looks at a page at phone width: no sideways scrolling; a screenshot. */
async function atPhoneWidth(page, name) {
  await page.setViewportSize(PHONE);
  assert.equal(await overflowsHorizontally(page), false, `${name} scrolls sideways at 375 px`);
  console.log(`# screenshot ${await screenshot(page, name)}`);
  await page.setViewportSize(DESKTOP);
}

test("a mesh made with the CLI is shared through an invite accepted in the browser", async () => {
  // Alice: an account, the CLI, a mesh.
  const aliceContext = await browser.newContext({ viewport: DESKTOP });
  await aliceContext.grantPermissions(["clipboard-read", "clipboard-write"], { origin: server.url });
  const alice = await aliceContext.newPage();
  await registerInBrowser(alice, server, { name: "Alice Admin", email: newEmail("Alice") });
  assert.match(await alice.textContent("[data-testid=no-meshes]"), /claudemesh create "Name"/);
  const aliceCli = await cliSignedIn(alice, "alice-laptop");
  const created = await runCli(["create", "Platform team", "--json"], { server, home: aliceCli.home });
  assert.equal(created.code, 0, created.stderr);
  const mesh = JSON.parse(created.stdout);
  assert.equal(mesh.slug, "platform-team");
  assert.equal(mesh.role, "admin");

  // The dashboard lists it; its row leads to the mesh page.
  await alice.goto(`${server.url}/dashboard`);
  const row = alice.locator("[data-testid=meshes] tr", { hasText: "platform-team" });
  assert.match(await row.textContent(), /Platform team[\s\S]*Admin[\s\S]*1/);
  console.log(`# screenshot ${await screenshot(alice, "dashboard-meshes-desktop")}`);
  await atPhoneWidth(alice, "dashboard-meshes-phone");
  await Promise.all([
    alice.waitForURL(`${server.url}/dashboard/meshes/platform-team`),
    row.locator("a.mesh-link").click(),
  ]);
  assert.equal(await alice.textContent("[data-testid=mesh-name]"), "Platform team");
  assert.equal(await alice.textContent("[data-testid=your-role]"), "Admin");
  assert.equal(await alice.locator("[data-testid=members] tbody tr").count(), 1);

  // An invite, made on the page: the link is shown and copies.
  await alice.fill("#invite-email", "");
  await alice.selectOption("#invite-role", "member");
  assert.equal(await alice.inputValue("#invite-days"), "7");
  assert.equal(await alice.inputValue("#invite-uses"), "1");
  await Promise.all([alice.waitForNavigation(), alice.click("form.invite-form button[type=submit]")]);
  const link = await alice.inputValue("#new-invite-url");
  assert.match(link, new RegExp(`^${server.url}/i/[a-z0-9]{10,}$`));
  await alice.click("[data-testid=new-invite] button[data-copy]");
  await alice.locator("[data-testid=new-invite] button[data-copy]:has-text('Copied ✓')").waitFor({ timeout: 5_000 });
  assert.equal(await alice.evaluate(() => navigator.clipboard.readText()), link);
  const inviteRow = alice.locator("[data-testid=invites] li");
  assert.equal(await inviteRow.count(), 1);
  assert.equal(await inviteRow.locator("[data-testid=invite-status]").textContent(), "Valid");
  assert.equal(await inviteRow.locator("input").inputValue(), link);
  console.log(`# screenshot ${await screenshot(alice, "mesh-page-desktop")}`);
  await atPhoneWidth(alice, "mesh-page-phone");

  // Bob has an account, and opens the link signed out.
  const bobContext = await browser.newContext({ viewport: DESKTOP });
  const bob = await bobContext.newPage();
  const bobEmail = newEmail("Bob");
  await registerInBrowser(bob, server, { name: "Bob Builder", email: bobEmail });
  await bobContext.clearCookies();
  await bob.goto(link);
  assert.equal(await bob.textContent("h1"), "Alice Admin invited you to join Platform team");
  assert.equal(await bob.textContent("[data-testid=invite-role]"), "Member");
  assert.equal(await bob.locator("[data-accept]").count(), 0, "no Accept button signed out");
  console.log(`# screenshot ${await screenshot(bob, "invite-page-desktop")}`);
  await atPhoneWidth(bob, "invite-page-phone");

  // Sign in from the invitation and come straight back to it.
  await Promise.all([bob.waitForURL(/\/login\?next=/), bob.click("[data-sign-in]")]);
  assert.equal(new URL(bob.url()).searchParams.get("next"), new URL(link).pathname);
  assert.match(await bob.textContent("main"), /Sign in to accept your invitation/);
  await signInOnPage(bob, { email: bobEmail });
  assert.equal(bob.url(), link);
  console.log(`# screenshot ${await screenshot(bob, "invite-page-signed-in-desktop")}`);
  await Promise.all([bob.waitForURL(`${link}/joined`), bob.click("[data-accept]")]);
  assert.equal(await bob.textContent("h1"), "You joined Platform team");
  const joinedText = await bob.textContent("main");
  assert.match(joinedText, /claudemesh sync/);
  assert.ok(joinedText.includes(`claudemesh join ${link}`));
  await atPhoneWidth(bob, "invite-joined-phone");

  // The mesh page now lists both; Bob has no machine key yet.
  await Promise.all([
    bob.waitForURL(`${server.url}/dashboard/meshes/platform-team`),
    bob.click("a:has-text('Open the mesh')"),
  ]);
  const members = bob.locator("[data-testid=members] tbody tr");
  assert.equal(await members.count(), 2);
  assert.match(await members.nth(0).textContent(), /Alice Admin[\s\S]*Admin/);
  const bobRow = bob.locator("[data-testid=members] tr.you");
  assert.match(await bobRow.textContent(), /Bob Builder[\s\S]*you[\s\S]*Member/);
  assert.equal((await bobRow.locator("td[data-label='Machine keys']").textContent()).trim(), "0");
  assert.equal(await bob.locator("#invites").count(), 0, "a member sees no invites");

  // Opening the link again: already a member.
  await bob.goto(link);
  assert.equal(await bob.textContent("h1"), "You are already in Platform team");

  // Bob's terminal: `claudemesh sync` joins it there with a machine key.
  const bobCli = await cliSignedIn(bob, "bob-desktop");
  const sync = await runCli(["sync"], { server, home: bobCli.home });
  assert.equal(sync.code, 0, sync.stderr);
  await bob.goto(`${server.url}/dashboard/meshes/platform-team`);
  assert.equal(
    (await bob.locator("[data-testid=members] tr.you td[data-label='Machine keys']").textContent()).trim(),
    "1",
  );

  // Alice sees two members and the used-up invite.
  await alice.goto(`${server.url}/dashboard/meshes/platform-team`);
  assert.equal(await alice.locator("[data-testid=members] tbody tr").count(), 2);
  assert.equal(await alice.textContent("[data-testid=invites] [data-testid=invite-status]"), "Used up");
  console.log(`# screenshot ${await screenshot(alice, "mesh-page-two-members-desktop")}`);

  // The same page in Spanish fits a phone too.
  await alice.goto(`${server.url}/dashboard/meshes/platform-team?lang=es`);
  assert.equal(await alice.textContent("#invites-title"), "Invitaciones");
  await atPhoneWidth(alice, "mesh-page-es-phone");
  await alice.goto(`${server.url}/dashboard?lang=en`);

  const logs = server.logs();
  const code = new URL(link).pathname.split("/").pop();
  assert.ok(!logs.includes(code), "the invite code is not logged");
  for (const token of [aliceCli.token, bobCli.token]) {
    assert.ok(!logs.includes(token), "no token is logged");
  }
  await aliceContext.close();
  await bobContext.close();
});

test("an admin changes a role, renames and archives, and a member changes a grant, on the mesh page", async () => {
  // Alice: an account, the CLI, a mesh; Bob accepts her invite in the browser.
  const aliceContext = await browser.newContext({ viewport: DESKTOP });
  const alice = await aliceContext.newPage();
  await registerInBrowser(alice, server, { name: "Alice Ops", email: newEmail("AliceOps") });
  const aliceCli = await cliSignedIn(alice, "alice-ops-laptop");
  const cli = (args) => runCli(args, { server, home: aliceCli.home });
  assert.equal((await cli(["create", "Ops", "--json"])).code, 0);
  const invite = await cli(["invite", "--mesh", "ops", "--json"]);
  assert.equal(invite.code, 0, invite.stderr);
  const link = JSON.parse(invite.stdout).url;
  const bobContext = await browser.newContext({ viewport: DESKTOP });
  const bob = await bobContext.newPage();
  await registerInBrowser(bob, server, { name: "Bob Ops", email: newEmail("BobOps") });
  await bob.goto(link);
  await Promise.all([bob.waitForURL(`${link}/joined`), bob.click("[data-accept]")]);
  const meshUrl = `${server.url}/dashboard/meshes/ops`;

  // Alice makes Bob an admin: a confirmation page, then the change.
  await alice.goto(meshUrl);
  const bobRow = alice.locator("[data-testid=members] tr", { hasText: "Bob Ops" });
  assert.match(await bobRow.textContent(), /Member/);
  await Promise.all([alice.waitForURL(/\/members\/role\?/), bobRow.locator("[data-testid=member-role]").click()]);
  assert.equal(await alice.textContent("h1"), "Make Bob Ops an admin?");
  await atPhoneWidth(alice, "mesh-role-confirm-phone");
  await Promise.all([alice.waitForURL(`${meshUrl}?notice=role-changed`), alice.click("button.danger")]);
  assert.match(await alice.textContent("[role=status]"), /Role changed/);
  assert.match(await bobRow.locator("td[data-label=Role]").textContent(), /Admin/);
  const members = JSON.parse((await cli(["members", "--mesh", "ops", "--json"])).stdout);
  assert.equal(members.members.find((m) => m.display_name === "Bob Ops").role, "admin");

  // Bob no longer takes direct messages from Alice: one checkbox, Save.
  await bob.goto(meshUrl);
  const grantRow = bob.locator("[data-testid=grants] tr", { hasText: "Alice Ops" });
  await grantRow.locator("input[name=dm]").uncheck();
  await Promise.all([bob.waitForURL(/notice=grants-saved/), grantRow.locator("button[type=submit]").click()]);
  assert.match(await bob.textContent("[role=status]"), /Saved/);
  assert.equal(await grantRow.locator("input[name=dm]").isChecked(), false);
  assert.equal(await grantRow.locator("input[name=group]").isChecked(), true);
  const grants = JSON.parse((await cli(["grants", "--mesh", "ops", "--json"])).stdout);
  assert.deepEqual(grants.allows_you.find((p) => p.display_name === "Bob Ops").caps, ["group", "presence"]);

  // Alice renames the mesh, then archives it.
  await alice.goto(meshUrl);
  await alice.fill("#mesh-rename", "Ops team");
  await Promise.all([alice.waitForURL(/\/rename\?name=/), alice.click("#settings form.generate button")]);
  assert.equal(await alice.textContent("h1"), "Rename Ops?");
  await Promise.all([alice.waitForURL(`${meshUrl}?notice=renamed`), alice.click("button.danger")]);
  assert.equal(await alice.textContent("[data-testid=mesh-name]"), "Ops team");
  await Promise.all([alice.waitForURL(`${meshUrl}/archive`), alice.click("[data-testid=mesh-archive]")]);
  await Promise.all([alice.waitForURL(`${meshUrl}?notice=archived`), alice.click("button.danger")]);
  assert.match(await alice.textContent("[data-testid=mesh-archived]"), /Archived since/);
  const listed = JSON.parse((await cli(["list", "--json"])).stdout);
  assert.equal(listed.meshes.find((m) => m.slug === "ops").archived, true);

  // Each change is in the mesh log the page shows.
  const kinds = await alice.locator("[data-testid=log-entry]").evaluateAll((rows) => rows.map((r) => r.dataset.kind));
  for (const kind of ["member.role_changed", "grants.changed", "mesh.renamed", "mesh.archived"]) {
    assert.ok(kinds.includes(kind), `${kind} in ${kinds}`);
  }
  console.log(`# screenshot ${await screenshot(alice, "mesh-page-admin-desktop")}`);
  await atPhoneWidth(alice, "mesh-page-admin-phone");
  await alice.goto(`${meshUrl}/delete`);
  await atPhoneWidth(alice, "mesh-delete-confirm-phone");
  await aliceContext.close();
  await bobContext.close();
});
