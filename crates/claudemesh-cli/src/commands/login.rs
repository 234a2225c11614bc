//! `claudemesh login`: the device-code flow (spec flow 1) and the token
//! path for CI (spec flow 2, `--token` / `--with-token`).
//!
//! Device code: ask the server for a code, show the link and the code (and a
//! QR code on a terminal), open the browser unless headless, then poll until
//! the code is approved, denied, claimed by another poller or expired. Each
//! poll asks the server to hold it up to [`POLL_WAIT`] and answer as soon as
//! the code is decided, so an approval reaches the terminal at once; polls
//! start at most once per the server's interval, so against a server that
//! answers at once (one that predates `wait`) this is plain polling at its
//! interval. Network failures while polling are retried on the [`Backoff`]
//! schedule until the code's deadline; a `slow_down` answer sets the interval
//! to the one the server asks for. The decisions live in [`Poller`], which
//! does no I/O and is unit-tested.

use super::sync;
use crate::api::ApiError;
use crate::base::backoff::Backoff;
use crate::base::device_info::{self, Browser};
use crate::base::exit::{CliError, CliResult, Exit};
use crate::base::output::Output;
use crate::base::when;
use crate::cli::LoginArgs;
use crate::context::{Context, saved_server};
use crate::stores::auth_store::{AuthFile, AuthSource, FILE_VERSION, SavedLogin, TokenStorage};
use claudemesh_api::telemetry::{LoginFailure, LoginMethod};
use claudemesh_api::wire::{DeviceCodeStatus, DevicePollResponse, UserSummary};
use claudemesh_api::{Token, TokenKind, UserCode};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use std::io::{IsTerminal, Read};
use std::time::{Duration, Instant};

/// Bounds on the poll interval, whatever the server says: no faster than its
/// rate limit allows, no slower than makes waiting pointless.
const MIN_INTERVAL: Duration = Duration::from_secs(1);
const MAX_INTERVAL: Duration = Duration::from_secs(60);
const DEFAULT_INTERVAL: Duration = Duration::from_millis(1500);
/// How long each poll asks the server to wait for a decision (its maximum).
pub const POLL_WAIT: Duration = Duration::from_secs(20);
/// A pasted token is short; refuse to read a runaway stdin.
const MAX_STDIN_BYTES: u64 = 64 * 1024;
/// Failures told apart for telemetry ([`failure_reason`]).
const BAD_TOKEN_FORMAT: &str = "Invalid token format (expected cm_pat_…)";
const DENIED: &str = "Denied in browser";
const TIMED_OUT: &str = "Login timed out, run `claudemesh login` to retry";

pub fn run(args: &LoginArgs, ctx: &Context) -> CliResult<()> {
    let method = if args.with_token || ctx.token_flag().is_some() {
        LoginMethod::Pat
    } else {
        LoginMethod::DeviceCode
    };
    reported(ctx, method, || sign_in(args, ctx))
}

/// Records the login's start and, if it fails, why (`finish` records a
/// success): `cli.login.*` for the server signed in to.
fn reported(
    ctx: &Context,
    method: LoginMethod,
    login: impl FnOnce() -> CliResult<()>,
) -> CliResult<()> {
    let server = ctx.requested_server();
    ctx.telemetry.login_started(&server, method);
    let result = login();
    if let Err(err) = &result {
        ctx.telemetry
            .login_failed(&server, method, failure_reason(err));
    }
    result
}

/// Why a login failed, for telemetry.
fn failure_reason(err: &CliError) -> LoginFailure {
    match err.exit {
        Exit::Auth => LoginFailure::TokenRejected,
        Exit::Conflict => LoginFailure::AlreadyClaimed,
        Exit::Network => LoginFailure::Network,
        Exit::Cancelled => LoginFailure::Cancelled,
        _ if err.message == DENIED => LoginFailure::Denied,
        _ if err.message == TIMED_OUT => LoginFailure::Expired,
        _ if err.message == BAD_TOKEN_FORMAT => LoginFailure::InvalidTokenFormat,
        // The directory or the file auth.json (auth_store.rs).
        _ if err.message.starts_with("Refusing to save")
            || err.message.starts_with("Could not save the login") =>
        {
            LoginFailure::NotSaved
        }
        _ => LoginFailure::Other,
    }
}

