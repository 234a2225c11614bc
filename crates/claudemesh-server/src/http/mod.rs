//! Request plumbing shared by every route.
//!
//! - [`request`]: the JSON body extractor, the caller's address, the request
//!   log, the JSON 404 and 405.
//! - [`error`]: the one error type handlers return ([`error::AppError`]).
//! - [`cookies`]: every cookie the server sets, read and written one way.
//! - [`openapi`]: the OpenAPI document served at `/api/openapi.json`.
//! - [`write_stall`]: every accepted connection, closed once its writes
//!   have made no progress for `--write-stall-timeout`.

pub mod cookies;
pub mod error;
pub mod openapi;
pub mod request;
pub mod write_stall;
