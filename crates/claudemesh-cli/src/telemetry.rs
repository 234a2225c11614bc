//! Usage telemetry (DESIGN 11; every field sent is listed in
//! docs/telemetry.md).
//!
//! Opt-out, and honest about it: the first run says so once, on stderr
//! ([`NOTICE`]); `claudemesh telemetry off`, `CLAUDEMESH_TELEMETRY=0` or
//! `DO_NOT_TRACK=1` turn it off, and off means nothing is recorded or sent.
//! Events go only to the claudemesh server this machine is signed in to
//! (the saved login's; for `logout`, the one it signed out of), and each
//! event only to the server it is about: one recorded while talking to
//! server A never goes to server B. Not signed in anywhere, nothing is sent.
//!
//! It never slows a command down or makes it fail:
//! - recording appends one line to a spool file, at most
//!   [`MAX_SPOOL_EVENTS`] events and [`MAX_SPOOL_BYTES`] (the oldest go);
//! - sending runs on a thread of its own: what earlier runs left, as the
//!   command starts, and the rest once it has ended, when the command waits
//!   for it at most [`SEND_BUDGET`]. The process then exits whatever the
//!   thread is doing: an event whose answer was lost is sent again, and the
//!   server stores it once;
//! - a server that fails, or does not answer within the budget, is left
//!   alone for a while (`backoff`, written before each send and removed
//!   when the answer comes), so a dead server costs one wait, not one per
//!   command;
//! - every I/O error (no network, a full disk, a read-only home) is
//!   swallowed: a command's output and exit code are its own.
//!
//! The files live in `<config dir>/telemetry/` (0700): `telemetry.json`
//! (0600: on or off, the random install id, when the notice was shown),
//! `spool.jsonl`, `backoff`, and `lock`, held for a moment around each
//! change of the spool so concurrent claudemesh processes keep each other's
//! events (never waited on longer than [`LOCK_WAIT`]).
//!
//! `claudemesh mcp` (the stdio server Claude Code starts) has no telemetry
//! at all: its stdout is MCP's, and it is no command a person runs.

use crate::base::http_agent;
use crate::base::output::Output;
use crate::base::private_file;
use crate::base::when;
use crate::cli::{Cli, Command};
use crate::stores::auth_store::AuthStore;
use claudemesh_api::ErrorCode;
use claudemesh_api::telemetry::{
    ApiErrorProperties, CliCommand, CommandExecutedProperties, LoginFailedProperties, LoginFailure,
    LoginMethod, LoginStartedProperties, LoginSucceededProperties, LogoutProperties,
    MAX_EVENTS_PER_BATCH, TelemetryBatch, TelemetryEvent, is_user_id,
};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::{Duration, Instant};

/// The first-run notice (the spec's words).
pub const NOTICE: &str =
    "claudemesh collects anonymized usage telemetry. Disable with `claudemesh telemetry off`.";
/// The longest a command waits, once it has ended, for its events to be sent.
pub const SEND_BUDGET: Duration = Duration::from_millis(300);
pub const MAX_SPOOL_EVENTS: usize = 1000;
pub const MAX_SPOOL_BYTES: u64 = 256 * 1024;
/// Below this size the spool cannot hold more than [`MAX_SPOOL_EVENTS`]
/// (no event line is shorter than 64 bytes), so its lines are not counted.
const COUNT_LINES_ABOVE: u64 = 64 * 1024;
/// The longest anything waits for another process's hold on the spool.
const LOCK_WAIT: Duration = Duration::from_millis(50);
/// Batches one send goes through at most (the whole spool).
const BATCHES_PER_SEND: usize = MAX_SPOOL_EVENTS / MAX_EVENTS_PER_BATCH;
/// After a failure, or no answer in time: try that server again after this.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(15 * 60);
/// A server without `/api/telemetry` (an older one): ask again a day later.
const RETRY_WITHOUT_ENDPOINT: Duration = Duration::from_secs(24 * 3600);
/// Only the sending thread ever waits on these.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

