#!/usr/bin/env node
// `node launcher.js ARGS`: runs the claudemesh binary from Node.js, for where
// neither the install script (which makes the `claudemesh` command the
// binary itself) nor a POSIX shell (which bin/claudemesh.exe needs until
// then) could do it: Windows with npm --ignore-scripts.
//
// Node.js cannot replace itself with another program, so this starts the
// binary as a child with the same arguments and streams, passes on the
// signals sent to this process, and ends as the child did: its exit status,
// or killed by the same signal. It costs a Node.js start (tens of
// milliseconds) on every command; bench/README.md has the figures.
'use strict'

const { spawn } = require('child_process')
const { locate } = require('./install.js')

const found = locate()
if (found.problem) {
  console.error(found.problem)
  process.exit(1)
}

const child = spawn(found.binary, process.argv.slice(2), { stdio: 'inherit' })

// In a terminal, Ctrl-C reaches the child from the terminal itself (it is in
// the same process group): this process only ignores it. Sent to this
// process alone (no terminal), it is passed on like the others, as
// `claudemesh launch` does with Claude Code.
const forwarded = ['SIGTERM', 'SIGHUP', 'SIGQUIT']
for (const signal of [...forwarded, 'SIGINT']) {
  process.on(signal, () => {
    if (signal !== 'SIGINT' || !process.stdin.isTTY) {
      child.kill(signal)
    }
  })
}

child.on('error', err => {
  console.error(`claudemesh: could not run ${found.binary} (${err.code || err.message})`)
  process.exit(1)
})

child.on('exit', (code, signal) => {
  if (signal) {
    // Die of the same signal, so the shell sees what it would have seen.
    process.removeAllListeners(signal)
    process.kill(process.pid, signal)
    return
  }
  process.exit(code)
})
