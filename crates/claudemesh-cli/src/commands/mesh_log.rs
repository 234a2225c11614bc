//! `claudemesh log tail` and `claudemesh log verify`: a mesh's log, read
//! over the API (`GET /api/my/meshes/{slug}/log`, followed as Server-Sent
//! Events), and its hash chain checked on this machine with
//! `claudemesh_api::mesh_log`, so a verdict does not rest on the server's
//! word about its own log.

use crate::api::{ApiError, LogRead};
use crate::base::closed_stdout;
use crate::base::exit::{CliError, CliResult, Exit};
use crate::base::output::Output;
use crate::base::when;
use crate::cli::{LogCommand, LogTailArgs, LogVerifyArgs};
use crate::context::{Account, Context};
use crate::session::{self, Interrupt};
use claudemesh_api::Slug;
use claudemesh_api::mesh_log::{ChainVerifier, LogKind};
use claudemesh_api::wire::LogEntry;
use serde::Serialize;
use std::io::Write;
use std::time::Duration;

/// Entries a page of `log verify` asks for.
const VERIFY_PAGE: u32 = 500;
/// Reconnections of a follow in a row before it gives up (exit 4).
const MAX_RECONNECTS: u32 = 5;

pub fn run(command: &LogCommand, ctx: &Context) -> CliResult<()> {
    match command {
        LogCommand::Tail(args) => tail(args, ctx),
        LogCommand::Verify(args) => verify(args, ctx),
    }
}

/// `--since`: a duration back from `now_ms` (`90s`, `15m`, `2h`, `7d`) or
/// an RFC 3339 time; milliseconds since the Unix epoch.
pub fn parse_since(text: &str, now_ms: i64) -> Option<i64> {
    let text = text.trim();
    if let Some(at) = when::parse(text) {
        return i64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok();
    }
    let unit_at = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(unit_at);
    let number: i64 = number.parse().ok()?;
    let unit_ms: i64 = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        _ => return None,
    };
    number
        .checked_mul(unit_ms)
        .and_then(|back| now_ms.checked_sub(back))
        .filter(|ms| *ms >= 0)
}

fn parse_kind(text: Option<&str>) -> CliResult<Option<LogKind>> {
    text.map(|text| {
        LogKind::parse(text.trim()).ok_or_else(|| {
            CliError::invalid_args(format!("Unknown log kind `{text}`"))
                .with_hint(format!("The kinds are {}.", LogKind::names()))
        })
    })
    .transpose()
}

fn slug_of(slug: &str) -> CliResult<Slug> {
    Slug::parse(slug).map_err(|err| CliError::failure(format!("A joined mesh's slug: {err}")))
}

fn tail(args: &LogTailArgs, ctx: &Context) -> CliResult<()> {
    // Bad input is refused before any network call.
    let since_ms = args
        .since
        .as_deref()
        .map(|text| {
            parse_since(text, when::now_ms()).ok_or_else(|| {
                CliError::invalid_args(format!("--since `{text}` is neither a duration nor a time"))
                    .with_hint("Give a duration back from now (90s, 15m, 2h, 7d) or an RFC 3339 time (2026-12-01T09:00:00Z).")
            })
        })
        .transpose()?;
    let kind = parse_kind(args.kind.as_deref())?;
    let (account, mesh) = session::account_and_mesh(ctx, args.mesh.as_deref(), "log tail")?;
    let slug = slug_of(&mesh.slug)?;
    let read = LogRead {
        after: None,
        since_ms,
        kind: kind.map(|k| k.as_str().to_owned()),
        limit: Some(args.lines),
    };
    let mut page = account
        .api
        .mesh_log(&slug, &read)
        .map_err(|err| err.into_cli(&account.server))?;
    // `--since` reads oldest first: keep the newest `--lines` of what came.
    if since_ms.is_some() {
        while page.entries.len() as u64 >= u64::from(args.lines) {
            let next = account
                .api
                .mesh_log(
                    &slug,
                    &LogRead {
                        after: Some(page.cursor.clone()),
                        ..read.clone()
                    },
                )
                .map_err(|err| err.into_cli(&account.server))?;
            if next.entries.is_empty() {
                break;
            }
            page.entries.extend(next.entries);
            let keep_from = page.entries.len().saturating_sub(args.lines as usize);
            page.entries.drain(..keep_from);
            page.cursor = next.cursor;
        }
    }
    let out = &ctx.out;
    if page.entries.is_empty() && !out.json && !args.follow {
        out.line(format!("Nothing in the log of {} yet.", mesh.slug));
    }
    for entry in &page.entries {
        if !print_entry(out, entry) {
            return Ok(());
        }
    }
    if args.follow {
        follow(out, &account, &slug, page.cursor, kind)?;
    }
    Ok(())
}

