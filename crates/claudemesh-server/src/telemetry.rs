//! Usage telemetry from the CLI (DESIGN 11, docs/telemetry.md).
//!
//! `POST /api/telemetry` takes a batch of events, checks it against the
//! contract (`claudemesh_api::telemetry`: unknown fields and event names are
//! refused there) and against this server's own route templates (an
//! `endpoint` that is not one of them may be a URL, so the batch is
//! refused), and stores one row per event in `telemetry_events`. A resent
//! event (same id) is stored once. No authentication: the CLI sends none,
//! so batches are limited per client address instead (in this instance's
//! memory, like the per-token limit), past which the answer is 429 with
//! `Retry-After`. Bodies are bounded by the app-wide body limit and by
//! [`claudemesh_api::telemetry::MAX_EVENTS_PER_BATCH`] events.
//!
//! Rows older than `--telemetry-retention-days` are swept hourly while the
//! server runs ([`spawn_retention`]); `claudemesh-server telemetry-report`
//! reads the rest back ([`Report`]).

use crate::app::state::AppState;
use crate::auth::request_limit::RequestLimit;
use crate::clock::{DAY_MS, rfc3339};
use crate::http::error::{AppError, AppResult};
use crate::http::request::{ApiJson, ClientInfo};
use axum::Json;
use axum::extract::{Extension, FromRequestParts, State};
use axum::http::request::Parts;
use claudemesh_api::ErrorBody;
use claudemesh_api::telemetry::{TelemetryBatch, TelemetryEvent, TelemetryReceipt};
use serde::Serialize;
use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use utoipa_axum::{router::OpenApiRouter, routes};

pub use crate::app::config::TELEMETRY_BATCHES_PER_IP_PER_MINUTE as BATCHES_PER_MINUTE;
/// How often the retention sweep runs.
const SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// `templates`: the API's route templates, learnt once the router is built;
/// `per_minute`: batches one address may send in any minute (0: no limit).
pub fn routes(templates: RouteTemplates, per_minute: u32) -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(record_events))
        .layer(Extension(templates))
        .layer(Extension(Arc::new(RequestLimit::new(per_minute))))
}

/// The route templates of this server's API (`/api/my/meshes/{slug}`):
/// the only values an event's `endpoint` may hold.
#[derive(Clone, Default)]
pub struct RouteTemplates(Arc<OnceLock<BTreeSet<String>>>);

impl RouteTemplates {
    /// Takes the templates from the API's OpenAPI document (the first call counts).
    pub fn learn(&self, openapi: &utoipa::openapi::OpenApi) {
        let _ = self.0.set(openapi.paths.paths.keys().cloned().collect());
    }

    fn contains(&self, template: &str) -> bool {
        self.0.get().is_some_and(|known| known.contains(template))
    }
}

/// Completes the document's schemas of an event with what their derived
/// schemas leave out: an event takes no field beyond its own (the enum
/// refuses unknown fields, which the derive does not say of its variants),
/// and `endpoint` is one of the API's route templates (what
/// [`RouteTemplates`] checks).
pub fn document_events(openapi: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::schema::AdditionalProperties;
    use utoipa::openapi::{RefOr, Schema};
    let templates: Vec<String> = openapi
        .paths
        .paths
        .keys()
        .filter(|template| claudemesh_api::telemetry::is_route_template(template))
        .cloned()
        .collect();
    let Some(components) = openapi.components.as_mut() else {
        return;
    };
    if let Some(RefOr::T(Schema::OneOf(events))) = components.schemas.get_mut("TelemetryEvent") {
        for event in &mut events.items {
            if let RefOr::T(Schema::Object(event)) = event {
                event.additional_properties = Some(Box::new(AdditionalProperties::FreeForm(false)));
            }
        }
    }
    let endpoint = match components.schemas.get_mut("ApiErrorProperties") {
        Some(RefOr::T(Schema::Object(object))) => object.properties.get_mut("endpoint"),
        _ => None,
    };
    if let Some(RefOr::T(Schema::Object(endpoint))) = endpoint {
        endpoint.enum_values = Some(templates.into_iter().map(Into::into).collect());
    }
}