const DIR: &str = "telemetry";
const STATE_FILE: &str = "telemetry.json";
const SPOOL_FILE: &str = "spool.jsonl";
const BACKOFF_FILE: &str = "backoff";
const LOCK_FILE: &str = "lock";

/// What turned telemetry off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum OffBecause {
    #[serde(rename = "claudemesh telemetry off")]
    Command,
    #[serde(rename = "DO_NOT_TRACK")]
    DoNotTrack,
    #[serde(rename = "CLAUDEMESH_TELEMETRY")]
    ClaudemeshTelemetry,
}

impl OffBecause {
    pub fn describe(self) -> &'static str {
        match self {
            Self::Command => "`claudemesh telemetry off`",
            Self::DoNotTrack => "DO_NOT_TRACK is set",
            Self::ClaudemeshTelemetry => "CLAUDEMESH_TELEMETRY is 0",
        }
    }
}

/// Whether the environment turns telemetry off: `CLAUDEMESH_TELEMETRY`
/// 0/false/off/no, or `DO_NOT_TRACK` set to anything but empty or 0/false
/// (consoledonottrack.com).
pub fn env_says_off(
    claudemesh_telemetry: Option<&str>,
    do_not_track: Option<&str>,
) -> Option<OffBecause> {
    let no = |value: &str| {
        matches!(
            value.trim().to_ascii_lowercase().as_str(),
            "0" | "false" | "off" | "no"
        )
    };
    if claudemesh_telemetry.is_some_and(no) {
        return Some(OffBecause::ClaudemeshTelemetry);
    }
    if do_not_track.is_some_and(|value| !value.trim().is_empty() && !no(value)) {
        return Some(OffBecause::DoNotTrack);
    }
    None
}

fn env_off() -> Option<OffBecause> {
    env_says_off(
        std::env::var("CLAUDEMESH_TELEMETRY").ok().as_deref(),
        std::env::var("DO_NOT_TRACK").ok().as_deref(),
    )
}

/// The subcommand that ran, as reported; `None` for `claudemesh mcp` and
/// the hidden `man-pages`.
pub fn command_of(cli: &Cli) -> Option<CliCommand> {
    Some(match &cli.command {
        None => CliCommand::Welcome,
        Some(Command::Login(_)) => CliCommand::Login,
        Some(Command::Logout(_)) => CliCommand::Logout,
        Some(Command::Whoami(_)) => CliCommand::Whoami,
        Some(Command::Create(_)) => CliCommand::Create,
        Some(Command::List(_)) => CliCommand::List,
        Some(Command::Sync(_)) => CliCommand::Sync,
        Some(Command::Invite(_)) => CliCommand::Invite,
        Some(Command::Join(_)) => CliCommand::Join,
        Some(Command::Leave(_)) => CliCommand::Leave,
        Some(Command::Peers(_)) => CliCommand::Peers,
        Some(Command::Send(_)) => CliCommand::Send,
        Some(Command::Inbox(_)) => CliCommand::Inbox,
        Some(Command::Launch(_)) => CliCommand::Launch,
        Some(Command::Doctor(_)) => CliCommand::Doctor,
        Some(Command::Completions(_)) => CliCommand::Completions,
        Some(Command::Telemetry(_)) => CliCommand::Telemetry,
        Some(Command::Members(_)) => CliCommand::Members,
        Some(Command::Mesh(_)) => CliCommand::Mesh,
        Some(Command::Grant(_)) => CliCommand::Grant,
        Some(Command::Revoke(_)) => CliCommand::Revoke,
        Some(Command::Block(_)) => CliCommand::Block,
        Some(Command::Unblock(_)) => CliCommand::Unblock,
        Some(Command::Grants(_)) => CliCommand::Grants,
        Some(Command::Log(crate::cli::LogCommand::Tail(_))) => CliCommand::LogTail,
        Some(Command::Log(crate::cli::LogCommand::Verify(_))) => CliCommand::LogVerify,
        Some(Command::Approve(_)) => CliCommand::Approve,
        Some(Command::Deny(_)) => CliCommand::Deny,
        Some(Command::Stream(crate::cli::StreamCommand::Subscribe(_))) => {
            CliCommand::StreamSubscribe
        }
        Some(Command::Mcp(_) | Command::ManPages(_)) => return None,
        Some(Command::External(words)) => match words.as_slice() {
            [word] if crate::base::args::looks_like_invite(word) => CliCommand::OpenInvite,
            _ => CliCommand::Unknown,
        },
    })
}

