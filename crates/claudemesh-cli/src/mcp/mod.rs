//! `claudemesh mcp`: the MCP server (stdio, on the official `rmcp` SDK)
//! that Claude Code starts from the configuration `claudemesh launch`
//! writes. It is the launched session's presence in the mesh:
//!
//! - tools to list peers, send, read messages, and set status and summary
//!   ([`server`]);
//! - incoming messages pushed into Claude Code as
//!   `notifications/claude/channel` (capability `experimental["claude/channel"]`,
//!   every `meta` value a string, since Claude Code drops a notification
//!   with any other), or as one-line notices, or not at all
//!   ([`crate::stores::session_dir::MessageMode`]);
//! - the broker connection, made in the background and kept ([`link`]);
//! - with `--relay-permissions`, Claude Code's permission prompts relayed
//!   to the member's other sessions and the signed verdicts checked
//!   ([`relay`]).
//!
//! stdout carries MCP frames and nothing else; the log goes to stderr
//! (Claude Code keeps it) and to `mcp.log` in the session directory.

mod link;
mod log;
mod relay;
mod server;

use crate::base::exit::{CliError, CliResult, Exit};
use crate::context::Context;
use crate::stores::session_dir::{self, CONFIG_DIR_ENV};
use claudemesh_api::e2e::KeyPair;
use log::Logger;
use std::path::PathBuf;
use std::time::Duration;

/// How long `initialize` may wait for the broker, so that the instructions
/// can already name the peers; past it the connection goes on in the
/// background and the instructions point to `list_peers`.
const WAIT_FOR_PEERS: Duration = Duration::from_millis(60);

pub fn run(args: &crate::cli::McpArgs, ctx: &Context) -> CliResult<()> {
    let dir = std::env::var_os(CONFIG_DIR_ENV)
        .map(PathBuf::from)
        .ok_or_else(|| {
            CliError::invalid_args(format!("{CONFIG_DIR_ENV} is not set")).with_hint(
                "`claudemesh mcp` is the MCP server that `claudemesh launch` gives Claude Code; run `claudemesh launch`.",
            )
        })?;
    let mut session = session_dir::load(&dir)?;
    if let Some(narrower) = crate::cli::RightArg::rights(&args.caps) {
        // Only ever fewer rights than the launch gave; the session then
        // connects with a fresh attestation that carries them.
        let rights: Vec<_> = match &session.rights {
            Some(given) => narrower.into_iter().filter(|r| given.contains(r)).collect(),
            None => narrower,
        };
        session.rights = Some(rights);
        session.attestation_expires_at = 0;
    }
    let config = ctx.config().load(&ctx.out)?;
    let mesh = config
        .find(&session.server, &session.user_id, &session.mesh_id)
        .ok_or_else(|| {
            CliError::new(
                Exit::NotFound,
                format!(
                    "The mesh `{}` is no longer joined on this machine",
                    session.mesh_slug
                ),
            )
        })?;
    let member = KeyPair::from_secret_hex(&mesh.secret_key).ok_or_else(|| {
        CliError::failure(format!(
            "The key of mesh `{}` in config.json is damaged",
            session.mesh_slug
        ))
    })?;
    let log = Logger::open(&dir);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|err| CliError::failure(format!("Could not start the async runtime: {err}")))?;
    runtime.block_on(server::serve(
        session,
        member,
        log,
        WAIT_FOR_PEERS,
        args.relay_permissions,
    ))
}