fn sign_in(args: &LoginArgs, ctx: &Context) -> CliResult<()> {
    if args.with_token && ctx.token_flag().is_some() {
        return Err(CliError::invalid_args(
            "Give the token either with --token or on stdin with --with-token, not both",
        ));
    }
    let token_text = if args.with_token {
        Some(read_token_from_stdin()?)
    } else if let Some(flag) = ctx.token_flag() {
        ctx.out.warn(
            "A token given with --token stays in your shell history; prefer `claudemesh login --with-token < token.txt`",
        );
        Some(flag.to_owned())
    } else {
        None
    };
    // A mistyped token fails here, before any request or file change.
    let token = token_text
        .map(|text| Token::parse(&text).map_err(|_| CliError::failure(BAD_TOKEN_FORMAT)))
        .transpose()?;
    let server = ctx.requested_server();
    if token.is_none() {
        let out = &ctx.out;
        out.line(out.bold("██ claudemesh login"));
        if server != crate::base::server_url::DEFAULT_API_URL {
            out.line(format!("Server: {server}"));
        }
    }
    ctx.store().prepare()?;
    let previous = previous_login(ctx);
    let result = match token {
        Some(token) => token_login(ctx, &server, token)?,
        None => device_code_login(args, ctx, &server)?,
    };
    let storage = if args.insecure_storage {
        TokenStorage::File
    } else {
        TokenStorage::Keyring
    };
    finish(ctx, &server, result, previous, storage)
}

/// Signs in with a token pasted at a prompt (the welcome wizard).
pub fn with_token_text(ctx: &Context, text: &str) -> CliResult<()> {
    reported(ctx, LoginMethod::Pat, || {
        let token = Token::parse(text).map_err(|_| CliError::failure(BAD_TOKEN_FORMAT))?;
        let server = ctx.requested_server();
        ctx.store().prepare()?;
        let previous = previous_login(ctx);
        let result = token_login(ctx, &server, token)?;
        finish(ctx, &server, result, previous, TokenStorage::Keyring)
    })
}

/// The device-code sign-in with the defaults (the wizard, `launch`).
pub fn interactive(ctx: &Context) -> CliResult<()> {
    run(
        &LoginArgs {
            with_token: false,
            no_browser: false,
            device_name: None,
            insecure_storage: false,
        },
        ctx,
    )
}

/// What a successful login produced, before it is saved.
struct LoggedIn {
    token: Token,
    user: UserSummary,
    source: AuthSource,
    /// `(via PAT "ci-deploy")` for the token path.
    via: Option<String>,
}

#[derive(Serialize)]
struct LoginJson<'a> {
    user: &'a UserSummary,
    server: &'a str,
    source: AuthSource,
    token_kind: TokenKind,
    auth_file: String,
    /// Where the token went: `keyring` or `file` (auth.json).
    token_storage: TokenStorage,
    /// The meshes joined on this machine after the post-login sync; `null`
    /// when the sync failed.
    synced_meshes: Option<Vec<String>>,
}

/// The saved login this one replaces, after saying so.
fn previous_login(ctx: &Context) -> Option<SavedLogin> {
    match ctx.store().load(&ctx.out) {
        Ok(Some(saved)) => {
            ctx.out.line(format!(
                "Replacing existing session for {}",
                saved.file.user.name
            ));
            Some(saved)
        }
        Ok(None) => None,
        Err(err) if err == CliError::auth_file_corrupted() => {
            ctx.out
                .warn("The saved login is corrupted; this login replaces it");
            None
        }
        Err(err) => {
            ctx.out.warn(err.message);
            None
        }
    }
}

