//! The JSON API. Every test is written once as `async fn name(engine:
//! Engine)` and run on both engines by `on_both_engines!`.

mod accounts;
mod address_limits;
mod bad_input;
mod broker;
mod crash;
mod device_codes;
mod governance;
mod grants;
mod killed;
mod mesh_log;
mod meshes;
mod oauth;
mod observers;
mod operations;
mod request_limit;
mod sealed;
mod service;
mod startup;
pub mod support;
mod telemetry;
mod tokens;
