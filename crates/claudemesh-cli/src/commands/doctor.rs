//! `claudemesh doctor [--json]`: what works and what does not, one line a
//! check, in the manner of `gh auth status`, `brew doctor` and `flutter
//! doctor`: `✔` passed, `⚠` works but needs attention soon, `✘` failed with
//! the fix in one sentence, `-` not checked (what it needs failed first).
//! Exit 0 only when no check failed; a warning passes.
//!
//! Every check is bounded in time ([`HTTP_WITHIN`], [`BROKER_WITHIN`],
//! [`LOCAL_WITHIN`]), so the whole report comes within about 5 s even with
//! a dead server, and nothing waits for a terminal.

use super::launch::{self, Plan};
use super::list::{self, Listed, Standing};
use super::whoami::expires_soon;
use crate::api::transport_detail;
use crate::base::exit::{CliError, CliResult, Exit, tokens_page};
use crate::base::http_agent;
use crate::base::when;
use crate::cli::DoctorArgs;
use crate::context::{Account, Context};
use crate::session::{self, MeshSession, SessionKind};
use crate::stores::auth_store::Credential;
use crate::stores::config_store::JoinedMesh;
use crate::stores::session_dir::{self, MessageMode, SessionDir};
use claudemesh_api::TokenKind;
use claudemesh_api::wire::WhoAmIResponse;
use serde::Serialize;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The longest one request to the server may take.
const HTTP_WITHIN: Duration = Duration::from_secs(3);
/// The longest a broker handshake may take.
const BROKER_WITHIN: Duration = Duration::from_secs(3);
/// The longest `claude --version` or `claudemesh mcp`'s `initialize` may take.
const LOCAL_WITHIN: Duration = Duration::from_secs(3);
/// Clock skew past these is a warning, then a failure: login codes and
/// session attestations carry times.
const SKEW_WARN_SECS: i64 = 5;
const SKEW_FAIL_SECS: i64 = 60;
/// The first Claude Code with channels (`--dangerously-load-development-channels`).
pub const MIN_CLAUDE_CODE: (u64, u64, u64) = (2, 1, 80);
/// The MCP protocol version `initialize` asks for (one Claude Code speaks).
const MCP_PROTOCOL: &str = "2025-06-18";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Status {
    Pass,
    Warn,
    Fail,
    /// Not checked: something it needs failed first.
    Skipped,
}

#[derive(Debug, Serialize)]
struct Check {
    /// `server`, `token`, `meshes`, `broker`, `claude_code`, `mcp`.
    name: &'static str,
    status: Status,
    detail: String,
    /// What to do, in one sentence (failures and warnings).
    #[serde(skip_serializing_if = "Option::is_none")]
    fix: Option<String>,
}

impl Check {
    fn pass(name: &'static str, detail: impl Into<String>) -> Self {
        Self {
            name,
            status: Status::Pass,
            detail: detail.into(),
            fix: None,
        }
    }