/// Saves the login, says so, and runs what follows a login.
fn finish(
    ctx: &Context,
    server: &str,
    done: LoggedIn,
    previous: Option<SavedLogin>,
    storage: TokenStorage,
) -> CliResult<()> {
    let file = AuthFile {
        version: FILE_VERSION,
        token: done.token.expose().to_owned(),
        user: done.user.clone(),
        created_at: when::now_rfc3339(),
        source: done.source,
        server: server.to_owned(),
    };
    let saved = match ctx.store().save(&file, storage, &ctx.out) {
        Ok(saved) => saved,
        Err(err) => {
            // A session token nobody can keep would linger on the server.
            if done.source == AuthSource::DeviceCode {
                let _ = ctx.api(server, None).revoke(&done.token);
            }
            return Err(err);
        }
    };
    let method = match done.source {
        AuthSource::DeviceCode => LoginMethod::DeviceCode,
        AuthSource::Pat => LoginMethod::Pat,
    };
    ctx.telemetry.login_succeeded(server, method, &done.user.id);
    let via = done.via.map(|v| format!(" ({v})")).unwrap_or_default();
    ctx.out
        .success(format!("Authenticated as {}{via}", done.user.name));
    ctx.out.success(saved.describe());
    if let Some(previous) = previous {
        revoke_replaced_session(ctx, server, &previous, &done.token);
    }
    let synced = after_login(ctx, server, &done.token, &done.user);
    if ctx.env_token_set() {
        ctx.out.warn(
            "CLAUDEMESH_TOKEN is set: commands use it instead of this login until you unset it",
        );
    }
    if ctx.out.json {
        ctx.out.json(&LoginJson {
            user: &done.user,
            server,
            source: done.source,
            token_kind: done.token.kind(),
            auth_file: saved.path.display().to_string(),
            token_storage: saved.storage,
            synced_meshes: synced,
        });
    } else if done.source == AuthSource::DeviceCode {
        next_step(ctx, synced.as_deref());
    }
    Ok(())
}

/// The command to run next. With no mesh yet, `--help` is no answer: make
/// one or join one. When the sync failed, its warning already said what to do.
fn next_step(ctx: &Context, synced: Option<&[String]>) {
    let out = &ctx.out;
    match synced {
        Some([]) => out.line(format!(
            "You are in no mesh yet: create one with {} or join one with {}.",
            out.bold("claudemesh create \"Team name\""),
            out.bold("claudemesh join <invite link>")
        )),
        Some(_) => out.line(format!(
            "Run {} to get started.",
            out.bold("claudemesh --help")
        )),
        None => {}
    }
}

/// What runs after every successful login: mesh sync (spec flow 1, "✔
/// Synced 3 meshes: …"). The login has succeeded and is saved by then, so a
/// sync that fails is a warning, never a failed login. Returns the slugs
/// joined here after the sync, `None` when it failed.
fn after_login(
    ctx: &Context,
    server: &str,
    token: &Token,
    user: &UserSummary,
) -> Option<Vec<String>> {
    let api = ctx.api(server, Some(token.clone()));
    match sync::reconcile(ctx, &api, server, &user.id, false) {
        Ok((report, _)) => {
            ctx.out.success(report.synced_line());
            Some(report.meshes)
        }
        Err(err) => {
            ctx.out
                .warn(format!("Could not sync your meshes: {}", err.message));
            ctx.out.line("Run `claudemesh sync` to try again.");
            None
        }
    }
}

/// A session token this machine saved, replaced by a new login, is useless
/// from now on: revoke it so it does not linger in the session list. PATs are
/// never revoked here (the same PAT may be used elsewhere). Best effort and
/// quiet: a failure leaves it to expire.
fn revoke_replaced_session(ctx: &Context, server: &str, previous: &SavedLogin, new: &Token) {
    let same_server = saved_server(&previous.file).is_ok_and(|old| old == server);
    if previous.token.kind() == TokenKind::Session && same_server && previous.token != *new {
        let _ = ctx.api(server, None).revoke(&previous.token);
    }
}

