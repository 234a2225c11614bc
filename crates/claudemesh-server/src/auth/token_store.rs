//! The API tokens: CLI session tokens (`cm_session_…`) and personal access
//! tokens (`cm_pat_…`), minted, verified and revoked. The routes that expose
//! them are [`crate::auth::tokens`]; [`crate::auth::caller`] verifies through here, and
//! nothing here depends on either.
//!
//! Only the SHA-256 of a token is stored, so verifying one is one indexed
//! read. `last_used_at`, and the sliding 90-day expiry of session tokens, are
//! written at most once a minute per token: a read-mostly API does not turn
//! into a write per request.

use crate::app::state::AppState;
use crate::auth::credential_mail;
use crate::clock::{DAY_MS, MINUTE_MS, rfc3339};
use crate::db::audit;
use crate::db::ids::new_id;
use crate::http::error::{AppError, AppResult};
use axum::http::StatusCode;
use claudemesh_api::wire::{DeviceInfo, TokenInfo, UserSummary};
use claudemesh_api::{ErrorCode, Token, TokenKind};
use serde_json::json;

/// Session tokens live this long past their last use.
pub const SESSION_LIFETIME_MS: i64 = 90 * DAY_MS;
/// `last_used_at` (and a session's expiry) move at most this often.
pub const TOUCH_INTERVAL_MS: i64 = MINUTE_MS;
/// The PAT lifetimes offered, in days; `None` (never) is offered too.
pub use claudemesh_api::rules::PAT_EXPIRY_DAYS;
pub const DEFAULT_PAT_EXPIRY_DAYS: u32 = 365;
const MAX_NAME_CHARS: usize = claudemesh_api::rules::MAX_LABEL_CHARS;

/// A token row, as stored (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TokenRecord {
    pub id: String,
    pub user_id: String,
    #[sqlx(try_from = "String")]
    pub kind: TokenKind,
    pub name: String,
    pub display_prefix: String,
    pub device_name: Option<String>,
    pub device_os: Option<String>,
    pub device_arch: Option<String>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// The columns of [`TokenRecord`], for `concat!` into static SQL.
macro_rules! token_columns {
    () => {
        "t.id, t.user_id, t.kind, t.name, t.display_prefix, t.device_name, \
         t.device_os, t.device_arch, t.created_at, t.last_used_at, t.expires_at, t.revoked_at"
    };
}

impl TokenRecord {
    pub fn kind(&self) -> TokenKind {
        self.kind
    }

    pub fn info(&self) -> TokenInfo {
        let device = match (&self.device_name, &self.device_os, &self.device_arch) {
            (Some(name), Some(os), Some(arch)) => Some(DeviceInfo {
                name: name.clone(),
                os: os.clone(),
                arch: arch.clone(),
            }),
            _ => None,
        };
        TokenInfo {
            id: self.id.clone(),
            kind: self.kind(),
            name: self.name.clone(),
            display_prefix: self.display_prefix.clone(),
            created_at: rfc3339(self.created_at),
            last_used_at: self.last_used_at.map(rfc3339),
            expires_at: self.expires_at.map(rfc3339),
            device,
        }
    }
}

/// Mints a token and stores its hash. Runs in the caller's executor so that a
/// device-code claim and its token commit together.
pub async fn mint<'e, E>(
    executor: E,
    now: i64,
    user_id: &str,
    kind: TokenKind,
    name: &str,
    device: Option<&DeviceInfo>,
    expires_at: Option<i64>,
) -> Result<(Token, TokenRecord), sqlx::Error>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let token = Token::generate(kind);
    let record = TokenRecord {
        id: new_id("tok"),
        user_id: user_id.to_owned(),
        kind,
        name: name.to_owned(),
        display_prefix: token.display_prefix(),
        device_name: device.map(|d| d.name.clone()),
        device_os: device.map(|d| d.os.clone()),
        device_arch: device.map(|d| d.arch.clone()),
        created_at: now,
        last_used_at: None,
        expires_at,
        revoked_at: None,
    };
    sqlx::query(
        "INSERT INTO api_tokens (id, user_id, kind, token_hash, display_prefix, name, \
         device_name, device_os, device_arch, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(&record.id)
    .bind(&record.user_id)
    .bind(record.kind.as_str())
    .bind(token.digest())
    .bind(&record.display_prefix)
    .bind(&record.name)
    .bind(&record.device_name)
    .bind(&record.device_os)
    .bind(&record.device_arch)
    .bind(now)
    .bind(expires_at)
    .execute(executor)
    .await?;
    Ok((token, record))
}

