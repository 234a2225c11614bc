//! claudemesh-server over real HTTP, on SQLite and on PostgreSQL: the JSON
//! API (`api`) and the browser pages (`pages`). One test binary, so the crate
//! links once.
//!
//! Servers come from the testkit: the real router on a random port over a
//! fresh database, with a frozen clock that tests move forward instead of
//! sleeping.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "integration tests: a failure stops the test"
)]

#[macro_use]
extern crate claudemesh_testkit;

mod api;
mod pages;