fn read_token_from_stdin() -> CliResult<String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return dialoguer::Password::new()
            .with_prompt("Paste your token (input hidden)")
            .allow_empty_password(true)
            .interact()
            .map_err(|err| CliError::failure(format!("Could not read the token: {err}")));
    }
    let mut text = String::new();
    stdin
        .lock()
        .take(MAX_STDIN_BYTES)
        .read_to_string(&mut text)
        .map_err(|err| CliError::failure(format!("Could not read the token from stdin: {err}")))?;
    Ok(text)
}

/// The token path (its format and checksum are already checked): the server
/// must recognise it.
fn token_login(ctx: &Context, server: &str, token: Token) -> CliResult<LoggedIn> {
    let api = ctx.api(server, Some(token.clone()));
    let who = api.whoami().map_err(|err| match err {
        ApiError::Status { status: 401, .. } => CliError::new(Exit::Auth, "Token rejected")
            .with_hint(format!(
                "The server at {server} does not accept this token: it is unknown, revoked or expired."
            )),
        other => other.into_cli(server),
    })?;
    let name = who
        .credential
        .token
        .as_ref()
        .map_or_else(|| token.display_prefix(), |info| info.name.clone());
    let via = match token.kind() {
        TokenKind::Pat => format!("via PAT \"{name}\""),
        TokenKind::Session => format!("via session token \"{name}\""),
    };
    Ok(LoggedIn {
        token,
        user: who.user,
        source: AuthSource::Pat,
        via: Some(via),
    })
}

fn device_code_login(args: &LoginArgs, ctx: &Context, server: &str) -> CliResult<LoggedIn> {
    let out = &ctx.out;
    let api = ctx.api(server, None);
    let request = device_info::device_request(args.device_name.as_deref());
    let started = Instant::now();
    let code = api
        .request_device_code(&request)
        .map_err(|err| err.into_cli(server))?;
    let deadline = started + Duration::from_secs(code.expires_in);
    // Show the code the way the contract defines it; a server that sends
    // something else is shown without control characters, never trusted.
    let user_code = UserCode::parse(&code.user_code)
        .map(|c| c.to_string())
        .unwrap_or_else(|_| device_info::clean_field(&code.user_code).unwrap_or_default());
    let link = safe_link(&code.verification_uri_complete)
        .or_else(|| safe_link(&code.verification_url))
        .ok_or_else(|| {
            CliError::failure("The server sent no usable verification link")
                .with_hint("Is CLAUDEMESH_API_URL a claudemesh server?")
        })?;

    let terminal = std::io::stderr().is_terminal() && std::io::stdin().is_terminal();
    let decision = device_info::browser_decision(
        args.no_browser,
        |name| std::env::var(name).ok(),
        std::env::consts::OS,
        terminal,
    );
    match decision {
        Browser::Open => {
            out.line("Opening browser for authentication…");
            if let Err(err) = open::that_detached(&link) {
                out.warn(format!("Could not open a browser ({err})"));
            }
            out.line("If your browser didn't open, visit:");
        }
        Browser::Skip(reason) => {
            out.line(format!("Not opening a browser: {reason}."));
            out.line("Open this link in a browser on any device:");
        }
    }
    out.line(format!("  {}", out.bold(&link)));
    out.line("Enter this code:");
    out.line(format!("  {}", out.bold(&user_code)));
    if out.stderr_is_terminal()
        && let Some(qr) = qr_code(&link)
    {
        out.line(qr);
    }

    let progress = Progress::start(out);
    let mut poller = Poller::new(code.interval, server);
    // The first poll goes at once: the server holds it until there is news.
    let mut pause = Duration::ZERO;
    let outcome = loop {
        let now = Instant::now();
        if now >= deadline {
            break Outcome::Expired;
        }
        std::thread::sleep(pause.min(deadline - now));
        let sent = Instant::now();
        let answer = api.poll_device_code(&code.device_code, POLL_WAIT);
        match poller.handle(answer, sent.elapsed()) {
            Step::Wait { delay, notice } => {
                if let Some(notice) = notice {
                    progress.notice(&notice);
                }
                pause = delay;
            }
            Step::Finish(outcome) => break outcome,
            Step::Fail(err) => {
                progress.clear();
                return Err(err);
            }
        }
    };
    progress.clear();
    match outcome {
        Outcome::Approved { token, user } => {
            let user = match user {
                Some(user) => user,
                None => {
                    ctx.api(server, Some(token.clone()))
                        .whoami()
                        .map_err(|err| err.into_cli(server))?
                        .user
                }
            };
            Ok(LoggedIn {
                token,
                user,
                source: AuthSource::DeviceCode,
                via: None,
            })
        }
        Outcome::Denied => Err(CliError::failure(DENIED)),
        Outcome::Expired => Err(CliError::failure(TIMED_OUT)),
        Outcome::AlreadyClaimed => Err(CliError::new(
            Exit::Conflict,
            "This code was already used by another claudemesh login",
        )
        .with_hint(
            "Run `claudemesh login` to start again. If you did not start another login, \
             check `claudemesh whoami --sessions` and revoke sessions you do not recognise.",
        )),
    }
}

