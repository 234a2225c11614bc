//! The welcome wizard (bare `claudemesh` on a terminal, and `claudemesh
//! <invite link>`), driven as a person drives it: the real binary on a
//! pseudo-terminal (spawned by expectrl), keys typed into it, and what it
//! writes rendered by a terminal emulator (vt100, the pty's 80×24), so that
//! the assertions are about the screen a person sees: which menu is there,
//! which line the ▸ marks, whether the cursor is visible. Where Claude Code
//! would start, the test double (`examples/fake_claude.rs`) starts on the
//! same terminal and reports, one JSON line each, what it was given.
//!
//! expectrl makes the terminal and starts the program on it; a thread reads
//! the terminal's output whole, for the emulator (rather than expectrl's
//! `expect`, which spins while it waits and keeps only what it matched).
//!
//! The terminal starts as a person's does, with echo on. Keys are typed when
//! the program reads them (echo off while it does), as a person types at a
//! prompt they see. Every wait is for something to appear on the screen or
//! in what was written, for the program to read, or for it to end, each
//! bounded by the safety limit; nothing waits a fixed time.

use crate::harness::*;
use expectrl::process::unix::WaitStatus;
use expectrl::session::OsSession;
use std::num::NonZeroU16;
use std::sync::mpsc as std_mpsc;
use std::time::Instant;

/// The size ptyprocess gives the terminal, which the emulator copies.
const ROWS: u16 = 24;
const COLS: u16 = 80;

const UP: &str = "\x1b[A";
const DOWN: &str = "\x1b[B";
const HOME_KEY: &str = "\x1b[H";
const END_KEY: &str = "\x1b[F";
const ENTER: &str = "\r";
const ESC: &str = "\x1b";
const CTRL_C: &str = "\x03";
const BACKSPACE: &str = "\x7f";

const HIDE_CURSOR: &str = "\x1b[?25l";
const SHOW_CURSOR: &str = "\x1b[?25h";

const WELCOME: [&str; 5] = [
    "Sign in (opens the browser)",
    "Paste an access token",
    "Join via invite URL",
    "Create account",
    "Exit",
];
const LAUNCH: [&str; 5] = [
    "Continue",
    "Change mesh",
    "Change name",
    "Change role",
    "Cancel",
];

// ------------------------------------------------------------------ harness

/// `claudemesh ARGS` about to start on a terminal of its own.
struct OnTerminal {
    command: Command,
}

impl Cli {
    /// `claudemesh ARGS` on a pseudo-terminal, in a clean environment: this
    /// machine's config directory and server, the double as Claude Code,
    /// `TERM=xterm`, an English UTF-8 locale, no telemetry, and no display
    /// (so a sign-in never opens a browser).
    fn on_terminal(&self, args: &[&str]) -> OnTerminal {
        // The terminal a person has echoes what they type (ptyprocess turns
        // echo off): `stty echo` first, then the binary itself, same pid.
        let mut command = Command::new("/bin/sh");
        command
            .arg("-c")
            .arg("stty echo && exec \"$0\" \"$@\"")
            .arg(env!("CARGO_BIN_EXE_claudemesh"))
            .args(args)
            .env_clear()
            .env("CLAUDEMESH_HOME", &self.config_dir)
            .env("CLAUDEMESH_API_URL", &self.api_url)
            .env("CLAUDEMESH_CLAUDE_BIN", fake_claude())
            .env("HOME", self.config_dir.parent().expect("a home"))
            .env("PATH", "/usr/bin:/bin")
            .env("TERM", "xterm")
            .env("LANG", "en_US.UTF-8")
            // As `Cli::cmd`: no usage telemetry (and no notice of it).
            .env("CLAUDEMESH_TELEMETRY", "0");
        OnTerminal { command }
    }
}

impl OnTerminal {
    fn env(mut self, name: &str, value: &str) -> Self {
        self.command.env(name, value);
        self
    }