/// One batch's place in its client address's limit; refuses with 429 before
/// the body is read.
struct BatchQuota;

impl FromRequestParts<AppState> for BatchQuota {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> AppResult<Self> {
        let Ok(client) = ClientInfo::from_request_parts(parts, state).await;
        let Some(limit) = parts.extensions.get::<Arc<RequestLimit>>() else {
            return Ok(Self);
        };
        // An IPv6 host counts by its /64, as in `address_limits`.
        let address = crate::auth::address_limits::address_key(&client.ip);
        limit
            .check(&address, state.now())
            .map_err(|refused| AppError {
                message: format!(
                    "Too many telemetry batches from this address: at most {} a minute",
                    state.settings.telemetry_batches_per_minute
                )
                .into(),
                ..refused
            })?;
        Ok(Self)
    }
}

/// Record CLI usage events (no authentication; see docs/telemetry.md).
#[utoipa::path(post, path = "/api/telemetry", tag = "telemetry", request_body = TelemetryBatch,
    responses((status = 200, body = TelemetryReceipt), crate::http::openapi::JsonBodyRejected,
        (status = 429, body = ErrorBody, description = "`rate_limited`: too many batches from this client address (per server instance; 60 a minute by default)",
            headers(("Retry-After" = u64, description = "Seconds until a batch from this address is accepted again")))))]
async fn record_events(
    State(state): State<AppState>,
    _quota: BatchQuota,
    Extension(templates): Extension<RouteTemplates>,
    ApiJson(batch): ApiJson<TelemetryBatch>,
) -> AppResult<Json<TelemetryReceipt>> {
    if let Some(problem) = batch.problem() {
        return Err(AppError::bad_request(problem));
    }
    let rows = batch
        .events
        .iter()
        .map(|event| Row::of(event, &templates))
        .collect::<AppResult<Vec<_>>>()?;
    let received_at = state.now();
    let mut tx = state.pool().begin().await?;
    for row in &rows {
        sqlx::query(
            "INSERT INTO telemetry_events (id, install_id, name, cli_version, os, arch, \
             occurred_at, received_at, method, reason, user_id, command, exit_code, duration_ms, \
             authenticated, endpoint, status, error_code) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(row.id)
        .bind(&batch.install_id)
        .bind(row.name)
        .bind(&batch.cli_version)
        .bind(&batch.os)
        .bind(&batch.arch)
        .bind(row.occurred_at)
        .bind(received_at)
        .bind(row.method.clone())
        .bind(row.reason.clone())
        .bind(row.user_id.clone())
        .bind(row.command.clone())
        .bind(row.exit_code)
        .bind(row.duration_ms)
        .bind(row.authenticated)
        .bind(row.endpoint.clone())
        .bind(row.status)
        .bind(row.error_code.clone())
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(Json(TelemetryReceipt {
        accepted: u32::try_from(rows.len()).unwrap_or(u32::MAX),
    }))
}

/// An event as its row: one column per property.
#[derive(Default)]
struct Row<'a> {
    id: &'a str,
    name: &'a str,
    occurred_at: i64,
    method: Option<String>,
    reason: Option<String>,
    user_id: Option<String>,
    command: Option<String>,
    exit_code: Option<i64>,
    duration_ms: Option<i64>,
    authenticated: Option<i64>,
    endpoint: Option<String>,
    status: Option<i64>,
    error_code: Option<String>,
}

impl<'a> Row<'a> {
    fn of(event: &'a TelemetryEvent, templates: &RouteTemplates) -> AppResult<Self> {
        let occurred_at =
            time::OffsetDateTime::parse(event.at(), &time::format_description::well_known::Rfc3339)
                .ok()
                .and_then(|at| i64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok())
                .ok_or_else(|| {
                    AppError::bad_request(format!("{}: `at` is not an RFC 3339 time", event.name()))
                })?;
        let row = Row {
            id: event.id(),
            name: event.name(),
            occurred_at,
            ..Row::default()
        };
        Ok(match event {
            TelemetryEvent::LoginStarted { properties: p, .. } => Row {
                method: Some(wire_name(&p.method)),
                ..row
            },
            TelemetryEvent::LoginSucceeded { properties: p, .. } => Row {
                method: Some(wire_name(&p.method)),
                user_id: Some(p.user_id.clone()),
                ..row
            },
            TelemetryEvent::LoginFailed { properties: p, .. } => Row {
                method: Some(wire_name(&p.method)),
                reason: Some(wire_name(&p.reason)),
                ..row
            },
            TelemetryEvent::Logout { properties: p, .. } => Row {
                user_id: p.user_id.clone(),
                ..row
            },
            TelemetryEvent::CommandExecuted { properties: p, .. } => Row {
                command: Some(wire_name(&p.command)),
                exit_code: Some(i64::from(p.exit_code)),
                duration_ms: Some(i64::try_from(p.duration_ms).unwrap_or(i64::MAX)),
                authenticated: Some(i64::from(p.authenticated)),
                ..row
            },
            TelemetryEvent::ApiError { properties: p, .. } => {
                if !templates.contains(&p.endpoint) {
                    return Err(AppError::bad_request(
                        "cli.api.error: endpoint is not one of this server's route templates",
                    ));
                }
                Row {
                    endpoint: Some(p.endpoint.clone()),
                    status: Some(i64::from(p.status)),
                    error_code: p.error_code.map(|code| code.as_str().to_owned()),
                    ..row
                }
            }
        })
    }
}

/// An enum's name on the wire (`device-code`, `token_rejected`).
fn wire_name<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_default()
}