/// The events of one command, or nothing when telemetry is off. Cheap to
/// clone (the API client holds one).
#[derive(Clone, Default)]
pub struct Telemetry(Option<Arc<Active>>);

struct Active {
    files: Files,
    config_dir: PathBuf,
    install_id: String,
    command: CliCommand,
    started: Instant,
    authenticated: bool,
    /// The saved login's server as the command started: where `logout`'s
    /// events go once the login is gone.
    signed_in_at_start: Option<String>,
    /// The server the command last made an API client for.
    talking_to: Mutex<Option<String>>,
    sender: Mutex<Sender>,
    finished: AtomicBool,
}

impl Telemetry {
    pub fn off() -> Self {
        Self(None)
    }

    /// Telemetry for the command about to run: off when the environment,
    /// the setting or the command says so; on the first run, prints the
    /// notice (once: only when the setting that says so could be saved).
    /// Starts sending what earlier runs left, to the saved login's server.
    /// `token_given`: the command got a token from `--token` or
    /// `CLAUDEMESH_TOKEN` (it then runs signed in without a saved login).
    pub fn start(cli: &Cli, config_dir: &Path, out: &Output, token_given: bool) -> Self {
        let Some(command) = command_of(cli) else {
            return Self::off();
        };
        // `claudemesh telemetry` keeps its own setting; it reports nothing.
        if command == CliCommand::Telemetry || env_off().is_some() {
            return Self::off();
        }
        let files = Files::new(config_dir);
        let state = match files.load_state() {
            Some(state) if !state.enabled => return Self::off(),
            Some(state) if state.notice_shown_at.is_some() => state,
            // The first run (or a damaged file): say so, if it can be kept.
            other => {
                let state = State {
                    enabled: true,
                    install_id: other.map_or_else(random_id, |s| s.install_id),
                    notice_shown_at: Some(when::now_rfc3339()),
                };
                if files.save_state(&state).is_err() {
                    return Self::off();
                }
                out.line(NOTICE);
                state
            }
        };
        let signed_in_at_start = saved_server(config_dir);
        let telemetry = Self(Some(Arc::new(Active {
            files,
            config_dir: config_dir.to_owned(),
            install_id: state.install_id,
            command,
            started: Instant::now(),
            authenticated: token_given || signed_in_at_start.is_some(),
            signed_in_at_start: signed_in_at_start.clone(),
            talking_to: Mutex::new(None),
            sender: Mutex::new(Sender::default()),
            finished: AtomicBool::new(false),
        })));
        if let Some(server) = signed_in_at_start
            && let Some(active) = &telemetry.0
            && active.files.has_spool()
        {
            active.send(server);
        }
        telemetry
    }

    /// The command is about to talk to `server` (its events are about it).
    pub fn talking_to(&self, server: &str) {
        if let Some(active) = &self.0 {
            *lock(&active.talking_to) = Some(server.to_owned());
        }
    }

    pub fn login_started(&self, server: &str, method: LoginMethod) {
        self.record(Some(server), |id, at| TelemetryEvent::LoginStarted {
            id,
            at,
            properties: LoginStartedProperties { method },
        });
    }

    pub fn login_succeeded(&self, server: &str, method: LoginMethod, user_id: &str) {
        // Anything but a user id (an odd server's) is not sent.
        if !is_user_id(user_id) {
            return;
        }
        self.record(Some(server), |id, at| TelemetryEvent::LoginSucceeded {
            id,
            at,
            properties: LoginSucceededProperties {
                method,
                user_id: user_id.to_owned(),
            },
        });
    }

    pub fn login_failed(&self, server: &str, method: LoginMethod, reason: LoginFailure) {
        self.record(Some(server), |id, at| TelemetryEvent::LoginFailed {
            id,
            at,
            properties: LoginFailedProperties { method, reason },
        });
    }

