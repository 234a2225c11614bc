//! `claudemesh approve REQUEST_ID [--mesh S]` and `claudemesh deny …`:
//! answer a permission request of one of this member's launched sessions,
//! or of a member who lets this one approve (their `approve` grant).
//!
//! 1. Connect as a session of this machine's member key that acknowledges
//!    only what it takes (other messages keep waiting for `inbox`), and
//!    keep the permission requests that were waiting
//!    ([`relay::take_request`]), unless the id is known here already.
//! 2. Find the request in `permission_requests.json`: unknown is exit 5,
//!    expired exit 6.
//! 3. Sign the verdict with the member key over (mesh, asking session key,
//!    request id, behaviour) and send it to the asking session alone.
//! 4. Wait briefly for the session's word on it: applied (exit 0), already
//!    answered or expired (exit 6); no word in time is a warning, exit 0
//!    (the verdict is delivered; the session may be busy).

use super::relay::{self, Behavior};
use crate::base::exit::{CliError, CliResult, Exit};
use crate::base::when;
use crate::cli::AnswerArgs;
use crate::context::Context;
use crate::session::{self, MeshSession, SessionKind};
use crate::stores::permission_requests::{Pending, PermissionRequests};
use claudemesh_api::broker::Priority;
use claudemesh_api::e2e::KeyPair;
use claudemesh_api::permission::{self, OutcomeKind, Payload, Verdict};
use claudemesh_client::{ClientError, Event, TargetError};
use std::time::Duration;
use tokio::time::Instant;

/// How long to read the messages that were waiting, once nothing new comes.
const BACKLOG_QUIET: Duration = Duration::from_millis(800);
/// How long to wait for the asking session's word on the verdict.
const OUTCOME_WITHIN: Duration = Duration::from_secs(5);

pub fn run(args: &AnswerArgs, behavior: Behavior, ctx: &Context) -> CliResult<()> {
    let command = match behavior {
        Behavior::Allow => "approve",
        Behavior::Deny => "deny",
    };
    let id = args.request_id.trim().to_ascii_lowercase();
    if !permission::is_request_id(&id) {
        return Err(CliError::invalid_args(format!(
            "`{}` is not a permission request id",
            args.request_id
        ))
        .with_hint("An id is five letters (a to z, no l), as `claudemesh inbox` shows it."));
    }
    let (account, mesh) = session::account_and_mesh(ctx, args.mesh.as_deref(), command)?;
    let member = KeyPair::from_secret_hex(&mesh.secret_key).ok_or_else(|| {
        CliError::failure(format!(
            "The key of mesh `{}` in config.json is damaged",
            mesh.slug
        ))
    })?;
    let store = PermissionRequests::new(&ctx.config_dir);
    let runtime = session::runtime()?;
    runtime.block_on(async {
        let session = MeshSession::connect(&account.server, &mesh, SessionKind::Answer).await?;
        if store.find(&account.server, &mesh.mesh_id, &id).is_empty() {
            take_waiting(&session, &account.server, ctx, &id).await;
        }
        let pending = pick(&store, &account.server, &mesh.mesh_id, &mesh.slug, &id)?;
        let request = &pending.request;
        let verdict = Verdict::sign(
            &member,
            &mesh.mesh_id,
            &request.session_key,
            &request.request_id,
            behavior,
        );
        let text = Payload::PermissionVerdict(verdict).to_text();
        match session
            .client
            .send(&request.session_key, &text, Priority::Now)
            .await
        {
            Ok(_) => {}
            Err(ClientError::Target(TargetError::Unknown(_) | TargetError::NoRecipients(_))) => {
                store.remove(
                    &mesh.mesh_id,
                    &request.session_key,
                    &request.request_id,
                    when::now_ms(),
                );
                session.close(&ctx.out).await;
                return Err(CliError::new(
                    Exit::NotFound,
                    format!(
                        "The session that asked ({}) is no longer connected to {}",
                        pending.from_name, mesh.slug
                    ),
                ));
            }
            Err(err) => {
                let err = session.error(&err);
                session.close(&ctx.out).await;
                return Err(err);
            }
        }
        let outcome = wait_outcome(&session, &request.session_key, &request.request_id).await;
        session.close(&ctx.out).await;
        let what = format!(
            "`{}` ({} for {})",
            request.request_id, request.tool_name, pending.from_name
        );
        match outcome {
            Some(OutcomeKind::Applied) | None => {
                store.remove(
                    &mesh.mesh_id,
                    &request.session_key,
                    &request.request_id,
                    when::now_ms(),
                );
                let done = match behavior {
                    Behavior::Allow => "Approved",
                    Behavior::Deny => "Denied",
                };
                if outcome.is_some() {
                    ctx.out.success(format!("{done} {what}"));
                } else {
                    ctx.out.success(format!("{done} {what}: sent"));
                    ctx.out.warn(
                        "The session did not confirm within 5 seconds; it applies the first answer it gets.",
                    );
                }
                if ctx.out.json {
                    ctx.out.json(&serde_json::json!({
                        "request_id": request.request_id,
                        "behavior": behavior,
                        "confirmed": outcome.is_some(),
                    }));
                }
                Ok(())
            }
            Some(kind) => {
                store.remove(
                    &mesh.mesh_id,
                    &request.session_key,
                    &request.request_id,
                    when::now_ms(),
                );
                Err(CliError::new(
                    Exit::Conflict,
                    match kind {
                        OutcomeKind::AlreadyAnswered => format!("{what} was already answered"),
                        OutcomeKind::Expired => format!("{what} expired before the answer came"),
                        _ => format!("{what} is not pending in that session any more"),
                    },
                ))
            }
        }
    })
}