    fn warn(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            name,
            status: Status::Warn,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    fn fail(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            name,
            status: Status::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    fn from_error(name: &'static str, err: &CliError) -> Self {
        Self {
            name,
            status: Status::Fail,
            detail: err.message.clone(),
            fix: err.hint.clone(),
        }
    }

    fn skipped(name: &'static str, because: &str) -> Self {
        let what = match name {
            "token" => "Token",
            "meshes" => "Meshes",
            "mcp" => "claudemesh mcp",
            other => other,
        };
        Self {
            name,
            status: Status::Skipped,
            detail: format!("{what} not checked: {because}"),
            fix: None,
        }
    }

    fn line(&self) -> String {
        let mark = match self.status {
            Status::Pass => "✔",
            Status::Warn => "⚠",
            Status::Fail => "✘",
            Status::Skipped => "-",
        };
        match &self.fix {
            Some(fix) => format!("{mark} {}\n  {fix}\n", self.detail),
            None => format!("{mark} {}\n", self.detail),
        }
    }
}

#[derive(Serialize)]
struct DoctorJson<'a> {
    ok: bool,
    server: &'a str,
    checks: &'a [Check],
}

pub fn run(_args: &DoctorArgs, ctx: &Context) -> CliResult<()> {
    let credential = ctx.credential();
    let server = match &credential {
        Ok(Some(credential)) => ctx
            .server_for(credential)
            .unwrap_or_else(|_| ctx.requested_server()),
        _ => ctx.requested_server(),
    };
    let mut checks = Vec::new();
    let reachable = check_server(&server, &mut checks);
    let account = if reachable {
        check_token(ctx, &server, credential, &mut checks)
    } else {
        checks.push(Check::skipped("token", "the server cannot be reached"));
        None
    };
    let joined = match &account {
        Some(account) => check_meshes(ctx, account, &mut checks),
        None => {
            let because = if reachable {
                "not signed in"
            } else {
                "the server cannot be reached"
            };
            checks.push(Check::skipped("meshes", because));
            Vec::new()
        }
    };
    if let Some(account) = &account {
        check_brokers(&account.server, &joined, &mut checks);
    }
    check_claude_code(&mut checks);
    match (&account, joined.first()) {
        (Some(account), Some(mesh)) => checks.push(check_mcp(ctx, account, mesh)),
        _ => checks.push(Check::skipped("mcp", "no mesh joined here to start it in")),
    }

    let ok = !checks.iter().any(|c| c.status == Status::Fail);
    if ctx.out.json {
        ctx.out.json(&DoctorJson {
            ok,
            server: &server,
            checks: &checks,
        });
    } else {
        ctx.out
            .data(checks.iter().map(Check::line).collect::<String>());
    }
    if ok {
        Ok(())
    } else {
        let failed = checks.iter().filter(|c| c.status == Status::Fail).count();
        Err(CliError::failure(if failed == 1 {
            "1 check failed".to_owned()
        } else {
            format!("{failed} checks failed")
        }))
    }
}

/// The server answers, its version, and the clock: true when it answers.
fn check_server(server: &str, checks: &mut Vec<Check>) -> bool {
    let agent = http_agent::agent(HTTP_WITHIN, HTTP_WITHIN);
    let started = Instant::now();
    let answer = agent.get(format!("{server}/healthz")).call();
    let took = started.elapsed();
    let response = match answer {
        Ok(response) if response.status().is_success() => response,
        Ok(response) => {
            checks.push(Check::fail(
                "server",
                format!(
                    "The server at {server} answers HTTP {} to /healthz",
                    response.status().as_u16()
                ),
                "Is CLAUDEMESH_API_URL (or --api-url) a claudemesh server?",
            ));
            return false;
        }
        Err(err) => {
            checks.push(Check::fail(
                "server",
                format!(
                    "The server at {server} cannot be reached ({})",
                    transport_detail(&err)
                ),
                "Start it, or point CLAUDEMESH_API_URL (or --api-url) at the one you use.",
            ));
            return false;
        }
    };
    let skew = response
        .headers()
        .get("date")
        .and_then(|d| d.to_str().ok())
        .and_then(|d| {
            time::OffsetDateTime::parse(d, &time::format_description::well_known::Rfc2822).ok()
        })
        .map(|theirs| (time::OffsetDateTime::now_utc() - theirs).whole_seconds());
    let version = server_version(&agent, server)
        .map(|v| format!("claudemesh-server {v}"))
        .unwrap_or_else(|| "version unknown".to_owned());
    let detail = format!(
        "Server {server} answers in {} ms ({version})",
        took.as_millis()
    );
    checks.push(match skew {
        Some(skew) if skew.abs() > SKEW_FAIL_SECS => Check::fail(
            "server",
            format!("{detail}, but this machine's clock is {} s {} its", skew.abs(), ahead_or_behind(skew)),
            "Set this machine's clock right (e.g. `timedatectl set-ntp true`): login codes and session attestations are timed.",
        ),
        Some(skew) if skew.abs() > SKEW_WARN_SECS => Check::warn(
            "server",
            format!("{detail}; this machine's clock is {} s {} its", skew.abs(), ahead_or_behind(skew)),
            "Keep the clock in time (e.g. `timedatectl set-ntp true`) before it drifts further.",
        ),
        Some(_) => Check::pass("server", format!("{detail}; clocks agree")),
        None => Check::pass("server", detail),
    });
    true
}

fn ahead_or_behind(skew: i64) -> &'static str {
    if skew > 0 { "ahead of" } else { "behind" }
}