    /// The saved login of `server` was removed.
    pub fn logout(&self, server: Option<&str>, user_id: Option<&str>) {
        let user_id = user_id.filter(|id| is_user_id(id)).map(str::to_owned);
        self.record(server, |id, at| TelemetryEvent::Logout {
            id,
            at,
            properties: LogoutProperties { user_id },
        });
    }

    /// `server` answered a request to `endpoint` (a route template) with
    /// an error status.
    pub fn api_error(
        &self,
        server: &str,
        endpoint: &'static str,
        status: u16,
        error_code: Option<ErrorCode>,
    ) {
        self.record(Some(server), |id, at| TelemetryEvent::ApiError {
            id,
            at,
            properties: ApiErrorProperties {
                endpoint: endpoint.to_owned(),
                status,
                error_code,
            },
        });
    }

    /// The command has ended with `exit_code` (and said so): records
    /// `cli.command.executed` and sends what there is, waiting at most
    /// [`SEND_BUDGET`]. Only the first call counts (`launch` calls it
    /// before it exits with Claude Code's status).
    pub fn finish(&self, exit_code: u8) {
        let Some(active) = &self.0 else { return };
        if active.finished.swap(true, Ordering::SeqCst) {
            return;
        }
        let deadline = Instant::now() + SEND_BUDGET;
        // Turned off meanwhile (by another process): nothing more.
        if !active.files.load_state().is_some_and(|state| state.enabled) || env_off().is_some() {
            return;
        }
        let duration_ms = u64::try_from(active.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let server = lock(&active.talking_to).clone();
        self.record(server.as_deref(), |id, at| {
            TelemetryEvent::CommandExecuted {
                id,
                at,
                properties: CommandExecutedProperties {
                    command: active.command,
                    exit_code,
                    duration_ms,
                    authenticated: active.authenticated,
                },
            }
        });
        if let Some(server) =
            saved_server(&active.config_dir).or_else(|| active.signed_in_at_start.clone())
        {
            active.send(server);
        }
        active.wait_for_sends(deadline);
    }

    fn record(&self, server: Option<&str>, event: impl FnOnce(String, String) -> TelemetryEvent) {
        let Some(active) = &self.0 else { return };
        let spooled = Spooled {
            server: server.map(str::to_owned),
            event: event(random_id(), when::now_rfc3339()),
        };
        if let Ok(line) = serde_json::to_string(&spooled) {
            let _ = active.files.append(&line);
        }
    }
}

impl Active {
    /// Sends what is waiting for `server`, on the sending thread.
    fn send(&self, server: String) {
        let mut sender = lock(&self.sender);
        if sender.jobs.is_none() {
            let (jobs, queue) = mpsc::channel::<String>();
            let (report, done) = mpsc::channel::<()>();
            let files = self.files.clone();
            let install_id = self.install_id.clone();
            let spawned = std::thread::Builder::new()
                .name("telemetry".into())
                .spawn(move || {
                    for server in queue {
                        send_pending(&files, &install_id, &server);
                        if report.send(()).is_err() {
                            break;
                        }
                    }
                });
            if spawned.is_err() {
                return;
            }
            sender.jobs = Some(jobs);
            sender.done = Some(done);
        }
        if sender
            .jobs
            .as_ref()
            .is_some_and(|jobs| jobs.send(server).is_ok())
        {
            sender.queued += 1;
        }
    }

    /// Waits until the sends queued are done, or `deadline`.
    fn wait_for_sends(&self, deadline: Instant) {
        let mut sender = lock(&self.sender);
        while sender.queued > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            match sender.done.as_ref().map(|done| done.recv_timeout(left)) {
                Some(Ok(())) => sender.queued -= 1,
                _ => break,
            }
        }
    }
}

