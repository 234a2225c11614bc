// The pieces every e2e test needs: the real server binary on a free port over
// a temporary data directory, the real CLI binary with a temporary home, and
// Debian's Chromium driven by playwright-core.
//
// The binaries come from `cargo test --workspace` (target/debug/); a missing
// one is built here first.

import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const TARGET = process.env.CARGO_TARGET_DIR
  ? resolve(REPO, process.env.CARGO_TARGET_DIR)
  : join(REPO, "target");
export const SERVER_BIN = join(TARGET, "debug", "claudemesh-server");
export const CLI_BIN = join(TARGET, "debug", "claudemesh");
export const ARTIFACTS = join(REPO, "e2e", "artifacts");
export const PASSWORD = "correct horse battery staple";

/** Builds a workspace binary if `cargo test --workspace` has not already. */
function ensureBuilt(bin, pkg) {
  if (existsSync(bin)) return;
  console.log(`# building ${pkg} (missing ${bin})`);
  const built = spawnSync("cargo", ["build", "-p", pkg], { cwd: REPO, stdio: "inherit" });
  if (built.status !== 0 || !existsSync(bin)) {
    throw new Error(`cargo build -p ${pkg} failed`);
  }
}

async function freePort() {
  return new Promise((resolvePort, reject) => {
    const probe = createServer();
    probe.unref();
    probe.on("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address();
      probe.close(() => resolvePort(port));
    });
  });
}

/** An environment without anything from the caller that would change what we test. */
function cleanEnv(extra) {
  const env = { ...process.env, NO_COLOR: "1", DO_NOT_TRACK: "1" };
  for (const name of [
    "DATABASE_URL",
    "CLAUDEMESH_PUBLIC_URL",
    "CLAUDEMESH_BIND",
    "CLAUDEMESH_TOKEN",
    "CLAUDEMESH_API_URL",
    "CLAUDEMESH_HOME",
    "CLAUDEMESH_SMTP_URL",
    "BROWSER",
  ]) {
    delete env[name];
  }
  return { ...env, ...extra };
}

/**
 * Starts `claudemesh-server` on a free port over a fresh SQLite store.
 * `logs()` is everything it printed so far; `stop()` ends it and removes the data.
 */
