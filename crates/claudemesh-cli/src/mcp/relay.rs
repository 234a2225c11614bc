//! Permission prompts relayed to the member (`--relay-permissions`): the
//! session's side. A request (from Claude Code's
//! `notifications/claude/channel/permission_request`, or from the
//! `permission_prompt` tool) is sent, end-to-end encrypted, to the
//! member's other sessions and machines; a verdict that comes back is
//! checked here before anything reaches Claude Code:
//!
//! - it comes from this session's own member, or from a member this one
//!   lets answer (its `approve` grant to them, as the broker reported it
//!   when the request was sent: they were sent the request too). The
//!   sender is the broker's, whose session key the member key attested,
//!   and whose member key the client checked belongs to that member;
//! - it names this session's key, and its signature by that member key
//!   covers (mesh, this session key, request id, behaviour);
//! - the request is pending here and not expired; the first valid verdict
//!   wins, and a later one is told "already answered".
//!
//! Anything else is dropped and logged to `mcp.log`.

use super::link::Link;
use super::log::Logger;
use crate::stores::session_dir::SessionFile;
use claudemesh_api::broker::{Priority, Sender};
use claudemesh_api::permission::{
    Behavior, Outcome, OutcomeKind, Payload, PermissionRequest, REQUEST_TTL_MS, Verdict,
};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

/// The capability that makes Claude Code relay its permission prompts.
pub const PERMISSION_CAPABILITY: &str = "claude/channel/permission";
/// Claude Code → server: a prompt to relay.
pub const PERMISSION_REQUEST_METHOD: &str = "notifications/claude/channel/permission_request";
/// Server → Claude Code: the verdict.
pub const PERMISSION_METHOD: &str = "notifications/claude/channel/permission";
/// How long requests last, in ms, for tests (hidden; 10 minutes otherwise).
pub const TTL_ENV: &str = "CLAUDEMESH_PERMISSION_TTL_MS";

/// An answer, for the `permission_prompt` tool call that waits for it.
#[derive(Debug)]
pub struct Answer {
    pub behavior: Behavior,
    /// The display name of the session that answered.
    pub by: String,
}

/// What to do with a verdict that passed every check.
pub enum Applied {
    /// Tell Claude Code (`notifications/claude/channel/permission`).
    Channel {
        request_id: String,
        behavior: Behavior,
    },
    /// The waiting tool call has it.
    Tool,
}

struct Pending {
    expires_at: i64,
    answered: bool,
    /// The `permission_prompt` call waiting, for tool requests.
    waiter: Option<oneshot::Sender<Answer>>,
    /// Other members who may answer (this member's `approve` grant to
    /// them when the request was sent).
    approvers: HashSet<String>,
}

pub struct Relay {
    link: Link,
    session: Arc<SessionFile>,
    log: Arc<Logger>,
    ttl_ms: i64,
    pending: Mutex<HashMap<String, Pending>>,
}

fn now_ms() -> i64 {
    crate::base::when::now_ms()
}

impl Relay {
    pub fn new(link: Link, session: Arc<SessionFile>, log: Arc<Logger>) -> Self {
        let ttl_ms = std::env::var(TTL_ENV)
            .ok()
            .and_then(|v| v.parse::<i64>().ok())
            .filter(|ms| *ms > 0)
            .unwrap_or(REQUEST_TTL_MS);
        Self {
            link,
            session,
            log,
            ttl_ms,
            pending: Mutex::new(HashMap::new()),
        }
    }