/// The sending thread's queue.
#[derive(Default)]
struct Sender {
    jobs: Option<mpsc::Sender<String>>,
    done: Option<mpsc::Receiver<()>>,
    queued: usize,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The server of the saved login, read quietly (no warnings: the command
/// itself reports on its login).
fn saved_server(config_dir: &Path) -> Option<String> {
    AuthStore::new(config_dir.to_owned())
        .salvage()
        .map(|(_, server)| server)
}

/// 16 random bytes in lowercase base32: an install id or an event id.
fn random_id() -> String {
    let mut bytes = [0u8; 16];
    // No randomness at all is no reason to fail a command: such ids are
    // refused by the server, and the event with them.
    let _ = getrandom::fill(&mut bytes);
    data_encoding::BASE32_NOPAD
        .encode(&bytes)
        .to_ascii_lowercase()
}

// -------------------------------------------------------------------- sending

/// Sends the spooled events for `server` (and those for no server in
/// particular), a batch at a time, removing each batch the server took or
/// refused; stops at the first failure, leaving the rest for later.
fn send_pending(files: &Files, install_id: &str, server: &str) {
    if files.backed_off(server) {
        return;
    }
    for _ in 0..BATCHES_PER_SEND {
        let events = files.batch_for(server);
        if events.is_empty() {
            return;
        }
        // Written before, removed once answered: a send cut short by the
        // process exiting counts as a failure.
        files.back_off(server, RETRY_AFTER_FAILURE);
        let batch = TelemetryBatch {
            install_id: install_id.to_owned(),
            cli_version: env!("CARGO_PKG_VERSION").to_owned(),
            os: std::env::consts::OS.to_owned(),
            arch: std::env::consts::ARCH.to_owned(),
            events,
        };
        match post(server, &batch) {
            Answer::Taken | Answer::Refused => {
                files.clear_backoff();
                let ids: Vec<&str> = batch.events.iter().map(TelemetryEvent::id).collect();
                files.remove(&ids);
            }
            Answer::TryAgainIn(wait) => {
                files.back_off(server, wait);
                return;
            }
        }
    }
}

/// What the server made of a batch.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    Taken,
    /// Refused as malformed (by a server of another version): never sent again.
    Refused,
    TryAgainIn(Duration),
}

fn post(server: &str, batch: &TelemetryBatch) -> Answer {
    let agent = http_agent::agent(CONNECT_TIMEOUT, REQUEST_TIMEOUT);
    // Compact (ureq's own send_json pretty-prints, twice the bytes).
    let Ok(body) = serde_json::to_vec(batch) else {
        return Answer::Refused;
    };
    let request = agent
        .post(format!("{server}/api/telemetry"))
        .header("content-type", "application/json");
    match request.send(&body[..]) {
        Ok(response) => {
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.trim().parse::<u64>().ok());
            answer(response.status().as_u16(), retry_after)
        }
        Err(_) => Answer::TryAgainIn(RETRY_AFTER_FAILURE),
    }
}

fn answer(status: u16, retry_after: Option<u64>) -> Answer {
    match status {
        200..=299 => Answer::Taken,
        400 | 413 | 422 => Answer::Refused,
        429 => Answer::TryAgainIn(Duration::from_secs(
            retry_after.unwrap_or(60).clamp(1, 3600),
        )),
        404 | 405 => Answer::TryAgainIn(RETRY_WITHOUT_ENDPOINT),
        _ => Answer::TryAgainIn(RETRY_AFTER_FAILURE),
    }
}

// ---------------------------------------------------------------------- files

/// `telemetry.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    enabled: bool,
    install_id: String,
    /// When the first-run notice was shown.
    notice_shown_at: Option<String>,
}

/// One spool line.
#[derive(Serialize, Deserialize)]
struct Spooled {
    /// The server the event is about (it goes there only); none: whichever
    /// this machine is signed in to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    server: Option<String>,
    event: TelemetryEvent,
}

/// When sends to `server` may start again.
#[derive(Serialize, Deserialize)]
struct Backoff {
    server: String,
    until_ms: i64,
}

/// The telemetry directory. Every method swallows or returns I/O errors;
/// none panics.
#[derive(Debug, Clone)]
struct Files {
    dir: PathBuf,
}