/// Prints new entries until Ctrl-C or a closed stdout (both exit 0).
fn follow(
    out: &Output,
    account: &Account,
    slug: &Slug,
    cursor: String,
    kind: Option<LogKind>,
) -> CliResult<()> {
    let runtime = session::runtime()?;
    runtime.block_on(async {
        let mut interrupt = Interrupt::listen()?;
        let mut entries = spawn_follower(account, slug, cursor, kind);
        let stdout_closed = closed_stdout::closed();
        tokio::pin!(stdout_closed);
        loop {
            tokio::select! {
                next = entries.recv() => match next {
                    Some(Ok(entry)) => {
                        if !print_entry(out, &entry) {
                            return Ok(());
                        }
                    }
                    Some(Err(err)) => return Err(err),
                    None => return Ok(()),
                },
                () = interrupt.recv() => return Ok(()),
                // `| head -3` is done: stop now, not at the next entry.
                () = &mut stdout_closed => return Ok(()),
            }
        }
    })
}

/// Follows a mesh's log after `cursor` on a thread of its own (the API
/// client blocks) and hands each entry over, or the error that ended the
/// follow. A broken connection is resumed from the last entry passed on
/// (`Last-Event-ID`), so it leaves no gap; after [`MAX_RECONNECTS`]
/// failures in a row it gives up (exit 4). The thread ends when the
/// receiver is dropped.
pub fn spawn_follower(
    account: &Account,
    slug: &Slug,
    start: String,
    kind: Option<LogKind>,
) -> tokio::sync::mpsc::Receiver<Result<LogEntry, CliError>> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<LogEntry, CliError>>(64);
    let api = account.api.clone();
    let server = account.server.clone();
    let slug = slug.clone();
    std::thread::spawn(move || {
        let mut cursor = start;
        let mut failures = 0;
        loop {
            let kind = kind.map(LogKind::as_str);
            match api.follow_log(&slug, Some(&cursor), kind) {
                Ok(mut stream) => {
                    while let Some(next) = stream.next_entry() {
                        match next {
                            Ok(entry) => {
                                failures = 0;
                                cursor = entry.cursor.clone();
                                if tx.blocking_send(Ok(entry)).is_err() {
                                    return;
                                }
                            }
                            Err(_) => break,
                        }
                    }
                }
                Err(err @ (ApiError::Status { .. } | ApiError::RateLimited { .. })) => {
                    let _ = tx.blocking_send(Err(err.into_cli(&server)));
                    return;
                }
                Err(_) => {}
            }
            failures += 1;
            if failures > MAX_RECONNECTS {
                let _ = tx.blocking_send(Err(CliError::new(
                    Exit::Network,
                    format!("Lost the connection to {server} while following the log"),
                )));
                return;
            }
            if tx.is_closed() {
                return;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    rx
}

/// One entry on stdout: a JSON line with --json, else a line of text.
/// `false` once stdout is closed (`| head`): the command ends, exit 0.
fn print_entry(out: &Output, entry: &LogEntry) -> bool {
    let line = if out.json {
        match serde_json::to_string(entry) {
            Ok(text) => text,
            Err(_) => return true,
        }
    } else {
        text_line(entry)
    };
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")
        .and_then(|()| stdout.flush())
        .is_ok()
}

/// `2026-12-07 03:40:12  #12  member.joined  Ben (member) accepted an invite`.
pub fn text_line(entry: &LogEntry) -> String {
    let at = when::parse(&entry.at).map_or_else(
        || entry.at.clone(),
        |at| {
            let utc = at.to_offset(time::UtcOffset::UTC);
            format!(
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
                utc.year(),
                u8::from(utc.month()),
                utc.day(),
                utc.hour(),
                utc.minute(),
                utc.second()
            )
        },
    );
    let d = |key: &str| entry.detail.get(key).map(String::as_str).unwrap_or("?");
    let short = |key: &str| {
        let value = d(key);
        value.get(..8).unwrap_or(value).to_owned()
    };
    // An observer's session (`stream subscribe`) is in no peer list: the
    // log is where it shows, and it says so.
    let observer = if d("observer") == "true" {
        ", an observer"
    } else {
        ""
    };
    let what = match LogKind::parse(&entry.kind) {
        Some(LogKind::MemberJoined) => format!("{} joined as {}", d("display_name"), d("role")),
        Some(LogKind::MemberLeft) => format!("{} left", d("display_name")),
        Some(LogKind::MemberRemoved) => format!("{} was removed", d("display_name")),
        Some(LogKind::InviteCreated) => format!(
            "{} made an invite ({}, up to {} uses)",
            d("by"),
            d("role"),
            d("max_uses")
        ),
        Some(LogKind::InviteAccepted) => format!("invite {} accepted", d("invite_id")),
        Some(LogKind::InviteRevoked) => format!("{} revoked invite {}", d("by"), d("invite_id")),
        Some(LogKind::SessionConnected) => format!(
            "{} connected (session {}{observer})",
            d("display_name"),
            short("session_key")
        ),
        Some(LogKind::SessionDisconnected) => format!(
            "{} disconnected (session {}{observer})",
            d("display_name"),
            short("session_key")
        ),
        Some(LogKind::MessageSent) => format!(
            "{} sent a {} message to {} recipient(s), {} bytes",
            d("sender"),
            d("message_kind"),
            d("recipients"),
            d("size")
        ),
        Some(LogKind::MemberRoleChanged) => format!(
            "{} made {} {} (was {})",
            d("by"),
            d("display_name"),
            d("to"),
            d("from")
        ),
        Some(LogKind::MeshRenamed) => format!(
            "{} renamed the mesh from \"{}\" to \"{}\"",
            d("by"),
            d("from"),
            d("to")
        ),
        Some(LogKind::MeshArchived) => format!("{} archived the mesh", d("by")),
        Some(LogKind::MeshUnarchived) => format!("{} unarchived the mesh", d("by")),
        Some(LogKind::GrantsChanged) => format!(
            "{} now allows {}: {} (was {})",
            d("display_name"),
            d("peer"),
            d("to"),
            d("from")
        ),
        None => entry
            .detail
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" "),
    };
    format!("{at}  #{:<5} {:<21} {what}", entry.seq, entry.kind)
}

#[derive(Serialize)]
struct VerifyJson<'a> {
    mesh: &'a str,
    ok: bool,
    entries_checked: u64,
    head_seq: u64,
    first_seq: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    broken_seq: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    problem: Option<String>,
}

fn verify(args: &LogVerifyArgs, ctx: &Context) -> CliResult<()> {
    let (account, mesh) = session::account_and_mesh(ctx, args.mesh.as_deref(), "log verify")?;
    let slug = slug_of(&mesh.slug)?;
    let api_error = |err: ApiError| err.into_cli(&account.server);
    // The first page fixes the head to check against: entries appended
    // while the check runs are beyond it and not looked at.
    let first = account
        .api
        .mesh_log(
            &slug,
            &LogRead {
                after: Some(claudemesh_api::mesh_log::cursor(&mesh.mesh_id, 0)),
                limit: Some(VERIFY_PAGE),
                ..LogRead::default()
            },
        )
        .map_err(api_error)?;
    let (head_seq, head_hash, first_seq) =
        (first.head_seq, first.head_hash.clone(), first.first_seq);
    let mut verifier = ChainVerifier::new(&first.mesh_id, first_seq);
    let mut page = first;
    let mut result = Ok(());
    'pages: loop {
        for entry in page.entries.iter().filter(|e| e.seq <= head_seq) {
            if let Err(broken) = verifier.push(entry) {
                result = Err(broken);
                break 'pages;
            }
        }
        let last = page.entries.last().map(|e| e.seq);
        if page.entries.is_empty() || last.is_some_and(|seq| seq >= head_seq) {
            break;
        }
        page = account
            .api
            .mesh_log(
                &slug,
                &LogRead {
                    after: Some(page.cursor.clone()),
                    limit: Some(VERIFY_PAGE),
                    ..LogRead::default()
                },
            )
            .map_err(api_error)?;
    }
    let result = result.and_then(|()| verifier.finish(head_seq, &head_hash));
    let out = &ctx.out;
    match result {
        Ok(checked) => {
            if out.json {
                out.json(&VerifyJson {
                    mesh: &mesh.slug,
                    ok: true,
                    entries_checked: checked,
                    head_seq,
                    first_seq,
                    broken_seq: None,
                    problem: None,
                });
            } else {
                out.success(format!(
                    "The log of {} holds: {checked} entries checked, up to #{head_seq}",
                    mesh.slug
                ));
            }
            Ok(())
        }
        Err(broken) => {
            if out.json {
                out.json(&VerifyJson {
                    mesh: &mesh.slug,
                    ok: false,
                    entries_checked: 0,
                    head_seq,
                    first_seq,
                    broken_seq: Some(broken.seq()),
                    problem: Some(broken.to_string()),
                });
            }
            Err(CliError::failure(format!(
                "The log of {} is broken at entry #{}: {broken}",
                mesh.slug,
                broken.seq()
            ))
            .with_hint("Someone changed the database outside the server; tell its operator."))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_observers_session_says_so() {
        let entry = |observer: bool| {
            let mut detail = std::collections::BTreeMap::new();
            detail.insert("display_name".to_owned(), "Ada".to_owned());
            detail.insert("session_key".to_owned(), "9c01d2e4ffff".to_owned());
            if observer {
                detail.insert("observer".to_owned(), "true".to_owned());
            }
            LogEntry {
                seq: 41,
                at: "2026-12-07T06:10:02Z".into(),
                at_ms: 0,
                kind: "session.connected".into(),
                detail,
                prev_hash: String::new(),
                hash: String::new(),
                cursor: String::new(),
            }
        };
        assert!(
            text_line(&entry(true)).ends_with("Ada connected (session 9c01d2e4, an observer)"),
            "{}",
            text_line(&entry(true))
        );
        assert!(text_line(&entry(false)).ends_with("Ada connected (session 9c01d2e4)"));
    }

    #[test]
    fn since_takes_durations_and_times() {
        let now = 10 * 86_400_000;
        assert_eq!(parse_since("90s", now), Some(now - 90_000));
        assert_eq!(parse_since("15m", now), Some(now - 900_000));
        assert_eq!(parse_since("2h", now), Some(now - 7_200_000));
        assert_eq!(parse_since("7d", now), Some(now - 7 * 86_400_000));
        assert_eq!(parse_since("1970-01-01T00:00:01Z", now), Some(1_000));
        for bad in [
            "",
            "2",
            "h",
            "2x",
            "-2h",
            "2 h",
            "yesterday",
            "99999999999999999d",
        ] {
            assert_eq!(parse_since(bad, now), None, "{bad}");
        }
    }
}