/// Only http(s) links are shown or opened: a link is handed to the OS's
/// opener, which would run other schemes too.
fn safe_link(url: &str) -> Option<String> {
    let url = url.trim();
    let ok = (url.starts_with("https://") || url.starts_with("http://"))
        && !url.chars().any(|c| c.is_control() || c.is_whitespace());
    ok.then(|| url.to_owned())
}

/// The link as a QR code in text, to scan with a phone.
fn qr_code(link: &str) -> Option<String> {
    use qrcode::render::unicode::Dense1x2;
    let code = qrcode::QrCode::new(link.as_bytes()).ok()?;
    Some(
        code.render::<Dense1x2>()
            .dark_color(Dense1x2::Light)
            .light_color(Dense1x2::Dark)
            .quiet_zone(true)
            .build(),
    )
}

/// How the poll loop ended.
#[derive(Debug)]
pub enum Outcome {
    /// `user` is missing only from a server that did not send it.
    Approved {
        token: Token,
        user: Option<UserSummary>,
    },
    Denied,
    Expired,
    AlreadyClaimed,
}

/// What to do after one poll.
#[derive(Debug)]
pub enum Step {
    Wait {
        delay: Duration,
        notice: Option<Notice>,
    },
    Finish(Outcome),
    Fail(CliError),
}

/// Something the person watching should know while waiting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    Retrying { detail: String, delay: Duration },
    Reconnected,
}

/// The polling decisions, without I/O.
pub struct Poller {
    interval: Duration,
    backoff: Backoff,
    server: String,
}

/// The interval the server asked for, kept within sane bounds.
fn sane_interval(seconds: f64) -> Option<Duration> {
    (seconds.is_finite() && seconds > 0.0)
        .then(|| Duration::from_secs_f64(seconds.min(MAX_INTERVAL.as_secs_f64())).max(MIN_INTERVAL))
}

impl Poller {
    pub fn new(interval_secs: f64, server: &str) -> Self {
        Self {
            interval: sane_interval(interval_secs).unwrap_or(DEFAULT_INTERVAL),
            backoff: Backoff::default(),
            server: server.to_owned(),
        }
    }