    fn start(self) -> Terminal {
        let session = OsSession::spawn(self.command).expect("the binary starts on a pty");
        let mut master = session
            .get_process()
            .get_raw_handle()
            .expect("the pty's master side");
        let (tx, output) = std_mpsc::channel();
        // Blocking reads on a thread of their own: `None` when every
        // process on the terminal has let go of it.
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                match master.read(&mut buf) {
                    Ok(0) | Err(_) => {
                        let _ = tx.send(None);
                        break;
                    }
                    Ok(n) => {
                        if tx.send(Some(buf[..n].to_vec())).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        let size = |n| NonZeroU16::new(n).expect("not zero");
        Terminal {
            session,
            output,
            emulator: vt100::Parser::new(size(ROWS), size(COLS), 0),
            written: Vec::new(),
            typed_at: 0,
            ended: false,
        }
    }
}

/// A program on a terminal, as a person at it sees it. Dropping it ends
/// the program (ptyprocess signals it).
struct Terminal {
    session: OsSession,
    output: std_mpsc::Receiver<Option<Vec<u8>>>,
    emulator: vt100::Parser,
    /// Everything written to the terminal so far.
    written: Vec<u8>,
    /// `written.len()` when a key was last typed.
    typed_at: usize,
    ended: bool,
}

/// How a program on a terminal ended.
#[derive(Debug)]
struct Left {
    code: i32,
    /// The signal that killed it, if one did (then `code` is 128 + it, as
    /// a shell reports it).
    signal: Option<i32>,
    screen: String,
    text: String,
    written: String,
    cursor_hidden: bool,
    echo: Option<bool>,
}

impl Terminal {
    /// The screen now, row by row (trailing blanks trimmed).
    fn rows(&self) -> Vec<String> {
        self.emulator
            .screen()
            .rows(0, COLS)
            .map(|row| row.trim_end().to_owned())
            .collect()
    }

    fn screen(&self) -> String {
        self.rows().join("\n")
    }

    /// Everything written so far, without the terminal's escape codes, one
    /// string a line (what follows a carriage return, where one was
    /// written over).
    fn text_lines(&self) -> Vec<String> {
        plain(&self.written)
            .split('\n')
            .map(|l| {
                let line = l.trim_end_matches('\r');
                line.rsplit('\r').next().unwrap_or(line).to_owned()
            })
            .collect()
    }

    fn context(&self) -> String {
        format!(
            "--- the screen\n{}\n--- everything written, plain\n{}",
            self.screen(),
            self.text_lines().join("\n")
        )
    }

    /// Reads what comes until `done` holds, within the safety limit.
    fn wait(&mut self, what: &str, done: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + SAFETY_LIMIT;
        loop {
            if done(self) {
                return;
            }
            if self.ended {
                panic!("the terminal closed before {what}\n{}", self.context());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.output.recv_timeout(left) {
                Ok(Some(bytes)) => {
                    self.emulator.process(&bytes);
                    self.written.extend_from_slice(&bytes);
                }
                Ok(None) | Err(std_mpsc::RecvTimeoutError::Disconnected) => self.ended = true,
                Err(std_mpsc::RecvTimeoutError::Timeout) => {
                    panic!("never saw {what}\n{}", self.context())
                }
            }
        }
    }

    /// Whether anything was written since the last key.
    fn answered(&self) -> bool {
        self.written.len() > self.typed_at
    }

    /// Waits until the screen shows `text` (after the last key's answer).
    fn shows(&mut self, text: &str) {
        self.wait(&format!("{text:?} on the screen"), |t| {
            t.answered() && t.screen().contains(text)
        });
    }

    /// Waits until the cursor sits on a row that starts with `prompt`: a
    /// prompt just asked (an earlier one may still be on the screen).
    fn asks(&mut self, prompt: &str) {
        self.wait(&format!("the prompt {prompt:?}"), |t| {
            let (row, _) = t.emulator.screen().cursor_position();
            t.answered()
                && t.rows()
                    .get(usize::from(row))
                    .is_some_and(|r| r.starts_with(prompt))
        });
    }

    /// Waits until the screen has every one of `rows` as a whole row.
    fn shows_rows(&mut self, rows: &[&str]) {
        self.wait(&format!("the rows {rows:?}"), |t| {
            let screen = t.rows();
            t.answered() && rows.iter().all(|r| screen.iter().any(|s| s == r))
        });
    }

    /// Waits until the one menu on the screen is `labels` with the ▸ on
    /// `marked`.
    fn shows_menu(&mut self, labels: &[&str], marked: &str) {
        self.wait(&format!("the menu {labels:?} marked at {marked:?}"), |t| {
            let menu = menu_rows(&t.rows());
            t.answered()
                && menu
                    .iter()
                    .map(|(_, l)| l.as_str())
                    .eq(labels.iter().copied())
                && menu
                    .iter()
                    .filter(|(m, _)| *m)
                    .map(|(_, l)| l.as_str())
                    .eq([marked])
        });
    }

    /// Waits until a line written (escape codes aside) satisfies `wanted`.
    fn line_where(&mut self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        self.wait(what, |t| t.text_lines().iter().any(|l| wanted(l)));
        self.text_lines()
            .into_iter()
            .find(|l| wanted(l))
            .expect("just seen")
    }

    /// The double's `kind` report (its first), once written.
    fn report(&mut self, kind: &str) -> Value {
        let line = self.line_where(&format!("the double's {kind} report"), |l| {
            report_of(l).is_some_and(|r| r["event"] == kind)
        });
        report_of(&line).expect("just parsed")
    }

    /// Waits until the program reads what is typed: echo off (the terminal
    /// echoes otherwise), as a menu, a text prompt and a secret's prompt
    /// turn it while they read. Keys typed before that would be the line
    /// discipline's (Backspace erasing, Ctrl-C a signal, all echoed).
    fn reading(&mut self) {
        let deadline = Instant::now() + SAFETY_LIMIT;
        loop {
            let echo = self
                .session
                .get_process()
                .get_echo()
                .expect("the terminal's settings");
            if !echo {
                return;
            }
            if self.ended || Instant::now() > deadline {
                panic!("the program never read the keyboard\n{}", self.context());
            }
            // A short tick, taking what is written meanwhile.
            match self.output.recv_timeout(Duration::from_millis(10)) {
                Ok(Some(bytes)) => {
                    self.emulator.process(&bytes);
                    self.written.extend_from_slice(&bytes);
                }
                Ok(None) | Err(std_mpsc::RecvTimeoutError::Disconnected) => self.ended = true,
                Err(std_mpsc::RecvTimeoutError::Timeout) => {}
            }
        }
    }

    /// Types keys once the program reads them, in one write (escape
    /// sequences whole, as a terminal sends them).
    fn press(&mut self, keys: &str) {
        self.reading();
        self.send(keys);
    }

    fn type_line(&mut self, text: &str) {
        self.press(&format!("{text}{ENTER}"));
    }

    /// Writes to the terminal as it is.
    fn send(&mut self, bytes: &str) {
        self.typed_at = self.written.len();
        self.session
            .get_stream_mut()
            .write_all(bytes.as_bytes())
            .expect("type into the terminal");
    }

    /// Waits for the program to end and the terminal to close.
    fn finish(mut self) -> Left {
        self.wait("the terminal close", |t| t.ended);
        let deadline = Instant::now() + SAFETY_LIMIT;
        let status = loop {
            match self.session.get_process().status() {
                Ok(WaitStatus::StillAlive) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Ok(status) => break status,
                Err(err) => panic!("wait for the program: {err}\n{}", self.context()),
            }
        };
        let (code, signal) = match status {
            WaitStatus::Exited(_, code) => (code, None),
            WaitStatus::Signaled(_, signal, _) => (128 + signal as i32, Some(signal as i32)),
            other => panic!("the program did not end: {other:?}\n{}", self.context()),
        };
        Left {
            code,
            signal,
            screen: self.screen(),
            text: self.text_lines().join("\n"),
            written: String::from_utf8_lossy(&self.written).into_owned(),
            cursor_hidden: self.emulator.screen().hide_cursor(),
            // The terminal's own setting, which outlives the program.
            echo: self.session.get_process().get_echo().ok(),
        }
    }
}

impl Left {
    /// It exited with `code` (killed by no signal: 130 is its own).
    fn expect_code(self, code: i32) -> Self {
        assert_eq!(self.code, code, "exit code\n{}", self.context());
        assert_eq!(self.signal, None, "killed by a signal\n{}", self.context());
        self
    }

    fn context(&self) -> String {
        format!(
            "--- the screen\n{}\n--- everything written, plain\n{}",
            self.screen, self.text
        )
    }

    /// The terminal is as a person left it: the cursor shown again after
    /// the last time it was hidden, and echo on.
    fn terminal_restored(&self) -> &Self {
        let hidden = self.written.rfind(HIDE_CURSOR);
        let shown = self.written.rfind(SHOW_CURSOR);
        assert!(
            hidden.is_none() || shown > hidden,
            "the cursor is left hidden\n{}",
            self.context()
        );
        assert!(
            !self.cursor_hidden,
            "the cursor is hidden\n{}",
            self.context()
        );
        assert_eq!(self.echo, Some(true), "echo is off\n{}", self.context());
        self
    }

    /// Claude Code never started.
    fn nothing_launched(&self) -> &Self {
        assert!(
            !self.text.contains("Launching Claude Code")
                && !self.text.lines().any(|l| report_of(l).is_some()),
            "something was launched\n{}",
            self.context()
        );
        self
    }

    fn cancelled(&self) -> &Self {
        assert!(
            self.screen.contains("✘ Cancelled"),
            "no cancel message\n{}",
            self.context()
        );
        self.terminal_restored().nothing_launched()
    }
}

/// A line of the double's: one JSON object.
fn report_of(line: &str) -> Option<Value> {
    line.starts_with('{')
        .then(|| serde_json::from_str::<Value>(line).ok())
        .flatten()
        .filter(|r| r["event"].is_string())
}

/// The escape codes a terminal acts on, removed.
fn plain(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\x1b' {
            out.push(c);
            continue;
        }
        match chars.next() {
            // CSI: parameters, then one final byte in @..~.
            Some('[') => {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            // OSC: up to BEL or ESC \.
            Some(']') => {
                while let Some(c) = chars.next() {
                    if c == '\x07' || (c == '\x1b' && chars.next_if_eq(&'\\').is_some()) {
                        break;
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// The menu lines of a screen (`▸ 1. Continue`, `  2. Change mesh`):
/// whether each is marked, and its label.
fn menu_rows(rows: &[String]) -> Vec<(bool, String)> {
    rows.iter()
        .filter_map(|row| {
            let (marked, rest) = match row.strip_prefix("▸ ") {
                Some(rest) => (true, rest),
                None => (false, row.strip_prefix("  ")?),
            };
            let (number, label) = rest.split_once(". ")?;
            (!number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()))
                .then(|| (marked, label.to_owned()))
        })
        .collect()
}

/// The status rows of the launch screen, as drawn.
fn status(account: &str, mesh: &str, name: &str, role: Option<&str>) -> Vec<String> {
    vec![
        "██ claudemesh launch".to_owned(),
        format!("Account  ✔ {account}"),
        format!("Mesh     ✔ {mesh}"),
        format!("Name     ✔ {name}"),
        match role {
            Some(role) => format!("Role     ✔ {role}"),
            None => "Role     – (none)".to_owned(),
        },
    ]
}

fn strs(rows: &[String]) -> Vec<&str> {
    rows.iter().map(String::as_str).collect()
}

/// A session of the double that started: the session file launch wrote
/// (read while the double runs), and the double's reports.
struct Started {
    args: Value,
    session: Value,
    dir: PathBuf,
}

/// After Continue: waits for the double to start and to list its MCP
/// server's tools, and checks what it was given.
fn launched(t: &mut Terminal, cli: &Cli, slug: &str, name: &str) -> Started {
    t.line_where("the launch line", |l| {
        l == format!("✔ Launching Claude Code in {slug} as {name}")
    });
    let started = t.report("started");
    let args = t.report("args");
    let dir = PathBuf::from(
        started["env"]["CLAUDEMESH_CONFIG_DIR"]
            .as_str()
            .expect("CLAUDEMESH_CONFIG_DIR is set"),
    );
    let session: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("session.json")).expect("session.json while it runs"),
    )
    .expect("session.json is JSON");
    assert_eq!(
        dir.parent(),
        Some(cli.config_dir.join("sessions").as_path())
    );
    assert_eq!(started["env"]["CLAUDEMESH_DISPLAY_NAME"], name);
    // The session's MCP configuration and channel, as `launch` passes them.
    let mcp_json = dir.join("mcp.json").display().to_string();
    assert_eq!(
        started["argv"],
        json!([
            format!("--mcp-config={mcp_json}"),
            "--dangerously-load-development-channels=server:claudemesh"
        ])
    );
    assert_eq!(args["mcp_config"], json!([mcp_json]));
    assert_eq!(args["channels"], json!(["server:claudemesh"]));
    let mcp = t.report("mcp_config");
    assert_eq!(
        mcp["servers"]["claudemesh"]["command"],
        env!("CARGO_BIN_EXE_claudemesh")
    );
    assert_eq!(session["mesh_slug"], slug);
    assert_eq!(session["display_name"], name);
    // Its MCP server runs: the session works.
    let tools = t.report("tools");
    assert!(
        tools["tools"]
            .as_array()
            .is_some_and(|tools| tools.iter().any(|tool| tool["name"] == "send_message")),
        "{tools}"
    );
    Started { args, session, dir }
}

/// Tells the double (reading the terminal) to exit with `code`; launch's
/// exit follows.
fn exit_double(mut t: Terminal, started: &Started, code: i32) -> Left {
    // The double reads lines, echo on.
    t.send(&format!("{}{ENTER}", json!({"exit": code})));
    let exiting = t.report("exiting");
    assert_eq!(exiting["code"], code);
    let left = t.finish();
    assert!(!started.dir.exists(), "the session directory is removed");
    left
}

// ------------------------------------------------------ the welcome menu

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_welcome_menu_moves_with_the_arrows_and_exit_leaves() {
    let server = server(Engine::Sqlite).await;
    let cli = Cli::for_server(&server);

    let mut t = cli.on_terminal(&[]).start();
    t.shows("██ claudemesh");
    t.shows_menu(&WELCOME, WELCOME[0]);
    t.press(DOWN);
    t.shows_menu(&WELCOME, WELCOME[1]);
    t.press(DOWN);
    t.shows_menu(&WELCOME, WELCOME[2]);
    t.press(UP);
    t.shows_menu(&WELCOME, WELCOME[1]);
    t.press(END_KEY);
    t.shows_menu(&WELCOME, WELCOME[4]);
    // Down from the last wraps to the first, up from the first to the last.
    t.press(DOWN);
    t.shows_menu(&WELCOME, WELCOME[0]);
    t.press(UP);
    t.shows_menu(&WELCOME, WELCOME[4]);
    t.press(HOME_KEY);
    t.shows_menu(&WELCOME, WELCOME[0]);
    t.press("j");
    t.shows_menu(&WELCOME, WELCOME[1]);
    // A digit picks its line at once, wherever the marker is.
    t.press("5");
    let left = t.finish().expect_code(0);
    left.terminal_restored().nothing_launched();
    assert!(
        !left.screen.contains("Paste an access token"),
        "the menu is erased\n{}",
        left.context()
    );
    assert!(!cli.auth_path().exists());

    // Enter picks the marked line.
    let mut t = cli.on_terminal(&[]).start();
    t.shows_menu(&WELCOME, WELCOME[0]);
    t.press(UP);
    t.shows_menu(&WELCOME, WELCOME[4]);
    t.press(ENTER);
    t.finish()
        .expect_code(0)
        .terminal_restored()
        .nothing_launched();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn esc_q_and_ctrl_c_cancel_with_the_terminal_restored() {
    let server = server(Engine::Sqlite).await;
    let cli = Cli::for_server(&server);

    // At the welcome menu: Esc, q, Ctrl-C (a key there, read raw).
    for key in [ESC, "q", CTRL_C] {
        let mut t = cli.on_terminal(&[]).start();
        t.shows_menu(&WELCOME, WELCOME[0]);
        t.press(DOWN);
        t.shows_menu(&WELCOME, WELCOME[1]);
        t.press(key);
        let left = t.finish().expect_code(130);
        left.cancelled();
        assert!(
            !left.screen.contains("Paste an access token"),
            "{key:?}: the menu is erased\n{}",
            left.context()
        );
    }

    // At a text prompt (the token's, which turns echo off): Ctrl-C.
    let mut t = cli.on_terminal(&[]).start();
    t.shows_menu(&WELCOME, WELCOME[0]);
    t.press("2");
    t.asks("Access token (cm_pat_…)");
    t.press("cm_pat_half");
    t.press(CTRL_C);
    let left = t.finish().expect_code(130);
    left.terminal_restored().nothing_launched();
    assert!(!left.text.contains("cm_pat_half"), "{}", left.context());
    assert!(!cli.auth_path().exists());
}

// ----------------------------------------------- a pasted token, launched

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pasted_token_signs_in_and_launches_claude_code() {
    let server = server(Engine::Sqlite).await;
    // A mesh made in the browser: no machine of Alice's has joined it yet.
    let dev = server
        .mesh_with(&["Alice"], MeshOptions::named("Dev"))
        .await;
    let slug = &dev.slug;
    let pat = dev.admin().user.create_pat("wizard", None).await;
    let cli = Cli::for_server(&server);

    let mut t = cli.on_terminal(&[]).start();
    t.shows_menu(&WELCOME, WELCOME[0]);
    // A token that is none: said so, and the menu again.
    t.press("2");
    t.asks("Access token (cm_pat_…)");
    t.type_line("cm_pat_typo");
    t.shows("✘ Invalid token format (expected cm_pat_…)");
    t.shows_menu(&WELCOME, WELCOME[0]);
    assert!(!cli.auth_path().exists());

    t.press(DOWN);
    t.shows_menu(&WELCOME, WELCOME[1]);
    t.press(ENTER);
    t.asks("Access token (cm_pat_…)");
    assert!(menu_rows(&t.rows()).is_empty(), "{}", t.context());
    t.type_line(&pat.token);
    t.shows("✔ Authenticated as Alice");
    // Straight to the launch screen: the one mesh is chosen, Continue marked.
    let rows = status("Alice", &format!("Dev ({slug})"), "Alice", None);
    t.shows_rows(&strs(&rows));
    t.shows_menu(&LAUNCH, "Continue");
    assert!(
        !String::from_utf8_lossy(&t.written).contains(&pat.token),
        "the token was shown\n{}",
        t.context()
    );
    assert_eq!(cli.auth_json()["source"], "pat");

    t.press(ENTER);
    let started = launched(&mut t, &cli, slug, "Alice");
    assert_eq!(started.session["role"], "");
    assert_eq!(started.args["prompt"], Value::Null);
    // Claude Code's exit code is the wizard's.
    let left = exit_double(t, &started, 7).expect_code(7);
    left.terminal_restored();
    assert!(
        !left.written.contains(&pat.token),
        "the token was shown\n{}",
        left.context()
    );
}

// ----------------------------------------------------- a returning user

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_returning_user_changes_name_and_role_then_launches() {
    let server = server(Engine::Sqlite).await;
    let alice = server.register("Alice").await;
    let cli = machine(&server, &alice).await;
    cli.cmd(["create", "Dev"]).run().await.expect_code(0);

    let mut t = cli.on_terminal(&[]).start();
    t.shows_rows(&strs(&status("Alice", "Dev (dev)", "Alice", None)));
    t.shows_menu(&LAUNCH, "Continue");
    assert!(!t.screen().contains("Paste an access token"));

    // Change name: the prompt starts from the current one.
    t.press(DOWN);
    t.shows_menu(&LAUNCH, "Change mesh");
    t.press(DOWN);
    t.shows_menu(&LAUNCH, "Change name");
    t.press(ENTER);
    t.asks("Your name in the mesh: Alice");
    // What is typed in one go is read in one go, as a paste is.
    t.type_line(&format!("{}Ally", BACKSPACE.repeat("Alice".len())));
    t.shows_rows(&strs(&status("Alice", "Dev (dev)", "Ally", None)));
    t.shows_menu(&LAUNCH, "Continue");

    // Change role, by its digit.
    t.press("4");
    t.asks("Role (optional, e.g. reviewer)");
    t.type_line("reviewer");
    t.shows_rows(&strs(&status(
        "Alice",
        "Dev (dev)",
        "Ally",
        Some("reviewer"),
    )));
    t.shows_menu(&LAUNCH, "Continue");

    // A name that is no name is refused; the row keeps the last good one.
    t.press("3");
    t.asks("Your name in the mesh");
    t.type_line(&BACKSPACE.repeat("Ally".len()));
    t.shows("✘ ");
    t.shows_rows(&strs(&status(
        "Alice",
        "Dev (dev)",
        "Ally",
        Some("reviewer"),
    )));
    t.shows_menu(&LAUNCH, "Continue");

    t.press(ENTER);
    let started = launched(&mut t, &cli, "dev", "Ally");
    assert_eq!(started.session["role"], "reviewer");
    exit_double(t, &started, 0)
        .expect_code(0)
        .terminal_restored();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_two_meshes_the_picker_comes_first() {
    let server = server(Engine::Sqlite).await;
    let alice = server.register("Alice").await;
    let cli = machine(&server, &alice).await;
    cli.cmd(["create", "Dev"]).run().await.expect_code(0);
    cli.cmd(["create", "Ops"]).run().await.expect_code(0);
    let picker = [
        "Dev (dev)",
        "Ops (ops)",
        "Create a mesh",
        "Join via invite URL",
        "Cancel",
    ];

    let mut t = cli.on_terminal(&[]).start();
    t.shows("Pick a mesh (2 available):");
    t.shows_menu(&picker, "Dev (dev)");
    assert!(!t.screen().contains("Account  ✔"), "{}", t.context());
    t.press("1");
    t.shows_rows(&strs(&status("Alice", "Dev (dev)", "Alice", None)));
    t.shows_menu(&LAUNCH, "Continue");

    // Change mesh: the picker again; the second is used.
    t.press("2");
    t.shows("Pick a mesh (2 available):");
    t.shows_menu(&picker, "Dev (dev)");
    t.press(DOWN);
    t.shows_menu(&picker, "Ops (ops)");
    t.press(ENTER);
    t.shows_rows(&strs(&status("Alice", "Ops (ops)", "Alice", None)));
    t.shows_menu(&LAUNCH, "Continue");
    t.press(ENTER);
    let started = launched(&mut t, &cli, "ops", "Alice");
    assert_eq!(
        started.session["mesh_id"],
        cli.local_mesh(&server, "ops")["mesh_id"]
    );
    exit_double(t, &started, 3)
        .expect_code(3)
        .terminal_restored();
}

// ---------------------------------------------------------------- cancel

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_at_any_step_exits_130_and_launches_nothing() {
    let server = server(Engine::Sqlite).await;
    let alice = server.register("Alice").await;
    let one = machine(&server, &alice).await;
    one.cmd(["create", "Dev"]).run().await.expect_code(0);
    let two = machine(&server, &alice).await;
    two.cmd(["sync"]).run().await.expect_code(0);
    two.cmd(["create", "Ops"]).run().await.expect_code(0);

    // The mesh picker: Cancel, Esc.
    for key in ["5", ESC] {
        let mut t = two.on_terminal(&[]).start();
        t.shows("Pick a mesh (2 available):");
        t.press(key);
        t.finish().expect_code(130).cancelled();
    }
    // The launch screen: Cancel (by arrows and Enter), Esc, Ctrl-C.
    for key in [&format!("{UP}{ENTER}"), ESC, CTRL_C] {
        let mut t = one.on_terminal(&[]).start();
        t.shows_menu(&LAUNCH, "Continue");
        t.press(key);
        let left = t.finish().expect_code(130);
        left.cancelled();
        assert!(!left.screen.contains("Change role"), "{}", left.context());
    }
    // The name prompt: Ctrl-C.
    let mut t = one.on_terminal(&[]).start();
    t.shows_menu(&LAUNCH, "Continue");
    t.press("3");
    t.asks("Your name in the mesh");
    t.press(CTRL_C);
    t.finish()
        .expect_code(130)
        .terminal_restored()
        .nothing_launched();

    for cli in [&one, &two] {
        let sessions = cli.config_dir.join("sessions");
        assert!(
            !sessions.exists() || std::fs::read_dir(&sessions).expect("read").count() == 0,
            "no session directory"
        );
    }
}

// --------------------------------------------------------------- Spanish

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spanish_locale_gets_the_wizard_in_spanish() {
    let server = server(Engine::Sqlite).await;
    let alice = server.register("Alice").await;
    let cli = Cli::for_server(&server);

    let mut t = cli.on_terminal(&[]).env("LANG", "es_ES.UTF-8").start();
    let welcome = [
        "Iniciar sesión (abre el navegador)",
        "Pegar un token de acceso",
        "Unirse con una invitación",
        "Crear una cuenta",
        "Salir",
    ];
    t.shows_menu(&welcome, welcome[0]);
    t.press("2");
    t.asks("Token de acceso (cm_pat_…)");
    let pat = alice.create_pat("portátil", None).await;
    t.type_line(&pat.token);
    let mesh_rows = [
        "Cuenta   ✔ Alice",
        "Nombre   ✔ Alice",
        "Rol      – (ninguno)",
    ];
    let picker = ["Crear una mesh", "Unirse con una invitación", "Cancelar"];
    // No mesh yet: create one, in Spanish.
    t.shows("Aún no estás en ninguna mesh:");
    t.shows_menu(&picker, "Crear una mesh");
    t.press(ENTER);
    t.asks("Nombre de la nueva mesh");
    t.type_line("Equipo");
    t.shows_rows(&mesh_rows);
    t.shows_rows(&["Mesh     ✔ Equipo (equipo)"]);
    t.shows_menu(
        &[
            "Continuar",
            "Cambiar de mesh",
            "Cambiar el nombre",
            "Cambiar el rol",
            "Cancelar",
        ],
        "Continuar",
    );
    t.press(ESC);
    t.finish()
        .expect_code(130)
        .terminal_restored()
        .nothing_launched();
}

// ------------------------------------------------------- not a terminal

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_a_terminal_it_prints_the_help_and_exits_3_without_waiting() {
    let server = server(Engine::Sqlite).await;
    let alice = server.register("Alice").await;
    let fresh = Cli::for_server(&server);
    let signed_in = machine(&server, &alice).await;
    signed_in.cmd(["create", "Dev"]).run().await.expect_code(0);

    for cli in [&fresh, &signed_in] {
        // stdin a pipe kept open: a wizard that waited for it would hang.
        let mut command = cli.cmd([]).command;
        command
            .env("CLAUDEMESH_CLAUDE_BIN", fake_claude())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("the binary starts");
        let stdin = child.stdin.take();
        let mut stdout = child.stdout.take().expect("stdout");
        let mut stderr = child.stderr.take().expect("stderr");
        let Some(status) = exit_of(&mut child).await else {
            let _ = child.kill();
            panic!("bare claudemesh off a terminal waited");
        };
        drop(stdin);
        let (mut out, mut err) = (String::new(), String::new());
        stdout.read_to_string(&mut out).expect("stdout");
        stderr.read_to_string(&mut err).expect("stderr");
        assert_eq!(status.code(), Some(3), "{out}\n{err}");
        assert!(out.contains("Usage: claudemesh"), "{out}");
        assert!(out.contains("launch"), "{out}");
        assert!(
            err.ends_with(
                "✘ No command given, and no terminal to ask in\n\
                 Run `claudemesh launch --mesh SLUG -y` to launch without questions.\n"
            ),
            "{err}"
        );
    }
}

// --------------------------------------------------------- invite links

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invite_link_joins_and_reaches_the_launch_screen_in_that_mesh() {
    let server = server(Engine::Sqlite).await;
    let alice = server.register("Alice").await;
    let cli = machine(&server, &alice).await;
    // Alice has a mesh of her own: the one she was invited to is chosen
    // all the same, with no picker.
    cli.cmd(["create", "Dev"]).run().await.expect_code(0);
    let ops = server.mesh_with(&["Bob"], MeshOptions::named("Ops")).await;
    let slug = &ops.slug;
    let invite = ops.invite(json!({})).await;
    let link = invite["url"].as_str().expect("a link");
    assert!(link.starts_with(&server.base_url), "{link}");

    let mut t = cli.on_terminal(&[link]).start();
    t.shows(&format!("✔ Joined Ops ({slug}) as member"));
    t.shows_rows(&strs(&status(
        "Alice",
        &format!("Ops ({slug})"),
        "Alice",
        None,
    )));
    t.shows_menu(&LAUNCH, "Continue");
    assert!(!t.screen().contains("Pick a mesh"), "{}", t.context());
    assert_eq!(cli.local_meshes(&server).len(), 2);

    t.press(ENTER);
    let started = launched(&mut t, &cli, slug, "Alice");
    assert_eq!(started.session["role"], "");
    exit_double(t, &started, 0)
        .expect_code(0)
        .terminal_restored();
}

// ------------------------------------------ a fresh install, signed in

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_install_signs_in_in_the_browser_joins_by_invite_and_launches() {
    let server = server(Engine::Sqlite).await;
    let alice = server.register("Alice").await;
    let ops = server.mesh_with(&["Bob"], MeshOptions::named("Ops")).await;
    let slug = &ops.slug;
    let invite = ops.invite(json!({})).await;
    let link = invite["url"].as_str().expect("a link");
    let cli = Cli::for_server(&server);

    // Join via invite URL: the link first, then the sign-in it needs.
    let mut t = cli.on_terminal(&[]).start();
    t.shows_menu(&WELCOME, WELCOME[0]);
    t.press("3");
    t.asks("Invite link");
    t.type_line(link);
    // No display: the link and the code, no browser.
    let code = t.line_where("a user code", is_user_code_line);
    assert_eq!(alice.approve(code.trim()).await.status(), 200);
    t.shows(&format!("✔ Joined Ops ({slug}) as member"));
    t.shows_rows(&strs(&status(
        "Alice",
        &format!("Ops ({slug})"),
        "Alice",
        None,
    )));
    t.shows_menu(&LAUNCH, "Continue");
    assert_eq!(cli.auth_json()["source"], "device-code");
    t.press(ENTER);
    let started = launched(&mut t, &cli, slug, "Alice");
    exit_double(t, &started, 0)
        .expect_code(0)
        .terminal_restored();
}

// ------------------------------------------------- rows wider than the screen

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_wider_than_the_terminal_is_redrawn_in_place() {
    let server = server(Engine::Sqlite).await;
    let alice = server.register("Alice").await;
    let cli = machine(&server, &alice).await;
    let name = "Platform infrastructure and developer tooling for payments";
    cli.cmd(["create", name]).run().await.expect_code(0);
    let slug = cli.local_meshes(&server)[0]["slug"]
        .as_str()
        .expect("a slug")
        .to_owned();
    // `Mesh     ✔ NAME (SLUG)` takes two rows of the 80 columns.
    assert!(11 + name.len() + slug.len() + 3 > usize::from(COLS));

    let mut t = cli.on_terminal(&[]).start();
    t.shows_menu(&LAUNCH, "Continue");
    for (key, marked) in [
        (DOWN, "Change mesh"),
        (DOWN, "Change name"),
        (UP, "Change mesh"),
    ] {
        t.press(key);
        t.shows_menu(&LAUNCH, marked);
        let titles = t
            .rows()
            .iter()
            .filter(|r| *r == "██ claudemesh launch")
            .count();
        assert_eq!(titles, 1, "the screen after {key:?}\n{}", t.context());
    }
    t.press(ESC);
    let left = t.finish().expect_code(130);
    left.cancelled();
    assert!(
        !left.screen.contains("██ claudemesh launch") && !left.screen.contains(name),
        "the launch screen is erased\n{}",
        left.context()
    );
}
