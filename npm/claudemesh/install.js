#!/usr/bin/env node
// The install script of the `claudemesh` npm package (postinstall).
//
// npm has installed, of this package's optionalDependencies, the one package
// whose `os`, `cpu` and `libc` match this machine: @claudemesh/cli-<key>,
// holding the native `claudemesh` binary. This script puts that binary in
// place of bin/claudemesh.exe, the file npm linked as the `claudemesh`
// command, so the command *is* the binary: no Node.js (nor any shell) starts
// in front of it, and arguments, streams, signals and the exit status are
// its own. A hard link (no copy, no extra disk), else a copy; renamed into
// place, so a failure never leaves half a binary.
//
// Nothing is downloaded: every byte comes from the packages npm installed.
// Without this script (npm --ignore-scripts), bin/claudemesh.exe is a shell
// script that finds the same binary and execs it; launcher.js does the same
// from Node.js (`node launcher.js ARGS`) where there is no shell.
//
// The install fails (exit 1), with a message saying what to do, on a
// platform with no package and when the platform's package is missing,
// unless npm was told to leave optional dependencies out (--omit=optional):
// then the command itself says so when run.
'use strict'

const fs = require('fs')
const path = require('path')

const SCOPE = '@claudemesh/'
const PREFIX = SCOPE + 'cli-'

/** This package's own package.json. */
function manifest() {
  return require('./package.json')
}

/** True on a Linux whose C library is musl (Alpine), not glibc. */
function isMusl() {
  if (process.platform !== 'linux') {
    return false
  }
  try {
    // Node's own report names the glibc it runs on; it has none on musl.
    const header = process.report.getReport().header
    return header.glibcVersionRuntime === undefined
  } catch {
    return fs.readdirSync('/lib').some(name => name.startsWith('ld-musl-'))
  }
}

/**
 * The platform key of the package this machine needs, as the packages are
 * named: linux-x64, linux-x64-musl, linux-arm64, linux-arm64-musl,
 * darwin-x64, darwin-arm64, win32-x64 (when it is one of `supported`).
 */
function platformKey(platform = process.platform, arch = process.arch, musl = isMusl()) {
  return `${platform}-${arch}${platform === 'linux' && musl ? '-musl' : ''}`
}

/** The keys of the platform packages this release has. */
function supportedKeys(pkg = manifest()) {
  return Object.keys(pkg.optionalDependencies || {})
    .filter(name => name.startsWith(PREFIX))
    .map(name => name.slice(PREFIX.length))
}

/** The binary's file name in a platform package. */
function binaryName(platform = process.platform) {
  return platform === 'win32' ? 'claudemesh.exe' : 'claudemesh'
}

/**
 * The directory of the installed package `name` at `version`: nested in this
 * package's node_modules (global installs), beside this package (a project's
 * node_modules, npx), or wherever Node.js resolves it (pnpm, Yarn).
 */
function packageDir(name, version, here = __dirname) {
  const candidates = [path.join(here, 'node_modules', name)]
  const parent = path.dirname(here)
  if (path.basename(parent) === 'node_modules') {
    candidates.push(path.join(parent, name))
  }
  try {
    candidates.push(path.dirname(require.resolve(`${name}/package.json`, { paths: [here] })))
  } catch {
    // Not resolvable from here: only the places above count.
  }
  for (const dir of candidates) {
    try {
      const found = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'))
      if (found.name === name && found.version === version) {
        return dir
      }
    } catch {
      // No package there, or not one that can be read: try the next place.
    }
  }
  return null
}

/**
 * Where this machine's binary is: `{ binary }`, or `{ problem }` with the
 * message to show.
 */
function locate({ pkg = manifest(), key = platformKey(), here = __dirname } = {}) {
  const supported = supportedKeys(pkg)
  if (!supported.includes(key)) {
    return {
      problem: [
        `claudemesh: there is no prebuilt claudemesh for this platform (${key}).`,
        `Prebuilt: ${supported.join(', ')}.`,
        'Build it from source with Rust instead: cargo install --locked claudemesh-cli',
      ].join('\n'),
      unsupported: true,
    }
  }
  const name = PREFIX + key
  const dir = packageDir(name, pkg.optionalDependencies[name], here)
  if (dir === null) {
    return {
      problem: [
        `claudemesh: the package ${name}@${pkg.optionalDependencies[name]}, which holds the claudemesh binary for ${key}, is not installed.`,
        'npm leaves it out with --omit=optional (or omit=optional in .npmrc), or when its download failed.',
        `Install again: npm install -g ${pkg.name}   (or, with Rust: cargo install --locked claudemesh-cli)`,
      ].join('\n'),
    }
  }
  const binary = path.join(dir, 'bin', binaryName())
  if (!fs.existsSync(binary)) {
    return { problem: `claudemesh: ${binary} is missing from ${name}; install again: npm install -g ${pkg.name}` }
  }
  return { binary }
}

/** Puts `source` at `dest`: a hard link, else a copy, renamed into place. */
function place(source, dest) {
  const temporary = `${dest}.${process.pid}.tmp`
  fs.rmSync(temporary, { force: true })
  try {
    fs.linkSync(source, temporary)
  } catch {
    // Another file system, or one without hard links.
    fs.copyFileSync(source, temporary)
  }
  if (process.platform !== 'win32') {
    fs.chmodSync(temporary, 0o755)
  }
  fs.renameSync(temporary, dest)
}

function main() {
  const found = locate()
  const omitted = (process.env.npm_config_omit || '').includes('optional')
  if (found.problem) {
    console.error(found.problem)
    // A platform package left out on purpose is the user's choice: the
    // command says so when run.
    if (found.unsupported || !omitted) {
      process.exitCode = 1
    }
    return
  }
  try {
    place(found.binary, path.join(__dirname, 'bin', 'claudemesh.exe'))
  } catch (err) {
    console.error(`claudemesh: could not put the binary in place (${err.code || err.message}).`)
    console.error(`Run it through Node.js instead: node ${path.join(__dirname, 'launcher.js')}`)
    process.exitCode = 1
  }
}

module.exports = { binaryName, locate, packageDir, platformKey, supportedKeys }

if (require.main === module) {
  main()
}