#[derive(Debug, PartialEq, Eq, sqlx::FromRow)]
struct AuthRow {
    #[sqlx(flatten)]
    token: TokenRecord,
    user_name: String,
    user_email: String,
}

/// The token row and its owner, for one digest: the only query on the
/// authenticated hot path.
const FIND_BY_DIGEST: &str = concat!(
    "SELECT ",
    token_columns!(),
    ", u.name AS user_name, u.email AS user_email \
     FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = $1"
);

/// Looks a token up by digest: inline on SQLite (see [`crate::db::sqlite_reader`]),
/// through the pool otherwise, or when the inline read cannot be done.
async fn find_by_digest(state: &AppState, digest: &str) -> AppResult<Option<AuthRow>> {
    if let Some(reader) = &state.db.sqlite_reader {
        match find_inline(reader, digest) {
            Ok(found) => return Ok(found),
            Err(err) => tracing::warn!(error = %err, "inline token lookup failed; using the pool"),
        }
    }
    Ok(find_through_pool(state.pool(), digest).await?)
}

fn find_inline(
    reader: &crate::db::sqlite_reader::SqliteReader,
    digest: &str,
) -> rusqlite::Result<Option<AuthRow>> {
    reader.read(|conn| {
        let mut statement = conn.prepare_cached(FIND_BY_DIGEST)?;
        let mut rows = statement.query([digest])?;
        rows.next()?.map(auth_row_from_sqlite).transpose()
    })
}

async fn find_through_pool(pool: &sqlx::AnyPool, digest: &str) -> sqlx::Result<Option<AuthRow>> {
    sqlx::query_as(FIND_BY_DIGEST)
        .bind(digest)
        .fetch_optional(pool)
        .await
}

/// Reads a [`FIND_BY_DIGEST`] row (columns in `token_columns!` order).
fn auth_row_from_sqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<AuthRow> {
    Ok(AuthRow {
        token: TokenRecord {
            id: row.get(0)?,
            user_id: row.get(1)?,
            kind: TokenKind::try_from(row.get::<_, String>(2)?).map_err(|err| {
                rusqlite::Error::FromSqlConversionFailure(
                    2,
                    rusqlite::types::Type::Text,
                    Box::new(err),
                )
            })?,
            name: row.get(3)?,
            display_prefix: row.get(4)?,
            device_name: row.get(5)?,
            device_os: row.get(6)?,
            device_arch: row.get(7)?,
            created_at: row.get(8)?,
            last_used_at: row.get(9)?,
            expires_at: row.get(10)?,
            revoked_at: row.get(11)?,
        },
        user_name: row.get(12)?,
        user_email: row.get(13)?,
    })
}

/// Checks a bearer token against the database: known, not revoked, not
/// expired. Then records the use (at most once a minute). Its span names the
/// token by id once found, never by value; at debug level, so the hot path
/// pays for it only when asked (`RUST_LOG=claudemesh_server=debug`).
#[tracing::instrument(
    name = "authenticate",
    level = "debug",
    skip_all,
    fields(token_id, user_id)
)]
pub async fn authenticate(state: &AppState, bearer: &str) -> AppResult<(UserSummary, TokenRecord)> {
    let token = Token::parse(bearer).map_err(|err| {
        AppError::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::InvalidToken,
            format!("Malformed token: {err}"),
        )
    })?;
    let row = find_by_digest(state, &token.digest())
        .await?
        .ok_or_else(AppError::invalid_token)?;
    let mut record = row.token;
    let span = tracing::Span::current();
    span.record("token_id", record.id.as_str());
    span.record("user_id", record.user_id.as_str());
    let now = state.now();
    if record.revoked_at.is_some() {
        return Err(AppError::invalid_token());
    }
    if record.expires_at.is_some_and(|at| at <= now) {
        return Err(AppError::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::TokenExpired,
            "Authentication failed (token expired)",
        ));
    }
    if record
        .last_used_at
        .is_none_or(|at| at <= now - TOUCH_INTERVAL_MS)
    {
        touch(state, &mut record, now).await?;
    }
    let user = UserSummary {
        id: record.user_id.clone(),
        name: row.user_name,
        email: row.user_email,
    };
    Ok((user, record))
}