/// Reads what was waiting for this machine until it is quiet (or the
/// request `id` came), keeping the permission requests it may answer and
/// acknowledging only those.
async fn take_waiting(session: &MeshSession<'_>, server: &str, ctx: &Context, id: &str) {
    let mut quiet_from = Instant::now() + BACKLOG_QUIET;
    while let Ok(Some(event)) =
        tokio::time::timeout_at(quiet_from, session.client.next_event()).await
    {
        match event {
            Event::Message(message) => {
                quiet_from = Instant::now() + BACKLOG_QUIET;
                if let Some(pending) =
                    relay::take_request(&message, server, session.mesh, &ctx.config_dir)
                {
                    let _ = session.client.ack(vec![message.id]);
                    if pending.request.request_id == id {
                        return;
                    }
                }
            }
            Event::Closed { .. } => return,
            _ => {}
        }
    }
}

/// The one request with this id in this mesh.
fn pick(
    store: &PermissionRequests,
    server: &str,
    mesh_id: &str,
    slug: &str,
    id: &str,
) -> CliResult<Pending> {
    let found = store.find(server, mesh_id, id);
    let now = when::now_ms();
    let (live, expired): (Vec<Pending>, Vec<Pending>) =
        found.into_iter().partition(|p| p.request.expires_at > now);
    match live.as_slice() {
        [one] => Ok(one.clone()),
        [] if !expired.is_empty() => Err(CliError::new(
            Exit::Conflict,
            format!("The permission request `{id}` expired (requests last 10 minutes)"),
        )
        .with_hint("Claude Code asks again when it needs to.")),
        [] => Err(CliError::new(
            Exit::NotFound,
            format!("No pending permission request `{id}` in {slug}"),
        )
        .with_hint(
            "`claudemesh inbox` shows the requests of your launched sessions; they last 10 minutes.",
        )),
        several => Err(CliError::new(
            Exit::Conflict,
            format!(
                "{} sessions asked with the id `{id}` ({}); answer it in the terminal that asked",
                several.len(),
                several
                    .iter()
                    .map(|p| p.from_name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

/// The asking session's word on the verdict for `id`, if it comes in time.
async fn wait_outcome(
    session: &MeshSession<'_>,
    asking_session: &str,
    id: &str,
) -> Option<OutcomeKind> {
    let deadline = Instant::now() + OUTCOME_WITHIN;
    while let Ok(Some(event)) = tokio::time::timeout_at(deadline, session.client.next_event()).await
    {
        match event {
            Event::Message(message) => {
                if let Some(Payload::PermissionOutcome(outcome)) = Payload::parse(&message.text)
                    && outcome.request_id == id
                    && message.from.session_key == asking_session
                {
                    let _ = session.client.ack(vec![message.id]);
                    return Some(outcome.outcome);
                }
            }
            Event::Closed { .. } => return None,
            _ => {}
        }
    }
    None
}