// ------------------------------------------------------------------ retention

/// Deletes the events received more than `days` days before `now`; 0 keeps
/// them forever. Returns how many went.
pub async fn sweep(pool: &sqlx::AnyPool, now: i64, days: u32) -> Result<u64, sqlx::Error> {
    if days == 0 {
        return Ok(0);
    }
    let done = sqlx::query("DELETE FROM telemetry_events WHERE received_at < $1")
        .bind(now - i64::from(days) * DAY_MS)
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}

/// Sweeps now and every hour until the returned task is aborted (when the
/// server stops). Nothing to do when `days` is 0.
pub fn spawn_retention(state: AppState, days: u32) -> Option<tokio::task::JoinHandle<()>> {
    (days > 0).then(|| {
        tokio::spawn(async move {
            let mut every = tokio::time::interval(SWEEP_EVERY);
            loop {
                every.tick().await;
                match sweep(state.pool(), state.now(), days).await {
                    Ok(0) => {}
                    Ok(swept) => tracing::info!(swept, days, "telemetry: old events deleted"),
                    Err(err) => {
                        tracing::warn!(error = %err, "telemetry: the retention sweep failed")
                    }
                }
            }
        })
    })
}

// --------------------------------------------------------------------- report

/// What `claudemesh-server telemetry-report` prints: the figures of the
/// events received in the last `days` days.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub days: u32,
    pub since: i64,
    pub events: i64,
    pub installs: i64,
    /// `(method, started, succeeded, failed)`, by method.
    pub logins: Vec<(String, i64, i64, i64)>,
    /// `(reason, count)`, most frequent first.
    pub failure_reasons: Vec<(String, i64)>,
    /// `(command, runs, failed runs, total duration in ms)`, most run first.
    pub commands: Vec<(String, i64, i64, i64)>,
    /// `(endpoint, status, error code, count)`, most frequent first.
    pub api_errors: Vec<(String, i64, Option<String>, i64)>,
}

/// Rows of a list shown at most.
const TOP: i64 = 15;