impl Files {
    fn new(config_dir: &Path) -> Self {
        Self {
            dir: config_dir.join(DIR),
        }
    }

    fn load_state(&self) -> Option<State> {
        let text = fs::read_to_string(self.dir.join(STATE_FILE)).ok()?;
        serde_json::from_str(&text).ok()
    }

    fn save_state(&self, state: &State) -> io::Result<()> {
        private_file::prepare_dir(&self.dir).map_err(io::Error::other)?;
        let text = serde_json::to_string_pretty(state).map_err(io::Error::other)?;
        private_file::write_atomic(&self.dir, STATE_FILE, text.as_bytes()).map(|_| ())
    }

    /// Holds the spool for a moment, or gives up after [`LOCK_WAIT`].
    fn lock(&self) -> io::Result<fs::File> {
        let mut options = fs::OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(self.dir.join(LOCK_FILE))?;
        let deadline = Instant::now() + LOCK_WAIT;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(file),
                Err(fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(fs::TryLockError::WouldBlock) => {
                    return Err(io::Error::new(
                        io::ErrorKind::WouldBlock,
                        "the telemetry spool is busy",
                    ));
                }
                Err(fs::TryLockError::Error(err)) => return Err(err),
            }
        }
    }

    fn spool_path(&self) -> PathBuf {
        self.dir.join(SPOOL_FILE)
    }

    fn has_spool(&self) -> bool {
        fs::metadata(self.spool_path()).is_ok_and(|meta| meta.len() > 0)
    }

    /// Appends one event line, then drops the oldest past the bounds.
    fn append(&self, line: &str) -> io::Result<()> {
        let _held = self.lock()?;
        let mut options = fs::OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(self.spool_path())?;
        file.write_all(format!("{line}\n").as_bytes())?;
        let size = file.metadata()?.len();
        if size > MAX_SPOOL_BYTES || size > COUNT_LINES_ABOVE {
            let lines = self.read_lines();
            let kept = keep_newest(&lines);
            if kept.len() < lines.len() {
                self.write_lines(kept)?;
            }
        }
        Ok(())
    }

    fn read_lines(&self) -> Vec<String> {
        fs::read_to_string(self.spool_path())
            .map(|text| {
                text.lines()
                    .filter(|line| !line.trim().is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Replaces the spool (held) with `lines`; no file when there are none.
    fn write_lines(&self, lines: &[String]) -> io::Result<()> {
        if lines.is_empty() {
            return match fs::remove_file(self.spool_path()) {
                Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
                _ => Ok(()),
            };
        }
        private_file::write_atomic(&self.dir, SPOOL_FILE, lines.join("\n").as_bytes()).map(|_| ())
    }

    /// The events waiting.
    fn pending(&self) -> usize {
        self.read_lines().len()
    }

    /// The oldest events for `server` (or for no server in particular),
    /// a batch's worth. Lines that do not parse are skipped (and go with the
    /// next trim).
    fn batch_for(&self, server: &str) -> Vec<TelemetryEvent> {
        let Ok(_held) = self.lock() else {
            return Vec::new();
        };
        self.read_lines()
            .iter()
            .filter_map(|line| serde_json::from_str::<Spooled>(line).ok())
            .filter(|spooled| spooled.server.as_deref().is_none_or(|s| s == server))
            .map(|spooled| spooled.event)
            .take(MAX_EVENTS_PER_BATCH)
            .collect()
    }

    /// Removes the events with these ids (and lines that do not parse).
    fn remove(&self, ids: &[&str]) {
        let Ok(_held) = self.lock() else { return };
        let lines = self.read_lines();
        let kept: Vec<String> = lines
            .iter()
            .filter(|line| {
                serde_json::from_str::<Spooled>(line)
                    .is_ok_and(|spooled| !ids.contains(&spooled.event.id()))
            })
            .cloned()
            .collect();
        if kept.len() < lines.len() {
            let _ = self.write_lines(&kept);
        }
    }

    /// Deletes the spool and the backoff (telemetry turned off).
    fn forget(&self) -> usize {
        let Ok(_held) = self.lock() else { return 0 };
        let pending = self.read_lines().len();
        let _ = fs::remove_file(self.spool_path());
        let _ = fs::remove_file(self.dir.join(BACKOFF_FILE));
        pending
    }

    fn backed_off(&self, server: &str) -> bool {
        fs::read_to_string(self.dir.join(BACKOFF_FILE))
            .ok()
            .and_then(|text| serde_json::from_str::<Backoff>(&text).ok())
            .is_some_and(|backoff| backoff.server == server && backoff.until_ms > when::now_ms())
    }

    /// Not a private file (a server URL and a time), and not synced: lost,
    /// it only means one more try.
    fn back_off(&self, server: &str, wait: Duration) {
        let backoff = Backoff {
            server: server.to_owned(),
            until_ms: when::now_ms()
                .saturating_add(i64::try_from(wait.as_millis()).unwrap_or(i64::MAX)),
        };
        if let Ok(text) = serde_json::to_string(&backoff) {
            let _ = fs::write(self.dir.join(BACKOFF_FILE), text);
        }
    }

    fn clear_backoff(&self) {
        let _ = fs::remove_file(self.dir.join(BACKOFF_FILE));
    }
}

/// The newest lines that fit both bounds, in their order.
fn keep_newest(lines: &[String]) -> &[String] {
    let mut bytes = 0u64;
    let mut start = lines.len();
    for (i, line) in lines.iter().enumerate().rev() {
        let size = u64::try_from(line.len())
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        if lines.len() - i > MAX_SPOOL_EVENTS || bytes + size > MAX_SPOOL_BYTES {
            break;
        }
        bytes += size;
        start = i;
    }
    &lines[start..]
}

// ------------------------------------------------- `claudemesh telemetry`

/// What `claudemesh telemetry status` shows.
#[derive(Debug, Serialize)]
pub struct Status {
    pub enabled: bool,
    /// Why it is off, when it is.
    pub disabled_by: Option<OffBecause>,
    /// `null` before the first run that records anything.
    pub install_id: Option<String>,
    /// Events recorded and not sent yet.
    pub pending_events: usize,
    /// Where they go: the server this machine is signed in to.
    pub server: Option<String>,
}

pub fn status(config_dir: &Path) -> Status {
    let files = Files::new(config_dir);
    let state = files.load_state();
    let disabled_by = env_off().or_else(|| {
        state
            .as_ref()
            .is_some_and(|s| !s.enabled)
            .then_some(OffBecause::Command)
    });
    Status {
        enabled: disabled_by.is_none(),
        disabled_by,
        install_id: state.map(|s| s.install_id),
        pending_events: files.pending(),
        server: saved_server(config_dir),
    }
}

/// Turns telemetry on or off for this machine's config directory. Off
/// deletes the events not sent yet: returns how many.
pub fn set_enabled(config_dir: &Path, enabled: bool) -> io::Result<usize> {
    let files = Files::new(config_dir);
    let state = match files.load_state() {
        Some(state) => State { enabled, ..state },
        // Set before any first run: the notice has nothing left to say.
        None => State {
            enabled,
            install_id: random_id(),
            notice_shown_at: Some(when::now_rfc3339()),
        },
    };
    files.save_state(&state)?;
    Ok(if enabled { 0 } else { files.forget() })
}

/// Whether the environment overrides the setting (for `telemetry on`).
pub fn overridden_by_env() -> Option<OffBecause> {
    env_off()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_turns_it_off() {
        assert_eq!(env_says_off(None, None), None);
        for off in ["0", "false", "OFF", " no "] {
            assert_eq!(
                env_says_off(Some(off), None),
                Some(OffBecause::ClaudemeshTelemetry),
                "{off}"
            );
        }
        assert_eq!(env_says_off(Some("1"), None), None);
        for track in ["1", "true", "yes"] {
            assert_eq!(
                env_says_off(None, Some(track)),
                Some(OffBecause::DoNotTrack),
                "{track}"
            );
        }
        for track in ["", "0", "false"] {
            assert_eq!(env_says_off(None, Some(track)), None, "{track:?}");
        }
        // Do-not-track wins over an explicit 1.
        assert_eq!(
            env_says_off(Some("1"), Some("1")),
            Some(OffBecause::DoNotTrack)
        );
    }

    #[test]
    fn the_spool_keeps_the_newest_events_within_both_bounds() {
        let lines: Vec<String> = (0..1500).map(|i| format!("{i:0>100}")).collect();
        let kept = keep_newest(&lines);
        assert_eq!(kept.len(), MAX_SPOOL_EVENTS);
        assert_eq!(kept.last(), lines.last());
        let long: Vec<String> = (0..600).map(|i| format!("{i:0>999}")).collect();
        let kept = keep_newest(&long);
        assert_eq!(kept.len(), 262);
        assert_eq!(kept.first(), Some(&long[600 - 262]));
        assert!(keep_newest(&[]).is_empty());
    }

    #[test]
    fn answers_decide_what_happens_to_a_batch() {
        assert_eq!(answer(200, None), Answer::Taken);
        assert_eq!(answer(400, None), Answer::Refused);
        assert_eq!(answer(413, None), Answer::Refused);
        assert_eq!(
            answer(429, Some(7)),
            Answer::TryAgainIn(Duration::from_secs(7))
        );
        assert_eq!(
            answer(429, None),
            Answer::TryAgainIn(Duration::from_secs(60))
        );
        assert_eq!(
            answer(404, None),
            Answer::TryAgainIn(RETRY_WITHOUT_ENDPOINT)
        );
        assert_eq!(answer(503, None), Answer::TryAgainIn(RETRY_AFTER_FAILURE));
    }

    fn spooled(server: Option<&str>) -> String {
        let event = TelemetryEvent::Logout {
            id: random_id(),
            at: when::now_rfc3339(),
            properties: LogoutProperties { user_id: None },
        };
        serde_json::to_string(&Spooled {
            server: server.map(str::to_owned),
            event,
        })
        .unwrap()
    }

    #[test]
    fn a_batch_holds_only_the_servers_events_and_sent_ones_go() {
        let home = tempfile::tempdir().unwrap();
        let files = Files::new(home.path());
        fs::create_dir(&files.dir).unwrap();
        for server in [Some("http://a"), None, Some("http://b"), Some("http://a")] {
            files.append(&spooled(server)).unwrap();
        }
        assert_eq!(files.pending(), 4);
        let batch = files.batch_for("http://a");
        assert_eq!(batch.len(), 3);
        let ids: Vec<&str> = batch.iter().map(TelemetryEvent::id).collect();
        files.remove(&ids);
        assert_eq!(files.pending(), 1);
        assert_eq!(files.batch_for("http://a").len(), 0);
        assert_eq!(files.batch_for("http://b").len(), 1);
        assert_eq!(files.forget(), 1);
        assert!(!files.has_spool());
    }

    #[test]
    fn a_backoff_holds_for_its_server_only() {
        let home = tempfile::tempdir().unwrap();
        let files = Files::new(home.path());
        fs::create_dir(&files.dir).unwrap();
        files.back_off("http://a", Duration::from_secs(60));
        assert!(files.backed_off("http://a"));
        assert!(!files.backed_off("http://b"));
        files.back_off("http://a", Duration::ZERO);
        assert!(!files.backed_off("http://a"));
        files.back_off("http://a", Duration::from_secs(60));
        files.clear_backoff();
        assert!(!files.backed_off("http://a"));
    }

    #[test]
    fn appending_past_the_bounds_drops_the_oldest() {
        let home = tempfile::tempdir().unwrap();
        let files = Files::new(home.path());
        fs::create_dir(&files.dir).unwrap();
        let first = spooled(None);
        files.append(&first).unwrap();
        for _ in 0..MAX_SPOOL_EVENTS {
            files.append(&spooled(None)).unwrap();
        }
        let lines = files.read_lines();
        assert_eq!(lines.len(), MAX_SPOOL_EVENTS);
        assert!(!lines.contains(&first));
        assert!(fs::metadata(files.spool_path()).unwrap().len() <= MAX_SPOOL_BYTES);
    }
}
