//! `claudemesh whoami [--sessions]`: who the token belongs to, which server,
//! where the token came from, its kind, name, expiry and last use; with
//! `--sessions`, every CLI session of the account, marking this one.
//!
//! The report is the command's result, so it goes to stdout (as text, or as
//! JSON with `--json`); the expiry warning is a message and goes to stderr.

use crate::base::exit::{CliError, CliResult, tokens_page};
use crate::base::when;
use crate::cli::WhoamiArgs;
use crate::context::Context;
use crate::stores::auth_store::TokenSource;
use claudemesh_api::TokenKind;
use claudemesh_api::wire::{SessionInfo, TokenInfo, UserSummary};
use serde::Serialize;
use std::fmt::Write as _;
use std::io::Write as _;
use time::OffsetDateTime;

/// Warn when the token expires within this many days.
pub const EXPIRY_WARNING_DAYS: i64 = 7;

#[derive(Serialize)]
struct WhoamiJson<'a> {
    user: &'a UserSummary,
    server: &'a str,
    /// `flag`, `env`, `file` (the saved login, its token in auth.json) or
    /// `keyring` (the saved login, its token in the OS credential store).
    source: TokenSource,
    /// The saved login's path when the token came from it.
    auth_file: Option<String>,
    /// The token's metadata from the server (never the token itself).
    token: Option<&'a TokenInfo>,
    expires_soon: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    sessions: Option<&'a [SessionInfo]>,
}

/// Whether `expires_at` falls within the warning window from `now`.
pub fn expires_soon(expires_at: Option<&str>, now: OffsetDateTime) -> bool {
    expires_at
        .and_then(when::parse)
        .is_some_and(|at| at - now < time::Duration::days(EXPIRY_WARNING_DAYS))
}

pub fn run(args: &WhoamiArgs, ctx: &Context) -> CliResult<()> {
    let credential = ctx.credential()?.ok_or_else(CliError::not_logged_in)?;
    let server = ctx.server_for(&credential)?;
    let api = ctx.api(&server, Some(credential.token.clone()));
    let who = api.whoami().map_err(|err| err.into_cli(&server))?;
    let sessions = if args.sessions {
        Some(
            api.sessions()
                .map_err(|err| err.into_cli(&server))?
                .sessions,
        )
    } else {
        None
    };
    let now = when::now();
    let token = who.credential.token.as_ref();
    let soon = expires_soon(token.and_then(|t| t.expires_at.as_deref()), now);
    let auth_file = credential
        .source
        .is_saved_login()
        .then(|| ctx.store().path().display().to_string());

    if soon {
        let at = token
            .and_then(|t| t.expires_at.as_deref())
            .map(|at| when::describe(at, now))
            .unwrap_or_default();
        let what = match credential.token.kind() {
            TokenKind::Session => "run claudemesh login to get a new one".to_owned(),
            TokenKind::Pat => format!(
                "create a new one on the CLI tokens page ({})",
                tokens_page(&server)
            ),
        };
        ctx.out.warn(format!("This token expires {at}; {what}"));
    }

    if ctx.out.json {
        ctx.out.json(&WhoamiJson {
            user: &who.user,
            server: &server,
            source: credential.source,
            auth_file,
            token,
            expires_soon: soon,
            sessions: sessions.as_deref(),
        });
        return Ok(());
    }
    let source = credential.source.describe(&ctx.store().path());
    let mut report = report(&who.user, &server, &source, token, now);
    if let Some(sessions) = &sessions {
        report.push('\n');
        report.push_str(&sessions_report(sessions, credential.token.kind(), now));
    }
    let _ = std::io::stdout().lock().write_all(report.as_bytes());
    Ok(())
}

fn report(
    user: &UserSummary,
    server: &str,
    source: &str,
    token: Option<&TokenInfo>,
    now: OffsetDateTime,
) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "Logged in to {server} as {} ({})",
        user.name, user.email
    );
    if let Some(info) = token {
        let kind = match info.kind {
            TokenKind::Pat => "PAT",
            TokenKind::Session => "CLI session",
        };
        let _ = writeln!(
            text,
            "  Token:      {kind} \"{}\" ({}…)",
            info.name, info.display_prefix
        );
        let _ = writeln!(text, "  From:       {source}");
        let _ = writeln!(
            text,
            "  Created:    {}",
            when::describe(&info.created_at, now)
        );
        let expires = info
            .expires_at
            .as_deref()
            .map_or_else(|| "never".to_owned(), |at| when::describe(at, now));
        let _ = writeln!(text, "  Expires:    {expires}");
        let used = info
            .last_used_at
            .as_deref()
            .map_or_else(|| "never".to_owned(), |at| when::describe(at, now));
        let _ = writeln!(text, "  Last used:  {used}");
    } else {
        let _ = writeln!(text, "  From:       {source}");
    }
    text
}