impl Report {
    pub async fn load(pool: &sqlx::AnyPool, now: i64, days: u32) -> Result<Self, sqlx::Error> {
        let since = now - i64::from(days) * DAY_MS;
        let (events, installs): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), COUNT(DISTINCT install_id) FROM telemetry_events WHERE received_at >= $1",
        )
        .bind(since)
        .fetch_one(pool)
        .await?;
        let by_name: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT method, name, COUNT(*) FROM telemetry_events \
             WHERE received_at >= $1 AND method IS NOT NULL GROUP BY method, name ORDER BY method",
        )
        .bind(since)
        .fetch_all(pool)
        .await?;
        let mut logins: Vec<(String, i64, i64, i64)> = Vec::new();
        for (method, name, count) in by_name {
            if logins.last().is_none_or(|(m, ..)| *m != method) {
                logins.push((method, 0, 0, 0));
            }
            if let Some(last) = logins.last_mut() {
                match name.as_str() {
                    "cli.login.started" => last.1 += count,
                    "cli.login.succeeded" => last.2 += count,
                    "cli.login.failed" => last.3 += count,
                    _ => {}
                }
            }
        }
        let failure_reasons = sqlx::query_as(
            "SELECT reason, COUNT(*) AS n FROM telemetry_events \
             WHERE received_at >= $1 AND name = 'cli.login.failed' \
             GROUP BY reason ORDER BY n DESC, reason LIMIT $2",
        )
        .bind(since)
        .bind(TOP)
        .fetch_all(pool)
        .await?;
        let commands = sqlx::query_as(
            "SELECT command, COUNT(*) AS n, \
             CAST(SUM(CASE WHEN exit_code = 0 THEN 0 ELSE 1 END) AS BIGINT), \
             CAST(SUM(duration_ms) AS BIGINT) \
             FROM telemetry_events WHERE received_at >= $1 AND name = 'cli.command.executed' \
             GROUP BY command ORDER BY n DESC, command LIMIT $2",
        )
        .bind(since)
        .bind(TOP)
        .fetch_all(pool)
        .await?;
        let api_errors = sqlx::query_as(
            "SELECT endpoint, CAST(status AS BIGINT), error_code, COUNT(*) AS n FROM telemetry_events \
             WHERE received_at >= $1 AND name = 'cli.api.error' \
             GROUP BY endpoint, status, error_code ORDER BY n DESC, endpoint, status LIMIT $2",
        )
        .bind(since)
        .bind(TOP)
        .fetch_all(pool)
        .await?;
        Ok(Self {
            days,
            since,
            events,
            installs,
            logins,
            failure_reasons,
            commands,
            api_errors,
        })
    }
}

/// `87.5%`; `-` with nothing to divide by.
fn percent(part: i64, whole: i64) -> String {
    if whole <= 0 {
        return "-".to_owned();
    }
    #[allow(clippy::cast_precision_loss)] // counts far below 2^52
    let share = part as f64 * 100.0 / whole as f64;
    format!("{share:.1}%")
}

