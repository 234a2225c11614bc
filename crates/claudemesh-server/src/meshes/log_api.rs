//! The mesh log over HTTP: `GET /api/my/meshes/{slug}/log` (pages, by
//! cursor) and `GET /api/my/meshes/{slug}/log/stream` (Server-Sent Events,
//! resumed with `Last-Event-ID`). Members read their own mesh's log only; a
//! mesh the caller is not in answers 404, like one that does not exist.
//!
//! A follower reads the database, not this instance's memory, so an entry
//! appended on any instance reaches it: the stream looks for new entries
//! every [`FOLLOW_EVERY`]. It is pulled: the next entries are read only
//! when the client has taken the last ones, so a client that stops reading
//! holds one small page, never a growing buffer.

use crate::app::state::AppState;
use crate::auth::caller::Caller;
use crate::http::error::{AppError, AppResult};
use crate::http::openapi::Unauthorized;
use crate::meshes::log::{self, Query as LogQuery};
use crate::meshes::mesh::my_mesh;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use claudemesh_api::ErrorBody;
use claudemesh_api::mesh_log::{CursorError, LogKind, cursor, parse_cursor};
use claudemesh_api::wire::{LogEntry, LogPage};
use futures_util::Stream;
use serde::Deserialize;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;
use utoipa_axum::{router::OpenApiRouter, routes};

/// How often a follower looks for new entries: well inside the second an
/// entry may take to reach it, from any instance.
pub const FOLLOW_EVERY: Duration = Duration::from_millis(200);
/// Entries in a page when `limit` is absent, and at most.
pub const DEFAULT_LIMIT: u32 = 20;
pub const MAX_LIMIT: u32 = 500;
/// Entries a follower reads at a time.
const FOLLOW_BATCH: u32 = 100;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(read_log))
        .routes(routes!(follow_log))
}

/// The query of a log read.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct LogParams {
    /// Entries after this cursor (an entry's `cursor`, or a page's), oldest
    /// first. Without it (and without `since_ms`): the newest `limit`.
    #[param(pattern = r"^[A-Za-z0-9_-]+\.[0-9]{1,18}$")]
    after: Option<String>,
    /// Entries at or after this time, in milliseconds since the Unix epoch.
    #[param(value_type = Option<i64>, minimum = 0)]
    since_ms: Option<String>,
    /// Only entries of this kind.
    #[param(
        pattern = r"^(member\.joined|member\.left|member\.removed|invite\.created|invite\.accepted|invite\.revoked|session\.connected|session\.disconnected|message\.sent|member\.role_changed|mesh\.renamed|mesh\.archived|mesh\.unarchived|grants\.changed)$"
    )]
    kind: Option<String>,
    /// Entries in the page, 1 to 500 (default 20).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    limit: Option<String>,
}

/// The query of a follow.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct FollowParams {
    /// Start after this cursor; `Last-Event-ID` wins when both are given.
    /// Without either, the stream starts with the next new entry.
    #[param(pattern = r"^[A-Za-z0-9_-]+\.[0-9]{1,18}$")]
    after: Option<String>,
    /// Only entries of this kind.
    #[param(
        pattern = r"^(member\.joined|member\.left|member\.removed|invite\.created|invite\.accepted|invite\.revoked|session\.connected|session\.disconnected|message\.sent|member\.role_changed|mesh\.renamed|mesh\.archived|mesh\.unarchived|grants\.changed)$"
    )]
    kind: Option<String>,
}

fn parse_kind(raw: Option<&str>) -> AppResult<Option<LogKind>> {
    raw.map(|raw| {
        LogKind::parse(raw).ok_or_else(|| {
            AppError::bad_request(format!(
                "Unknown log kind `{raw}`; the kinds are {}",
                LogKind::names()
            ))
        })
    })
    .transpose()
}

/// A cursor of this mesh's log. One of another mesh names no entry of this
/// log: 404, as for any other thing the caller's mesh does not have.
fn parse_after(mesh_id: &str, raw: Option<&str>) -> AppResult<Option<u64>> {
    raw.map(|raw| {
        parse_cursor(mesh_id, raw).map_err(|err| match err {
            CursorError::OtherMesh => AppError::not_found(err.to_string()),
            CursorError::Malformed => AppError::bad_request(err.to_string()),
        })
    })
    .transpose()
}

fn parse_number<T: std::str::FromStr>(
    raw: Option<&str>,
    what: &str,
    ok: impl Fn(&T) -> bool,
) -> AppResult<Option<T>> {
    raw.map(|raw| match raw.parse::<T>() {
        Ok(value) if ok(&value) && raw.bytes().all(|b| b.is_ascii_digit()) => Ok(value),
        _ => Err(AppError::bad_request(what.to_owned())),
    })
    .transpose()
}

/// Read a page of the mesh's log, oldest entry first: the newest entries,
/// or those after a cursor or since a time. Each entry carries the hash of
/// the one before, so a reader can verify the chain (`claudemesh log verify`).
#[utoipa::path(get, path = "/api/my/meshes/{slug}/log", tag = "mesh log",
    params(("slug" = String, Path, description = "Mesh slug"), LogParams),
    security(("bearer" = []), ("oauth2" = []), ("cookie" = [])),
    responses((status = 200, body = LogPage),
        (status = 400, body = ErrorBody, description = "`invalid_request`: a malformed cursor, an unknown kind, or `since_ms`/`limit` not a whole number in range"),
        Unauthorized,
        (status = 404, body = ErrorBody, description = "`not_found`: the caller has no mesh with this slug, or the cursor is of another mesh's log"),
        crate::auth::request_limit::RateLimited))]