/// The server's version, as its OpenAPI document states it.
fn server_version(agent: &ureq::Agent, server: &str) -> Option<String> {
    let mut response = agent
        .get(format!("{server}/api/openapi.json"))
        .call()
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    let document: serde_json::Value = response.body_mut().read_json().ok()?;
    document["info"]["version"].as_str().map(str::to_owned)
}

/// Which token, from where, whether the server takes it and for how long.
fn check_token(
    ctx: &Context,
    server: &str,
    credential: CliResult<Option<Credential>>,
    checks: &mut Vec<Check>,
) -> Option<Account> {
    let credential = match credential {
        Ok(Some(credential)) => credential,
        Ok(None) => {
            checks.push(Check::fail(
                "token",
                "Not signed in",
                "Run `claudemesh login` (in CI, set CLAUDEMESH_TOKEN to a personal access token).",
            ));
            return None;
        }
        Err(err) => {
            checks.push(Check::from_error("token", &err));
            return None;
        }
    };
    let api = ctx
        .api(server, Some(credential.token.clone()))
        .with_timeout(HTTP_WITHIN);
    let who: WhoAmIResponse = match api.whoami() {
        Ok(who) => who,
        Err(err) => {
            checks.push(Check::from_error(
                "token",
                &ctx.explain(err.into_cli(server)),
            ));
            return None;
        }
    };
    let from = credential.source.describe(&ctx.store().path());
    let info = who.credential.token.as_ref();
    let kind = match credential.token.kind() {
        TokenKind::Pat => "personal access token",
        TokenKind::Session => "CLI session",
    };
    let name = info.map(|t| format!(" \"{}\"", t.name)).unwrap_or_default();
    let now = time::OffsetDateTime::now_utc();
    let expires_at = info.and_then(|t| t.expires_at.as_deref());
    let expiry = expires_at.map_or_else(
        || "never expires".to_owned(),
        |at| format!("expires {}", when::describe(at, now)),
    );
    let detail = format!(
        "Signed in as {} ({}) with the {kind}{name} from {from}; it {expiry}",
        who.user.name, who.user.email
    );
    checks.push(if expires_soon(expires_at, now) {
        let fix = match credential.token.kind() {
            TokenKind::Session => "Run `claudemesh login` for a new one.".to_owned(),
            TokenKind::Pat => format!(
                "Create a new one on the CLI tokens page ({}).",
                tokens_page(server)
            ),
        };
        Check::warn("token", detail, fix)
    } else {
        Check::pass("token", detail)
    });
    Some(Account {
        api,
        server: server.to_owned(),
        user: who.user,
    })
}

/// The account's meshes on the server against those joined here; the ones
/// joined here.
fn check_meshes(ctx: &Context, account: &Account, checks: &mut Vec<Check>) -> Vec<JoinedMesh> {
    let config = match ctx.config().load(&ctx.out) {
        Ok(config) => config,
        Err(err) => {
            checks.push(Check::from_error("meshes", &err));
            return Vec::new();
        }
    };
    let remote = match account.api.meshes() {
        Ok(list) => list.meshes,
        Err(err) => {
            checks.push(Check::from_error("meshes", &err.into_cli(&account.server)));
            return Vec::new();
        }
    };
    let local: Vec<&JoinedMesh> = config.meshes(&account.server, &account.user.id).collect();
    let listed = list::merge(&remote, &local);
    let slugs = |here: Standing| -> Vec<&str> {
        listed
            .iter()
            .filter(|m: &&Listed| m.here == here)
            .map(|m| m.slug.as_str())
            .collect()
    };
    let (joined, missing, gone) = (
        slugs(Standing::JoinedHere),
        slugs(Standing::NotJoinedHere),
        slugs(Standing::LocalOnly),
    );
    checks.push(if listed.is_empty() {
        Check::warn(
            "meshes",
            "You are in no mesh yet",
            "Create one with `claudemesh create \"Team name\"`, or join one with `claudemesh join <invite link>`.",
        )
    } else if !missing.is_empty() {
        Check::fail(
            "meshes",
            format!(
                "Not joined on this machine: {} (joined here: {})",
                missing.join(", "),
                none_if_empty(&joined)
            ),
            "Run `claudemesh sync` to join them here.",
        )
    } else if !gone.is_empty() {
        Check::fail(
            "meshes",
            format!(
                "Joined here but no longer yours on the server: {}",
                gone.join(", ")
            ),
            "Run `claudemesh sync --prune` to remove them from this machine.",
        )
    } else {
        Check::pass("meshes", format!("Joined here: {}", joined.join(", ")))
    });
    local
        .into_iter()
        .filter(|l| remote.iter().any(|r| r.id == l.mesh_id))
        .cloned()
        .collect()
}