    #[cfg(test)]
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// What to do after a poll that took `took` to answer. After `pending`
    /// the next poll starts one interval after this one did: at once after a
    /// poll the server held (it waited for news), one interval later after
    /// one it answered at once.
    pub fn handle(&mut self, result: Result<DevicePollResponse, ApiError>, took: Duration) -> Step {
        match result {
            Ok(answer) => {
                let notice = (self.backoff.failures() > 0).then_some(Notice::Reconnected);
                self.backoff.reset();
                match answer.status {
                    DeviceCodeStatus::Pending => Step::Wait {
                        delay: self.interval.saturating_sub(took),
                        notice,
                    },
                    DeviceCodeStatus::Denied => Step::Finish(Outcome::Denied),
                    DeviceCodeStatus::Expired => Step::Finish(Outcome::Expired),
                    // No token with `approved` means another poller took it
                    // (with or without the `already_claimed` flag).
                    DeviceCodeStatus::Approved => match answer.token {
                        None => Step::Finish(Outcome::AlreadyClaimed),
                        Some(text) => match Token::parse(&text) {
                            Ok(token) => Step::Finish(Outcome::Approved {
                                token,
                                user: answer.user,
                            }),
                            Err(_) => {
                                Step::Fail(CliError::failure("The server sent a malformed token"))
                            }
                        },
                    },
                }
            }
            Err(ApiError::SlowDown { interval }) => {
                self.interval = sane_interval(interval)
                    .unwrap_or_else(|| (self.interval * 2).min(MAX_INTERVAL));
                Step::Wait {
                    delay: self.interval,
                    notice: None,
                }
            }
            Err(err) if err.is_transient() => {
                let delay = self.backoff.next_delay();
                let detail = match &err {
                    ApiError::Transport(detail) => detail.clone(),
                    other => other
                        .status()
                        .map_or_else(|| "no answer".to_owned(), |s| format!("HTTP {s}")),
                };
                Step::Wait {
                    delay,
                    notice: Some(Notice::Retrying { detail, delay }),
                }
            }
            Err(ApiError::Status { status: 404, .. }) => Step::Fail(
                CliError::failure("The server no longer knows this login request")
                    .with_hint("Run `claudemesh login` again."),
            ),
            Err(err) => Step::Fail(err.into_cli(&self.server)),
        }
    }
}

/// The wait, shown as a spinner on a terminal, as plain lines otherwise.
enum Progress {
    Spinner(ProgressBar, Output),
    Plain(Output),
}

const WAITING: &str = "Waiting for confirmation…";

impl Progress {
    fn start(out: &Output) -> Self {
        if out.interactive() {
            let spinner = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template("{msg} {spinner}") {
                spinner.set_style(style);
            }
            spinner.set_message(WAITING);
            spinner.enable_steady_tick(Duration::from_millis(100));
            Self::Spinner(spinner, out.clone())
        } else {
            out.line(WAITING);
            Self::Plain(out.clone())
        }
    }

    fn notice(&self, notice: &Notice) {
        let text = match notice {
            Notice::Retrying { detail, delay } => format!(
                "Lost contact with the server ({detail}); retrying in {:.1}s",
                delay.as_secs_f64()
            ),
            Notice::Reconnected => "Reconnected to the server.".to_owned(),
        };
        match self {
            Self::Spinner(spinner, out) => spinner.suspend(|| match notice {
                Notice::Retrying { .. } => out.warn(&text),
                Notice::Reconnected => out.line(&text),
            }),
            Self::Plain(out) => match notice {
                Notice::Retrying { .. } => out.warn(&text),
                Notice::Reconnected => out.line(&text),
            },
        }
    }