/// Rows padded into columns (the last one not padded), two spaces apart.
fn table(out: &mut fmt::Formatter<'_>, header: &[&str], rows: &[Vec<String>]) -> fmt::Result {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::from(" ");
        for (i, (cell, width)) in row.iter().zip(&widths).enumerate() {
            line.push(' ');
            line.push_str(cell);
            if i + 1 < row.len() {
                line.push_str(&" ".repeat(width - cell.chars().count() + 1));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// A section of the report: a blank line and its heading, then its table,
/// or `none`.
fn section(
    out: &mut fmt::Formatter<'_>,
    heading: &str,
    headers: &[&str],
    rows: &[Vec<String>],
) -> fmt::Result {
    writeln!(out, "\n{heading}")?;
    if rows.is_empty() {
        writeln!(out, "  none")
    } else {
        table(out, headers, rows)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        let day_word = if self.days == 1 { "day" } else { "days" };
        writeln!(
            out,
            "claudemesh CLI telemetry, last {} {day_word} (since {})",
            self.days,
            rfc3339(self.since)
        )?;
        writeln!(
            out,
            "{} events from {} installations",
            self.events, self.installs
        )?;
        if self.events == 0 {
            return Ok(());
        }

        let (started, succeeded, failed) = self
            .logins
            .iter()
            .fold((0, 0, 0), |(a, b, c), (_, s, ok, f)| (a + s, b + ok, c + f));
        writeln!(out, "\nLogins")?;
        writeln!(
            out,
            "  {started} started, {succeeded} succeeded, {failed} failed: success rate {} (succeeded of started)",
            percent(succeeded, started)
        )?;
        if !self.logins.is_empty() {
            let rows: Vec<Vec<String>> = self
                .logins
                .iter()
                .map(|(method, s, ok, f)| {
                    vec![
                        method.clone(),
                        s.to_string(),
                        ok.to_string(),
                        f.to_string(),
                        percent(*ok, *s),
                    ]
                })
                .collect();
            table(
                out,
                &["method", "started", "succeeded", "failed", "success rate"],
                &rows,
            )?;
        }

        let reasons: Vec<Vec<String>> = self
            .failure_reasons
            .iter()
            .map(|(reason, n)| vec![reason.clone(), n.to_string(), percent(*n, failed)])
            .collect();
        section(
            out,
            "Login failure reasons",
            &["reason", "count", "share"],
            &reasons,
        )?;

        let commands: Vec<Vec<String>> = self
            .commands
            .iter()
            .map(|(command, runs, failed, total_ms)| {
                vec![
                    command.clone(),
                    runs.to_string(),
                    percent(*failed, *runs),
                    (total_ms / runs.max(&1)).to_string(),
                ]
            })
            .collect();
        section(
            out,
            "Most used commands",
            &["command", "runs", "failed", "mean ms"],
            &commands,
        )?;

        let errors: Vec<Vec<String>> = self
            .api_errors
            .iter()
            .map(|(endpoint, status, code, n)| {
                vec![
                    endpoint.clone(),
                    status.to_string(),
                    code.clone().unwrap_or_else(|| "-".to_owned()),
                    n.to_string(),
                ]
            })
            .collect();
        section(
            out,
            "API errors",
            &["endpoint", "status", "error", "count"],
            &errors,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_have_one_decimal_and_survive_zero() {
        assert_eq!(percent(7, 8), "87.5%");
        assert_eq!(percent(0, 0), "-");
        assert_eq!(percent(1, 3), "33.3%");
    }

    #[test]
    fn the_report_reads_as_a_table() {
        let report = Report {
            days: 30,
            since: 0,
            events: 9,
            installs: 2,
            logins: vec![("device-code".into(), 3, 2, 1), ("pat".into(), 1, 1, 0)],
            failure_reasons: vec![("denied".into(), 1)],
            commands: vec![("list".into(), 2, 1, 300)],
            api_errors: vec![(
                "/api/my/meshes/{slug}".into(),
                404,
                Some("not_found".into()),
                1,
            )],
        };
        let text = report.to_string();
        assert!(text.contains("9 events from 2 installations"), "{text}");
        assert!(
            text.contains("4 started, 3 succeeded, 1 failed: success rate 75.0%"),
            "{text}"
        );
        assert!(
            text.contains("  device-code  3        2          1       66.7%"),
            "{text}"
        );
        assert!(text.contains("  denied  1      100.0%"), "{text}");
        assert!(text.contains("  list     2     50.0%   150"), "{text}");
        assert!(
            text.contains("  /api/my/meshes/{slug}  404     not_found  1"),
            "{text}"
        );
    }

    #[test]
    fn an_empty_report_says_so() {
        let report = Report {
            days: 1,
            since: 0,
            events: 0,
            installs: 0,
            logins: vec![],
            failure_reasons: vec![],
            commands: vec![],
            api_errors: vec![],
        };
        assert_eq!(
            report.to_string(),
            "claudemesh CLI telemetry, last 1 day (since 1970-01-01T00:00:00Z)\n0 events from 0 installations\n"
        );
    }
}