/// Records a use. The condition repeats the staleness test so that, of many
/// requests (on many instances) racing past the minute, one writes.
async fn touch(state: &AppState, record: &mut TokenRecord, now: i64) -> AppResult<()> {
    let sliding_expiry = (record.kind() == TokenKind::Session).then_some(now + SESSION_LIFETIME_MS);
    sqlx::query(
        "UPDATE api_tokens SET last_used_at = $1, expires_at = COALESCE($2, expires_at) \
         WHERE id = $3 AND (last_used_at IS NULL OR last_used_at <= $4)",
    )
    .bind(now)
    .bind(sliding_expiry)
    .bind(&record.id)
    .bind(now - TOUCH_INTERVAL_MS)
    .execute(state.pool())
    .await?;
    record.last_used_at = Some(now);
    if sliding_expiry.is_some() {
        record.expires_at = sliding_expiry;
    }
    Ok(())
}

fn pat_expiry(requested: Option<Option<u32>>, now: i64) -> AppResult<Option<i64>> {
    match requested.unwrap_or(Some(DEFAULT_PAT_EXPIRY_DAYS)) {
        None => Ok(None),
        Some(days) if PAT_EXPIRY_DAYS.contains(&days) => Ok(Some(now + i64::from(days) * DAY_MS)),
        Some(_) => Err(AppError::bad_request(
            "expires_in_days must be 30, 90, 365, or null for a token that never expires",
        )),
    }
}