export async function startServer() {
  ensureBuilt(SERVER_BIN, "claudemesh-server");
  const dataDir = await mkdtemp(join(tmpdir(), "claudemesh-e2e-server-"));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  let output = "";
  const child = spawn(SERVER_BIN, [], {
    env: cleanEnv({
      CLAUDEMESH_DATA_DIR: dataDir,
      CLAUDEMESH_LOG_FORMAT: "text",
      CLAUDEMESH_BIND: `127.0.0.1:${port}`,
      RUST_LOG: "debug,sqlx=warn,hyper=info",
    }),
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout.on("data", (chunk) => (output += chunk));
  child.stderr.on("data", (chunk) => (output += chunk));
  const exited = new Promise((done) => child.on("exit", (code, signal) => done({ code, signal })));
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      const health = await fetch(`${url}/healthz`);
      if (health.ok) break;
    } catch {
      // not listening yet
    }
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`claudemesh-server did not start:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    port,
    logs: () => output,
    async stop() {
      if (child.exitCode === null) {
        child.kill("SIGTERM");
        await exited;
      }
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** A temporary `CLAUDEMESH_HOME` for one CLI user. */
export async function cliHome() {
  return mkdtemp(join(tmpdir(), "claudemesh-e2e-home-"));
}

/** Runs the CLI to completion: `{ code, stdout, stderr }`. */
export async function runCli(args, { server, home, timeoutMs = 30_000 } = {}) {
  const child = startCli(args, { server, home });
  const timer = setTimeout(() => child.process.kill("SIGKILL"), timeoutMs);
  try {
    return await child.done;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Starts the CLI: `{ process, done, stderrText(), waitForStderr(regex) }`.
 * `done` resolves to `{ code, stdout, stderr, at }` (`at`: when it exited).
 */
export function startCli(args, { server, home }) {
  ensureBuilt(CLI_BIN, "claudemesh-cli");
  const child = spawn(CLI_BIN, args, {
    env: cleanEnv({ CLAUDEMESH_HOME: home, CLAUDEMESH_API_URL: server.url }),
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  const waiters = [];
  const check = () => {
    for (const waiter of [...waiters]) {
      const match = stderr.match(waiter.regex);
      if (match) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(match);
      }
    }
  };
  child.stdout.on("data", (chunk) => (stdout += chunk));
  child.stderr.on("data", (chunk) => {
    stderr += chunk;
    check();
  });
  const done = new Promise((resolveDone) =>
    child.on("close", (code) => {
      const at = performance.now();
      for (const waiter of waiters.splice(0)) {
        waiter.reject(new Error(`the CLI exited (${code}) before printing ${waiter.regex}:\n${stderr}`));
      }
      resolveDone({ code, stdout, stderr, at });
    }),
  );
  return {
    process: child,
    done,
    stderrText: () => stderr,
    waitForStderr(regex, timeoutMs = 15_000) {
      return new Promise((resolveMatch, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`the CLI did not print ${regex} in ${timeoutMs} ms:\n${stderr}`)),
          timeoutMs,
        );
        waiters.push({
          regex,
          resolve: (m) => (clearTimeout(timer), resolveMatch(m)),
          reject: (e) => (clearTimeout(timer), reject(e)),
        });
        check();
      });
    },
  };
}

/**
 * Starts `claudemesh login --no-browser` and waits for the link and code it
 * prints: `{ cli, url, code }`.
 */
export async function startDeviceLogin(server, home, deviceName) {
  const cli = startCli(["login", "--no-browser", "--device-name", deviceName], { server, home });
  const [, url] = await cli.waitForStderr(/(https?:\/\/\S+\/cli-auth\?code=[A-Z]{4}-[A-Z]{4})/);
  const [, code] = await cli.waitForStderr(/Enter this code:\s*\n\s*([A-Z]{4}-[A-Z]{4})/);
  return { cli, url, code };
}

/** Debian's Chromium, headless, with nothing that reaches the network. */
export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || "/usr/bin/chromium",
    headless: true,
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
  });
}

export const DESKTOP = { width: 1280, height: 860 };
export const PHONE = { width: 375, height: 812 };

/** Saves a full-page screenshot to e2e/artifacts/<name>.png. */
export async function screenshot(page, name) {
  await mkdir(ARTIFACTS, { recursive: true });
  const path = join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}

/** Whether the page scrolls sideways (unusable on a phone). */
export async function overflowsHorizontally(page) {
  return page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth + 1);
}

let accounts = 0;

/** A fresh email address for this run. */
export function newEmail(name) {
  accounts += 1;
  return `${name.toLowerCase().replace(/\W+/g, ".")}.${process.pid}.${accounts}@example.com`;
}

/** Registers through the register page; the page ends signed in on the dashboard. */
export async function registerInBrowser(page, server, { name, email, password = PASSWORD, lang }) {
  await page.goto(`${server.url}/register${lang ? `?lang=${lang}` : ""}`);
  await page.fill("#name", name);
  await page.fill("#email", email);
  await page.fill("#password", password);
  await Promise.all([page.waitForURL(`${server.url}/dashboard`), page.click("form.stack button[type=submit]")]);
}

/** Signs in through the login page (wherever it was reached from). */
export async function signInOnPage(page, { email, password = PASSWORD }) {
  await page.fill("#email", email);
  await page.fill("#password", password);
  await Promise.all([page.waitForNavigation(), page.click("form.stack button[type=submit]")]);
}

/** Removes temporary directories, ignoring ones already gone. */
export async function removeAll(...paths) {
  await Promise.all(paths.map((path) => rm(path, { recursive: true, force: true })));
}