    fn clear(&self) {
        if let Self::Spinner(spinner, _) = self {
            spinner.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use claudemesh_api::ErrorBody;

    fn answer(
        status: DeviceCodeStatus,
        token: Option<String>,
        claimed: bool,
    ) -> DevicePollResponse {
        DevicePollResponse {
            status,
            token,
            user: None,
            already_claimed: claimed,
        }
    }

    fn poller() -> Poller {
        Poller::new(1.5, "http://server")
    }

    /// How long a poll takes that the server answers at once.
    const QUICK: Duration = Duration::from_millis(5);

    #[test]
    fn polls_at_the_servers_interval_within_bounds() {
        assert_eq!(poller().interval(), Duration::from_millis(1500));
        assert_eq!(Poller::new(0.01, "s").interval(), MIN_INTERVAL);
        assert_eq!(Poller::new(1e9, "s").interval(), MAX_INTERVAL);
        assert_eq!(Poller::new(f64::NAN, "s").interval(), DEFAULT_INTERVAL);
        assert_eq!(Poller::new(-3.0, "s").interval(), DEFAULT_INTERVAL);
    }

    #[test]
    fn a_quick_pending_waits_out_the_interval_from_the_start_of_the_poll() {
        // A server that does not know `wait` answers at once: plain polling.
        let mut p = poller();
        let step = p.handle(Ok(answer(DeviceCodeStatus::Pending, None, false)), QUICK);
        assert!(
            matches!(step, Step::Wait { delay, notice: None } if delay == Duration::from_millis(1495))
        );
        let step = p.handle(
            Ok(answer(DeviceCodeStatus::Pending, None, false)),
            Duration::from_millis(600),
        );
        assert!(matches!(step, Step::Wait { delay, .. } if delay == Duration::from_millis(900)));
    }

    #[test]
    fn after_a_poll_the_server_held_the_next_goes_at_once() {
        let mut p = poller();
        for took in [
            POLL_WAIT,
            Duration::from_millis(1500),
            Duration::from_secs(3),
        ] {
            let step = p.handle(Ok(answer(DeviceCodeStatus::Pending, None, false)), took);
            assert!(
                matches!(step, Step::Wait { delay, notice: None } if delay.is_zero()),
                "{took:?}"
            );
        }
    }

    #[test]
    fn final_states_finish() {
        let token = Token::generate(TokenKind::Session);
        let mut p = poller();
        assert!(matches!(
            p.handle(Ok(answer(DeviceCodeStatus::Denied, None, false)), QUICK),
            Step::Finish(Outcome::Denied)
        ));
        assert!(matches!(
            p.handle(Ok(answer(DeviceCodeStatus::Expired, None, false)), QUICK),
            Step::Finish(Outcome::Expired)
        ));
        match p.handle(
            Ok(answer(
                DeviceCodeStatus::Approved,
                Some(token.expose().into()),
                false,
            )),
            QUICK,
        ) {
            Step::Finish(Outcome::Approved { token: got, .. }) => assert_eq!(got, token),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn approved_without_a_token_is_already_claimed() {
        for flag in [true, false] {
            assert!(matches!(
                poller().handle(Ok(answer(DeviceCodeStatus::Approved, None, flag)), QUICK),
                Step::Finish(Outcome::AlreadyClaimed)
            ));
        }
    }

    #[test]
    fn a_malformed_token_fails_without_echoing_it() {
        let step = poller().handle(
            Ok(answer(
                DeviceCodeStatus::Approved,
                Some("cm_pat_secretjunk".into()),
                false,
            )),
            QUICK,
        );
        match step {
            Step::Fail(err) => assert!(!err.message.contains("secretjunk")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn slow_down_adopts_the_interval_the_server_asks_for() {
        let mut p = poller();
        let step = p.handle(Err(ApiError::SlowDown { interval: 5.0 }), QUICK);
        assert!(matches!(step, Step::Wait { delay, .. } if delay == Duration::from_secs(5)));
        assert_eq!(p.interval(), Duration::from_secs(5));
        // Later quick pending answers keep the slower pace.
        let step = p.handle(Ok(answer(DeviceCodeStatus::Pending, None, false)), QUICK);
        assert!(
            matches!(step, Step::Wait { delay, .. } if delay == Duration::from_secs(5) - QUICK)
        );
        // A slow_down without a usable interval doubles it.
        p.handle(Err(ApiError::SlowDown { interval: 0.0 }), QUICK);
        assert_eq!(p.interval(), Duration::from_secs(10));
    }

    #[test]
    fn network_failures_back_off_and_recovery_is_announced() {
        let mut p = poller();
        let mut delays = Vec::new();
        for _ in 0..7 {
            match p.handle(Err(ApiError::Transport("connection refused".into())), QUICK) {
                Step::Wait {
                    delay,
                    notice: Some(Notice::Retrying { .. }),
                } => delays.push(delay.as_secs_f64()),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(delays, [1.5, 3.0, 6.0, 12.0, 24.0, 30.0, 30.0]);
        let step = p.handle(
            Err(ApiError::Status {
                status: 503,
                body: None,
            }),
            QUICK,
        );
        assert!(matches!(step, Step::Wait { delay, .. } if delay == Duration::from_secs(30)));
        let step = p.handle(Ok(answer(DeviceCodeStatus::Pending, None, false)), QUICK);
        assert!(matches!(
            step,
            Step::Wait {
                notice: Some(Notice::Reconnected),
                ..
            }
        ));
        // The schedule starts over after a success.
        let step = p.handle(Err(ApiError::Transport("reset".into())), QUICK);
        assert!(matches!(step, Step::Wait { delay, .. } if delay == Duration::from_millis(1500)));
    }

    #[test]
    fn an_unknown_code_or_a_client_error_stops_at_once() {
        let step = poller().handle(
            Err(ApiError::Status {
                status: 404,
                body: None,
            }),
            QUICK,
        );
        assert!(matches!(step, Step::Fail(err) if err.exit == Exit::Failure));
        let body: ErrorBody =
            serde_json::from_str(r#"{"error":"invalid_request","message":"bad"}"#)
                .expect("an error body");
        let step = poller().handle(
            Err(ApiError::Status {
                status: 400,
                body: Some(body),
            }),
            QUICK,
        );
        assert!(matches!(step, Step::Fail(err) if err.exit == Exit::InvalidArgs));
    }

    #[test]
    fn only_web_links_are_shown_or_opened() {
        assert_eq!(
            safe_link(" https://claudemesh.com/cli-auth?code=BCDF-GHJK ").as_deref(),
            Some("https://claudemesh.com/cli-auth?code=BCDF-GHJK")
        );
        assert!(safe_link("http://127.0.0.1:3000/cli-auth").is_some());
        for bad in [
            "file:///etc/passwd",
            "javascript:alert(1)",
            "https://a b",
            "https://x\ny",
        ] {
            assert_eq!(safe_link(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_qr_code_renders_as_text() {
        let qr = qr_code("https://claudemesh.com/cli-auth?code=BCDF-GHJK").unwrap();
        assert!(qr.lines().count() > 10);
        assert!(qr.contains('█') || qr.contains('▀') || qr.contains('▄'));
    }

    #[test]
    fn failed_logins_are_told_apart_for_telemetry() {
        let cases = [
            (CliError::failure(DENIED), LoginFailure::Denied),
            (CliError::failure(TIMED_OUT), LoginFailure::Expired),
            (
                CliError::failure(BAD_TOKEN_FORMAT),
                LoginFailure::InvalidTokenFormat,
            ),
            (
                CliError::new(Exit::Auth, "Token rejected"),
                LoginFailure::TokenRejected,
            ),
            (
                CliError::new(Exit::Conflict, "This code was already used"),
                LoginFailure::AlreadyClaimed,
            ),
            (
                CliError::unreachable("http://s", "refused"),
                LoginFailure::Network,
            ),
            (
                CliError::failure("Could not save the login to /x: disk full"),
                LoginFailure::NotSaved,
            ),
            (
                CliError::failure("The server sent a malformed token"),
                LoginFailure::Other,
            ),
        ];
        for (err, reason) in cases {
            assert_eq!(failure_reason(&err), reason, "{err}");
        }
    }
}