/// Checks a human-given name ([`claudemesh_api::rules::is_label`], which
/// the OpenAPI document states): at most 100 characters as sent, something
/// besides spaces, no control characters. Returns it trimmed.
pub fn clean_name(raw: &str, what: &str) -> AppResult<String> {
    let name = raw.trim();
    if name.is_empty() || raw.chars().count() > MAX_NAME_CHARS {
        return Err(AppError::bad_request(format!(
            "{what} must be 1 to {MAX_NAME_CHARS} characters"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(AppError::bad_request(format!(
            "{what} must not contain control characters"
        )));
    }
    Ok(name.to_owned())
}

/// Checks the name and lifetime, mints a PAT and audits it (shared by the
/// JSON API and the tokens page), then mails the account about it in
/// `lang`. `expires_in_days`: `None` for the default, `Some(None)` for never.
pub async fn create_pat_for(
    state: &AppState,
    user_id: &str,
    ip: &str,
    lang: crate::text::i18n::Lang,
    name: &str,
    expires_in_days: Option<Option<u32>>,
) -> AppResult<(Token, TokenRecord)> {
    let name = clean_name(name, "name")?;
    let now = state.now();
    let expires_at = pat_expiry(expires_in_days, now)?;
    let mut tx = state.pool().begin().await?;
    let (token, record) = mint(
        &mut *tx,
        now,
        user_id,
        TokenKind::Pat,
        &name,
        None,
        expires_at,
    )
    .await?;
    audit::record(
        &mut *tx,
        now,
        audit::PAT_CREATED,
        Some(user_id),
        Some(ip),
        json!({ "token_id": record.id, "name": name, "expires_at": expires_at }),
    )
    .await?;
    tx.commit().await?;
    credential_mail::notify(
        state,
        credential_mail::NewCredential {
            user_id: user_id.to_owned(),
            token_id: record.id.clone(),
            kind: TokenKind::Pat,
            label: name,
            ip: Some(ip.to_owned()),
            at: now,
            lang,
        },
    )
    .await;
    Ok((token, record))
}

/// The user's live (not revoked, not expired) tokens of one kind, newest first.
pub async fn list_of_kind(
    state: &AppState,
    user_id: &str,
    kind: TokenKind,
) -> AppResult<Vec<TokenRecord>> {
    let rows = sqlx::query_as(concat!(
        "SELECT ",
        token_columns!(),
        " FROM api_tokens t \
         WHERE t.user_id = $1 AND t.kind = $2 AND t.revoked_at IS NULL \
         AND (t.expires_at IS NULL OR t.expires_at > $3) ORDER BY t.created_at DESC, t.id"
    ))
    .bind(user_id)
    .bind(kind.as_str())
    .bind(state.now())
    .fetch_all(state.pool())
    .await?;
    Ok(rows)
}

/// Revokes one of the caller's tokens of the given kind. Someone else's token
/// is answered exactly like a missing one.
pub async fn revoke_owned(
    state: &AppState,
    user_id: &str,
    token_id: &str,
    kind: TokenKind,
    ip: &str,
) -> AppResult<()> {
    let now = state.now();
    let mut tx = state.pool().begin().await?;
    let revoked = sqlx::query(
        "UPDATE api_tokens SET revoked_at = $1 \
         WHERE id = $2 AND user_id = $3 AND kind = $4 AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(token_id)
    .bind(user_id)
    .bind(kind.as_str())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if revoked == 0 {
        return Err(AppError::not_found(match kind {
            TokenKind::Pat => "No such token",
            TokenKind::Session => "No such session",
        }));
    }
    let event = match kind {
        TokenKind::Pat => audit::PAT_REVOKED,
        TokenKind::Session => audit::SESSION_REVOKED,
    };
    audit::record(
        &mut *tx,
        now,
        event,
        Some(user_id),
        Some(ip),
        json!({ "token_id": token_id }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Revokes every CLI session token of a user (password change); PATs stay.
pub async fn revoke_all_sessions<'e, E>(
    executor: E,
    user_id: &str,
    now: i64,
) -> Result<u64, sqlx::Error>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let result = sqlx::query(
        "UPDATE api_tokens SET revoked_at = $1 \
         WHERE user_id = $2 AND kind = 'session' AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(user_id)
    .execute(executor)
    .await?;
    Ok(result.rows_affected())
}

/// Revokes the token, whoever owns it (possession is the proof), and audits
/// it; a token that is unknown or already revoked changes nothing.
pub async fn revoke_by_possession(state: &AppState, token: &Token, ip: &str) -> AppResult<()> {
    let now = state.now();
    let mut tx = state.pool().begin().await?;
    let revoked: Option<(String, String)> = sqlx::query_as(
        "UPDATE api_tokens SET revoked_at = $1 WHERE token_hash = $2 AND revoked_at IS NULL \
         RETURNING id, user_id",
    )
    .bind(now)
    .bind(token.digest())
    .fetch_optional(&mut *tx)
    .await?;
    if let Some((token_id, user_id)) = revoked {
        let detail = json!({ "token_id": token_id, "kind": token.kind().as_str() });
        audit::record(
            &mut *tx,
            now,
            audit::TOKEN_REVOKED_BY_POSSESSION,
            Some(&user_id),
            Some(ip),
            detail,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::pool::Db;

    /// The hot path reads a token row with rusqlite, everything else with
    /// sqlx: for the same row, both give the same record.
    #[tokio::test]
    async fn the_inline_sqlite_reader_and_sqlx_read_the_same_record() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(None, dir.path(), None).await.unwrap();
        sqlx::query(
            "INSERT INTO users (id, email, email_normalized, name, password_hash, created_at, password_changed_at) \
             VALUES ('u1', 'Ada@example.com', 'ada@example.com', 'Ada', 'x', 1, 1)",
        )
        .execute(&db.pool)
        .await
        .unwrap();
        let device = DeviceInfo {
            name: "Ada's laptop".into(),
            os: "linux".into(),
            arch: "x86_64".into(),
        };
        let mut digests = Vec::new();
        for (kind, device, expires_at) in [
            (TokenKind::Session, Some(&device), Some(5_000)),
            (TokenKind::Pat, None, None),
        ] {
            let (token, _) = mint(&db.pool, 1_000, "u1", kind, "a name", device, expires_at)
                .await
                .unwrap();
            digests.push(token.digest());
        }
        // A used, then revoked, token reads the same too.
        sqlx::query(
            "UPDATE api_tokens SET last_used_at = 2000, revoked_at = 3000 WHERE kind = 'pat'",
        )
        .execute(&db.pool)
        .await
        .unwrap();
        let reader = db
            .sqlite_reader
            .as_ref()
            .expect("SQLite has an inline reader");
        for digest in &digests {
            let inline = find_inline(reader, digest).unwrap().expect("found inline");
            let pooled = find_through_pool(&db.pool, digest)
                .await
                .unwrap()
                .expect("found");
            assert_eq!(inline, pooled);
            assert_eq!(inline.user_email, "Ada@example.com");
        }
        assert!(find_inline(reader, "no such digest").unwrap().is_none());
    }
}