fn none_if_empty(slugs: &[&str]) -> String {
    if slugs.is_empty() {
        "none".to_owned()
    } else {
        slugs.join(", ")
    }
}

/// Each joined mesh's broker: a session's handshake, and how long it took.
fn check_brokers(server: &str, joined: &[JoinedMesh], checks: &mut Vec<Check>) {
    if joined.is_empty() {
        return;
    }
    let runtime = match session::runtime() {
        Ok(runtime) => runtime,
        Err(err) => {
            checks.push(Check::from_error("broker", &err));
            return;
        }
    };
    for mesh in joined {
        let started = Instant::now();
        let connected = runtime.block_on(async {
            match tokio::time::timeout(BROKER_WITHIN, MeshSession::connect(server, mesh, SessionKind::OneOff)).await {
                Ok(Ok(session)) => {
                    let took = started.elapsed();
                    session.client.close();
                    Ok(took)
                }
                Ok(Err(err)) => Err(err),
                Err(_) => Err(CliError::new(
                    Exit::Network,
                    format!("no handshake within {} s", BROKER_WITHIN.as_secs()),
                )
                .with_hint("Check that the server's broker (/api/mesh/ws) is reachable; a proxy must pass WebSockets.")),
            }
        });
        checks.push(match connected {
            Ok(took) => Check::pass(
                "broker",
                format!(
                    "Broker of {}: handshake in {} ms",
                    mesh.slug,
                    took.as_millis()
                ),
            ),
            Err(err) => Check {
                detail: format!("Broker of {}: {}", mesh.slug, err.message),
                ..Check::from_error("broker", &err)
            },
        });
    }
}

/// Claude Code is there and new enough for channels.
fn check_claude_code(checks: &mut Vec<Check>) {
    let claude = match launch::find_claude() {
        Ok(claude) => claude,
        Err(err) => {
            checks.push(Check::from_error("claude_code", &err));
            return;
        }
    };
    let said = run_bounded(Command::new(&claude).arg("--version"), LOCAL_WITHIN);
    let version = said.as_deref().and_then(parse_version);
    let at = claude.display();
    checks.push(match version {
        Some(v) if v >= MIN_CLAUDE_CODE => Check::pass(
            "claude_code",
            format!("Claude Code {} at {at}", show_version(v)),
        ),
        Some(v) => Check::fail(
            "claude_code",
            format!(
                "Claude Code {} at {at} is older than {}, the first with channels",
                show_version(v),
                show_version(MIN_CLAUDE_CODE)
            ),
            "Update it: `npm install -g @anthropic-ai/claude-code@latest`.",
        ),
        None => Check::warn(
            "claude_code",
            format!("Claude Code at {at} did not say its version"),
            format!(
                "Check that `{at} --version` works; launch needs {} or later.",
                show_version(MIN_CLAUDE_CODE)
            ),
        ),
    });
}

/// `2.1.332 (Claude Code)` → (2, 1, 332).
pub fn parse_version(text: &str) -> Option<(u64, u64, u64)> {
    let word = text.split_whitespace().next()?;
    let mut parts = word.trim_start_matches('v').split('.');
    let mut next = || parts.next().and_then(|p| p.parse::<u64>().ok());
    Some((next()?, next()?, next()?))
}

fn show_version((major, minor, patch): (u64, u64, u64)) -> String {
    format!("{major}.{minor}.{patch}")
}

/// A command's first line of stdout, given at most `within`.
fn run_bounded(command: &mut Command, within: Duration) -> Option<String> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let stdout = child.stdout.take()?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(within).ok();
    let _ = child.kill();
    let _ = child.wait();
    line.filter(|l| !l.trim().is_empty())
}

