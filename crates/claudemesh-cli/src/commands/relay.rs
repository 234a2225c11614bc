//! Permission requests as the answering side sees them: taken out of a
//! received message ([`take_request`], which also keeps it for `approve`),
//! and shown to a person ([`render`]) or a script ([`json`]). `inbox`,
//! `approve` and `stream subscribe` all show a request through these.

use crate::base::when;
use crate::session;
use crate::stores::config_store::JoinedMesh;
use crate::stores::permission_requests::{Pending, PermissionRequests};
pub use claudemesh_api::permission::Behavior;
use claudemesh_api::permission::Payload;
use claudemesh_client::Received;
use std::path::Path;

/// The permission request a message carries, when the session that sent
/// it is the one asking: one of this member's own, or another member's who
/// lets this one answer (their `approve` grant; their session checks it
/// again when the verdict comes, so a request from anyone else only ever
/// gets a verdict it drops). It is kept in `permission_requests.json` for
/// `approve`.
pub fn take_request(
    message: &Received,
    server: &str,
    mesh: &JoinedMesh,
    config_dir: &Path,
) -> Option<Pending> {
    let Some(Payload::PermissionRequest(request)) = Payload::parse(&message.text) else {
        return None;
    };
    if message.from.session_key != request.session_key {
        return None;
    }
    let pending = Pending {
        server: server.to_owned(),
        mesh_id: mesh.mesh_id.clone(),
        mesh_slug: mesh.slug.clone(),
        from_name: message.from.display_name.clone(),
        received_at: when::now_ms(),
        request,
    };
    PermissionRequests::new(config_dir).add(pending.clone(), when::now_ms());
    Some(pending)
}

/// Whether a message is a permission request (from anyone): the client
/// leaves those for the command that shows or keeps them to acknowledge.
pub fn is_request(message: &Received) -> bool {
    matches!(
        Payload::parse(&message.text),
        Some(Payload::PermissionRequest(_))
    )
}

/// A pending request for people, with the commands that answer it:
///
/// ```text
/// Ana asks to use Bash (permission tbxkq, answer before 19:15 UTC)
///   List the files
///   {"command":"ls"}
///   claudemesh approve tbxkq --mesh dev   |   claudemesh deny tbxkq --mesh dev
/// ```
pub fn render(pending: &Pending) -> String {
    let request = &pending.request;
    let until =
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(request.expires_at) * 1_000_000)
            .map_or_else(|_| "soon".to_owned(), clock);
    let mut text = format!(
        "{} asks to use {} (permission {}, answer before {until})\n",
        session::printable(&pending.from_name).replace('\n', " "),
        session::printable(&request.tool_name).replace('\n', " "),
        request.request_id,
    );
    for line in [&request.description, &request.input_preview] {
        let line = session::printable(line).replace('\n', " ");
        if !line.trim().is_empty() {
            text.push_str("  ");
            text.push_str(&line);
            text.push('\n');
        }
    }
    text.push_str(&format!(
        "  claudemesh approve {id} --mesh {mesh}   |   claudemesh deny {id} --mesh {mesh}\n",
        id = request.request_id,
        mesh = pending.mesh_slug
    ));
    text
}

/// `HH:MM UTC` of a time today, else its date too.
fn clock(at: time::OffsetDateTime) -> String {
    let date = when::date(at);
    if at.date() == when::now().date() {
        date.split_once(' ')
            .map_or(date.clone(), |(_, t)| t.to_owned())
    } else {
        date
    }
}

/// A pending request for scripts (`--json`).
pub fn json(pending: &Pending) -> serde_json::Value {
    let request = &pending.request;
    serde_json::json!({
        "request_id": request.request_id,
        "mesh": pending.mesh_slug,
        "from": pending.from_name,
        "session_key": request.session_key,
        "tool_name": request.tool_name,
        "description": request.description,
        "input_preview": request.input_preview,
        "expires_at": request.expires_at,
        "approve": format!("claudemesh approve {} --mesh {}", request.request_id, pending.mesh_slug),
        "deny": format!("claudemesh deny {} --mesh {}", request.request_id, pending.mesh_slug),
    })
}
