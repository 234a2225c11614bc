//! The audit trail: security events go to the `audit_log` table and, as one
//! JSON line, to the server log. Callers pass only identifiers and metadata:
//! never a raw token, password or device code.

use crate::db::ids::new_id;
use serde_json::Value;

pub const SESSION_APPROVED: &str = "auth.cli.session.approved";
pub const SESSION_DENIED: &str = "auth.cli.session.denied";
pub const SESSION_CREATED: &str = "auth.cli.session.created";
pub const SESSION_REVOKED: &str = "auth.cli.session.revoked";
pub const PAT_CREATED: &str = "auth.cli.pat.created";
pub const PAT_REVOKED: &str = "auth.cli.pat.revoked";
pub const TOKEN_REVOKED_BY_POSSESSION: &str = "auth.cli.token.revoked_by_possession";
pub const ACCOUNT_REGISTERED: &str = "auth.account.registered";
pub const LOGIN: &str = "auth.login";
pub const LOGIN_FAILED: &str = "auth.login.failed";
pub const PASSWORD_CHANGED: &str = "auth.password.changed";
// Governance of a mesh (detail: `mesh_id` and the target).
pub const MEMBER_ROLE_CHANGED: &str = "mesh.member.role_changed";
pub const MESH_RENAMED: &str = "mesh.renamed";
pub const MESH_ARCHIVED: &str = "mesh.archived";
pub const MESH_UNARCHIVED: &str = "mesh.unarchived";
pub const MESH_DELETED: &str = "mesh.deleted";
pub const GRANT_CHANGED: &str = "mesh.grant.changed";
pub const DEFAULT_GRANTS_CHANGED: &str = "mesh.default_grants.changed";

/// Writes one audit event inside whatever executor (pool or transaction) the
/// change itself used, so the event and the change commit together.
pub async fn record<'e, E>(
    executor: E,
    at: i64,
    event: &str,
    user_id: Option<&str>,
    ip: Option<&str>,
    detail: Value,
) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let detail_text = detail.to_string();
    sqlx::query(
        "INSERT INTO audit_log (id, at, event, user_id, ip_address, detail) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(new_id("aud"))
    .bind(at)
    .bind(event)
    .bind(user_id)
    .bind(ip)
    .bind(&detail_text)
    .execute(executor)
    .await?;
    tracing::info!(target: "audit", event, user_id, ip, detail = %detail_text, "audit");
    Ok(())
}
