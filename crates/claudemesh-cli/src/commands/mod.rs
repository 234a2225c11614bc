//! One module per command; each has one `run(args, ctx)`. Commands use the
//! layers below them (context, session, api, stores, base) and a few each
//! other's steps (`launch` signs in and joins as `login` and `join` do);
//! `main` picks the one to run.

pub mod approve;
pub mod completions;
pub mod create;
pub mod doctor;
pub mod grants;
pub mod inbox;
pub mod invite;
pub mod join;
pub mod launch;
pub mod leave;
pub mod list;
pub mod login;
pub mod logout;
pub mod man_pages;
pub mod members;
pub mod mesh;
pub mod mesh_log;
pub mod peers;
pub mod relay;
pub mod send;
pub mod stream;
pub mod sync;
pub mod telemetry;
pub mod whoami;