fn sessions_report(
    sessions: &[SessionInfo],
    current_kind: TokenKind,
    now: OffsetDateTime,
) -> String {
    let mut text = String::new();
    let _ = writeln!(text, "CLI sessions ({}):", sessions.len());
    for session in sessions {
        let info = &session.token;
        let device = info.device.as_ref().map_or_else(
            || info.name.clone(),
            |d| format!("{} ({}, {})", d.name, d.os, d.arch),
        );
        let created = when::parse(&info.created_at)
            .map_or_else(|| info.created_at.clone(), |at| when::relative(at, now));
        let seen = info
            .last_used_at
            .as_deref()
            .and_then(when::parse)
            .map_or_else(|| "never".to_owned(), |at| when::relative(at, now));
        let (marker, note) = if session.current {
            ("*", "  ← this session")
        } else {
            (" ", "")
        };
        let _ = writeln!(
            text,
            "{marker} {device} · created {created} · last seen {seen}{note}"
        );
    }
    if sessions.is_empty() {
        let _ = writeln!(text, "  (none)");
    }
    if current_kind == TokenKind::Pat {
        let _ = writeln!(
            text,
            "(This command used a PAT, which is not a CLI session.)"
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use claudemesh_api::wire::DeviceInfo;

    fn now() -> OffsetDateTime {
        when::parse("2026-03-01T12:00:00Z").unwrap()
    }

    fn info(kind: TokenKind, expires_at: Option<&str>) -> TokenInfo {
        TokenInfo {
            id: "tok_1".into(),
            kind,
            name: "laptop".into(),
            display_prefix: "cm_session_abcdefgh".into(),
            created_at: "2026-02-27T12:00:00Z".into(),
            last_used_at: Some("2026-03-01T11:00:00Z".into()),
            expires_at: expires_at.map(str::to_owned),
            device: Some(DeviceInfo {
                name: "laptop".into(),
                os: "linux".into(),
                arch: "x86_64".into(),
            }),
        }
    }

    #[test]
    fn expiry_within_seven_days_is_soon() {
        assert!(expires_soon(Some("2026-03-07T12:00:00Z"), now()));
        assert!(expires_soon(Some("2026-02-01T12:00:00Z"), now()));
        assert!(!expires_soon(Some("2026-03-08T12:00:01Z"), now()));
        assert!(!expires_soon(None, now()));
        assert!(!expires_soon(Some("garbage"), now()));
    }

    #[test]
    fn the_report_names_the_account_server_source_and_token() {
        let user = UserSummary {
            id: "usr_1".into(),
            name: "Alice".into(),
            email: "alice@example.com".into(),
        };
        let token = info(TokenKind::Pat, None);
        let text = report(&user, "http://s", "--token flag", Some(&token), now());
        assert!(text.starts_with("Logged in to http://s as Alice (alice@example.com)\n"));
        assert!(text.contains("PAT \"laptop\" (cm_session_abcdefgh…)"));
        assert!(text.contains("From:       --token flag"));
        assert!(text.contains("Expires:    never"));
        assert!(text.contains("Last used:  1 hour ago"));
        assert!(text.contains("Created:    2 days ago (2026-02-27 12:00 UTC)"));
    }

    #[test]
    fn the_current_session_is_marked() {
        let sessions = [
            SessionInfo {
                token: info(TokenKind::Session, None),
                current: true,
            },
            SessionInfo {
                token: TokenInfo {
                    last_used_at: None,
                    device: None,
                    name: "old box".into(),
                    ..info(TokenKind::Session, None)
                },
                current: false,
            },
        ];
        let text = sessions_report(&sessions, TokenKind::Session, now());
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines[0], "CLI sessions (2):");
        assert_eq!(
            lines[1],
            "* laptop (linux, x86_64) · created 2 days ago · last seen 1 hour ago  ← this session"
        );
        assert_eq!(lines[2], "  old box · created 2 days ago · last seen never");
        let pat = sessions_report(&sessions[1..], TokenKind::Pat, now());
        assert!(pat.contains("used a PAT"));
    }
}