/// `claudemesh mcp`, started as Claude Code starts it (a session directory
/// of its own), answers `initialize` with the channel capability.
fn check_mcp(ctx: &Context, account: &Account, mesh: &JoinedMesh) -> Check {
    match mcp_initialize(ctx, account, mesh) {
        Ok((true, took)) => Check::pass(
            "mcp",
            format!(
                "claudemesh mcp answers initialize in {} ms, with the claude/channel capability",
                took.as_millis()
            ),
        ),
        Ok((false, _)) => Check::fail(
            "mcp",
            "claudemesh mcp answers initialize without the claude/channel capability",
            "Reinstall claudemesh: messages could not reach Claude Code.",
        ),
        Err(err) => Check::from_error("mcp", &err),
    }
}

fn mcp_initialize(
    ctx: &Context,
    account: &Account,
    mesh: &JoinedMesh,
) -> CliResult<(bool, Duration)> {
    let plan = Plan {
        account: Account {
            api: ctx.api(&account.server, None),
            server: account.server.clone(),
            user: account.user.clone(),
        },
        mesh: mesh.clone(),
        display_name: session::presence_name(&mesh.display_name),
        role: session::ONE_OFF_ROLE.to_owned(),
        groups: Vec::new(),
        rights: None,
    };
    let file = launch::session_file(&plan, MessageMode::Off)?;
    let exe = std::env::current_exe()
        .map_err(|err| CliError::failure(format!("Cannot find the claudemesh binary: {err}")))?;
    let dir = SessionDir::create(&ctx.config_dir, &file, &exe)?;
    let result = ask_initialize(&exe, &dir.path);
    dir.remove();
    result
}

fn ask_initialize(exe: &Path, dir: &Path) -> CliResult<(bool, Duration)> {
    let failed = |why: String| {
        CliError::failure(format!("claudemesh mcp did not answer initialize ({why})"))
            .with_hint("Run `claudemesh launch` and see mcp.log in the session directory.")
    };
    let started = Instant::now();
    let mut child = Command::new(exe)
        .arg("mcp")
        .env(session_dir::CONFIG_DIR_ENV, dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|err| failed(err.to_string()))?;
    let request = serde_json::json!({
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": MCP_PROTOCOL,
            "capabilities": {},
            "clientInfo": {"name": "claudemesh-doctor", "version": env!("CARGO_PKG_VERSION")}
        }
    });
    // Kept open until the answer is in: a closed stdin ends the server.
    let mut stdin = child.stdin.take();
    if let Some(stdin) = stdin.as_mut() {
        let _ = writeln!(stdin, "{request}");
    }
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| failed("no stdout".into()))?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Ok(answer) = serde_json::from_str::<serde_json::Value>(&line)
                && answer["id"] == 1
            {
                let _ = tx.send(answer);
                break;
            }
        }
    });
    let answer = rx.recv_timeout(LOCAL_WITHIN);
    let took = started.elapsed();
    drop(stdin);
    let _ = child.kill();
    let _ = child.wait();
    let answer =
        answer.map_err(|_| failed(format!("nothing within {} s", LOCAL_WITHIN.as_secs())))?;
    if let Some(error) = answer.get("error") {
        return Err(failed(
            error["message"].as_str().unwrap_or("an error").to_owned(),
        ));
    }
    let channel = !answer["result"]["capabilities"]["experimental"]["claude/channel"].is_null();
    Ok((channel, took))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claude_code_versions_are_read_and_compared() {
        assert_eq!(parse_version("2.1.332 (Claude Code)"), Some((2, 1, 332)));
        assert_eq!(parse_version("v2.1.80"), Some((2, 1, 80)));
        assert_eq!(parse_version("Claude Code"), None);
        assert!(parse_version("2.1.80 (Claude Code)").unwrap() >= MIN_CLAUDE_CODE);
        assert!(parse_version("2.1.79 (Claude Code)").unwrap() < MIN_CLAUDE_CODE);
        assert!(parse_version("2.2.0").unwrap() >= MIN_CLAUDE_CODE);
    }

    #[test]
    fn a_failed_check_says_its_fix_on_the_next_line() {
        let check = Check::fail("server", "The server cannot be reached", "Start it.");
        assert_eq!(
            check.line(),
            "✘ The server cannot be reached\n  Start it.\n"
        );
        assert_eq!(Check::pass("token", "Signed in").line(), "✔ Signed in\n");
        assert_eq!(
            Check::skipped("mcp", "no mesh").line(),
            "- claudemesh mcp not checked: no mesh\n"
        );
    }
}