async fn read_log(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
    params: Result<Query<LogParams>, QueryRejection>,
) -> AppResult<Json<LogPage>> {
    let Query(params) = params.map_err(|rejection| AppError::bad_request(rejection.body_text()))?;
    let mesh = my_mesh(&state, &caller.user.id, &slug).await?;
    let query = LogQuery {
        after: parse_after(&mesh.id, params.after.as_deref())?,
        since_ms: parse_number::<i64>(
            params.since_ms.as_deref(),
            "since_ms must be a whole number of milliseconds since the Unix epoch",
            |ms| *ms >= 0,
        )?,
        kind: parse_kind(params.kind.as_deref())?,
        limit: parse_number::<u32>(
            params.limit.as_deref(),
            "limit must be a whole number from 1 to 500",
            |n| (1..=MAX_LIMIT).contains(n),
        )?
        .unwrap_or(DEFAULT_LIMIT),
    };
    // The head first: every entry on the page is at or before it.
    let head = log::head(state.pool(), &mesh.id).await?;
    let entries = log::read(state.pool(), &mesh.id, &query).await?;
    let position = entries
        .last()
        .map(|entry| entry.seq)
        .or(query.after)
        .unwrap_or(if query.since_ms.is_some() {
            0
        } else {
            head.seq
        });
    Ok(Json(LogPage {
        cursor: cursor(&mesh.id, position),
        mesh_id: mesh.id,
        entries,
        head_seq: head.seq,
        head_hash: head.hash,
        first_seq: head.first_seq,
    }))
}

/// Follow the mesh's log as Server-Sent Events: each entry is one `entry`
/// event whose `id` is its cursor and whose data is the entry as JSON.
/// Reconnecting with `Last-Event-ID` resumes right after the last entry
/// received, without gaps or repeats. New entries arrive within a second,
/// whichever server instance wrote them.
#[utoipa::path(get, path = "/api/my/meshes/{slug}/log/stream", tag = "mesh log",
    params(("slug" = String, Path, description = "Mesh slug"), FollowParams,
        ("Last-Event-ID" = Option<String>, Header, description = "The cursor of the last entry received")),
    security(("bearer" = []), ("oauth2" = []), ("cookie" = [])),
    responses((status = 200, content_type = "text/event-stream", body = String,
            description = "An endless stream of `entry` events (data: a `LogEntry`), with keep-alive comments"),
        (status = 400, body = ErrorBody, description = "`invalid_request`: a malformed cursor, or an unknown kind"),
        Unauthorized,
        (status = 404, body = ErrorBody, description = "`not_found`: the caller has no mesh with this slug, or the cursor is of another mesh's log"),
        crate::auth::request_limit::RateLimited))]
async fn follow_log(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
    headers: HeaderMap,
    params: Result<Query<FollowParams>, QueryRejection>,
) -> AppResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let Query(params) = params.map_err(|rejection| AppError::bad_request(rejection.body_text()))?;
    let mesh = my_mesh(&state, &caller.user.id, &slug).await?;
    let last_event_id = headers
        .get("last-event-id")
        .map(|value| {
            value
                .to_str()
                .map_err(|_| AppError::bad_request("Last-Event-ID must be a cursor"))
        })
        .transpose()?;
    let kind = parse_kind(params.kind.as_deref())?;
    let after = match parse_after(&mesh.id, last_event_id.or(params.after.as_deref()))? {
        Some(after) => after,
        None => log::head(state.pool(), &mesh.id).await?.seq,
    };
    let follower = Follower {
        state,
        mesh_id: mesh.id,
        kind,
        after,
        ready: VecDeque::new(),
    };
    let stream = futures_util::stream::unfold(follower, |mut follower| async move {
        let event = follower.next().await?;
        Some((Ok(event), follower))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// One follower's position in a log.
struct Follower {
    state: AppState,
    mesh_id: String,
    kind: Option<LogKind>,
    after: u64,
    ready: VecDeque<LogEntry>,
}

impl Follower {
    /// The next entry as an event, waiting for one; `None` ends the stream
    /// (the server is stopping, or the log cannot be read).
    async fn next(&mut self) -> Option<Event> {
        let mut stopping = self.state.broker.stopping();
        loop {
            if let Some(entry) = self.ready.pop_front() {
                return Some(
                    Event::default()
                        .event("entry")
                        .id(entry.cursor.clone())
                        .json_data(&entry)
                        .unwrap_or_else(|_| Event::default().comment("unencodable entry")),
                );
            }
            if *stopping.borrow() {
                return None;
            }
            let query = LogQuery {
                after: Some(self.after),
                since_ms: None,
                kind: self.kind,
                limit: FOLLOW_BATCH,
            };
            match log::read(self.state.pool(), &self.mesh_id, &query).await {
                Ok(entries) if !entries.is_empty() => {
                    if let Some(last) = entries.last() {
                        self.after = last.seq;
                    }
                    self.ready.extend(entries);
                }
                Ok(_) => {
                    tokio::select! {
                        () = tokio::time::sleep(FOLLOW_EVERY) => {}
                        _ = stopping.changed() => return None,
                    }
                }
                Err(err) => {
                    tracing::warn!(mesh_id = %self.mesh_id, error = %err, "mesh log: a follower cannot read");
                    return None;
                }
            }
        }
    }
}