    pub fn ttl(&self) -> Duration {
        Duration::from_millis(u64::try_from(self.ttl_ms).unwrap_or(0))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pending>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends a request to the member's other sessions and machines, and
    /// waits (as pending) for its verdict. `Err`: it could not be sent.
    pub async fn ask(
        &self,
        request_id: &str,
        tool_name: &str,
        description: &str,
        input_preview: &str,
        waiter: Option<oneshot::Sender<Answer>>,
    ) -> Result<(), String> {
        let Some(client) = self.link.client() else {
            let why = "this session is not connected to the mesh right now";
            self.log.line(&format!(
                "could not relay permission request {request_id}: {why}"
            ));
            return Err(why.to_owned());
        };
        // Members this one lets answer its prompts get the request too.
        let approvers: Vec<(String, String)> = match client.peers().await {
            Ok((_, members)) => members
                .into_iter()
                .filter(|m| m.may_approve)
                .map(|m| (m.member_id, m.display_name))
                .collect(),
            Err(err) => {
                self.log.line(&format!(
                    "permission request {request_id}: could not read who may approve ({err}); asking the member only"
                ));
                Vec::new()
            }
        };
        let expires_at = now_ms() + self.ttl_ms;
        let request = PermissionRequest {
            request_id: request_id.to_owned(),
            tool_name: tool_name.chars().take(200).collect(),
            description: description.chars().take(2_000).collect(),
            input_preview: input_preview.chars().take(200).collect(),
            session_key: self.session.session_public_key.clone(),
            expires_at,
        };
        {
            let mut pending = self.lock();
            // Forget what can no longer be answered (kept one more lifetime
            // to say "expired" rather than "unknown").
            let now = now_ms();
            pending.retain(|_, p| p.expires_at + self.ttl_ms > now);
            pending.insert(
                request_id.to_owned(),
                Pending {
                    expires_at,
                    answered: false,
                    waiter,
                    approvers: approvers.iter().map(|(id, _)| id.clone()).collect(),
                },
            );
        }
        let text = Payload::PermissionRequest(request).to_text();
        // The member's own id: every other session of theirs and their
        // machine keys (a machine with no session connected gets it when
        // `inbox` or `approve` connects there).
        let me = client.welcome().member_id.clone();
        match client.send(&me, &text, Priority::Now).await {
            Ok(sent) => {
                self.log.line(&format!(
                    "relayed permission request {request_id} ({tool_name}) to the member's other sessions and machines ({} key boxes)",
                    sent.recipients
                ));
                for (approver, name) in &approvers {
                    match client.send(approver, &text, Priority::Now).await {
                        Ok(_) => self.log.line(&format!(
                            "relayed permission request {request_id} to {name}, who may approve"
                        )),
                        Err(err) => self.log.line(&format!(
                            "could not relay permission request {request_id} to {name}: {err}"
                        )),
                    }
                }
                Ok(())
            }
            Err(err) => {
                self.lock().remove(request_id);
                self.log.line(&format!(
                    "could not relay permission request {request_id}: {err}"
                ));
                Err(err.to_string())
            }
        }
    }

    /// Logs a permission request from Claude Code that cannot be relayed.
    pub fn malformed(&self, params: &str) {
        let params: String = params.chars().take(300).collect();
        self.log.line(&format!(
            "dropped a malformed permission request from Claude Code: {params}"
        ));
    }

    /// Forgets a tool request whose call stopped waiting (timed out).
    pub fn give_up(&self, request_id: &str) {
        if let Some(pending) = self.lock().get_mut(request_id) {
            pending.answered = true;
            pending.waiter = None;
        }
    }

    /// A verdict from the broker: checked, applied once, and its outcome
    /// told to the session that sent it. `None`: dropped (logged).
    pub fn on_verdict(&self, from: &Sender, verdict: Verdict) -> Option<Applied> {
        let id = verdict.request_id.clone();
        let dropped = |why: &str| {
            self.log.line(&format!(
                "dropped a permission verdict ({}) for request {id} from {} (session {}…): {why}",
                verdict.behavior.as_str(),
                from.display_name,
                &from.session_key[..from.session_key.len().min(8)],
            ));
            None
        };
        let Some(client) = self.link.client() else {
            return dropped("not connected to the mesh");
        };
        let may_answer = from.member_id == client.welcome().member_id
            || self
                .lock()
                .get(&id)
                .is_some_and(|p| p.approvers.contains(&from.member_id));
        if !may_answer {
            return dropped(
                "it is not from this session's member, nor from a member it lets approve",
            );
        }
        if verdict.session_key != self.session.session_public_key {
            return dropped("it is for another session");
        }
        if !verdict.signed_by(&from.member_key, &self.session.mesh_id) {
            return dropped("its signature does not hold");
        }
        let outcome = {
            let mut pending = self.lock();
            match pending.get_mut(&id) {
                None => Err(OutcomeKind::Unknown),
                Some(p) if p.answered => Err(OutcomeKind::AlreadyAnswered),
                Some(p) if p.expires_at <= now_ms() => {
                    p.answered = true;
                    p.waiter = None;
                    Err(OutcomeKind::Expired)
                }
                Some(p) => {
                    p.answered = true;
                    Ok(p.waiter.take())
                }
            }
        };
        let reply = |kind: OutcomeKind| {
            let client = Arc::clone(&client);
            let to = from.session_key.clone();
            let text = Payload::PermissionOutcome(Outcome {
                request_id: id.clone(),
                outcome: kind,
            })
            .to_text();
            tokio::spawn(async move {
                let _ = client.send(&to, &text, Priority::Now).await;
            });
        };
        match outcome {
            Err(kind) => {
                reply(kind);
                dropped(match kind {
                    OutcomeKind::AlreadyAnswered => "the request was already answered",
                    OutcomeKind::Expired => "the request expired",
                    _ => "no such request is pending in this session",
                })
            }
            Ok(waiter) => {
                reply(OutcomeKind::Applied);
                self.log.line(&format!(
                    "permission request {id}: {} by {}",
                    verdict.behavior.as_str(),
                    from.display_name
                ));
                match waiter {
                    Some(waiter) => {
                        let _ = waiter.send(Answer {
                            behavior: verdict.behavior,
                            by: from.display_name.clone(),
                        });
                        Some(Applied::Tool)
                    }
                    None => Some(Applied::Channel {
                        request_id: id.clone(),
                        behavior: verdict.behavior,
                    }),
                }
            }
        }
    }
}
