//! The real `claudemesh` binary against the real server.
//!
//! Each test starts the server in-process (testkit: a random port over a
//! fresh SQLite or PostgreSQL database, with a clock that runs in real time
//! but can be pushed past an expiry), runs the CLI as a child process with
//! its own config directory, and acts as the person in the browser over
//! HTTP. Assertions are what a user notices: the messages, the exit codes,
//! the files and their modes. No test waits a fixed time for something to
//! happen: each waits for the CLI to say it (with a generous safety limit so
//! a broken build fails instead of hanging).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "integration tests: a failure stops the test"
)]

#[macro_use]
extern crate claudemesh_testkit;

mod harness;

mod doctor;
mod first_steps;
mod governance;
mod keyring;
mod launch;
mod login;
mod mesh_log;
mod meshes;
mod messages;
mod request_limit;
#[cfg(feature = "keyring")]
mod secret_service;
mod stream;
mod telemetry;
mod wizard;
