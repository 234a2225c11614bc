//! Usage telemetry, over the real binary and the real server: which events
//! arrive, what turns them off, what they never hold, and that neither a
//! dead server nor a full spool or disk changes what a command does.
//!
//! The rest of the suite runs with `CLAUDEMESH_TELEMETRY=0`; these tests
//! turn it back on (`telemetry_on`), as a user has it.
//!
//! Sending at exit waits at most 300 ms. On a loaded machine a send can be
//! cut short; its events then wait in the spool behind a backoff, as they
//! would for a user. [`arrived`] lets that backoff pass and sends again, so
//! no assertion here depends on the machine's speed; timings are asserted
//! with wide bounds and printed (`--nocapture`) for the figures.

use crate::harness::{Cli, Finished, Invocation, dead_url, server};
use claudemesh_api::{Token, TokenKind};
use claudemesh_testkit::{Engine, TestServer};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const NOTICE: &str =
    "claudemesh collects anonymized usage telemetry. Disable with `claudemesh telemetry off`.";
/// What `claudemesh join !!` says (and exits 3 for), with or without telemetry.
const NOT_AN_INVITE: &str = "✘ That is not an invite link or code\n\
    An invite link looks like https://claudemesh.com/i/k3xq9a2bmvjp3.\n";

impl Invocation {
    /// With telemetry as a user has it: on, unless the test sets more.
    fn telemetry_on(mut self) -> Self {
        self.command.env_remove("CLAUDEMESH_TELEMETRY");
        self
    }
}

impl Cli {
    fn telemetry_dir(&self) -> PathBuf {
        self.config_dir.join("telemetry")
    }

    fn spool(&self) -> Vec<Value> {
        std::fs::read_to_string(self.telemetry_dir().join("spool.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| serde_json::from_str(line).expect("a spool line is JSON"))
            .collect()
    }

    fn install_id(&self) -> String {
        let text = std::fs::read_to_string(self.telemetry_dir().join("telemetry.json"))
            .expect("telemetry.json");
        let state: Value = serde_json::from_str(&text).expect("JSON");
        state["install_id"]
            .as_str()
            .expect("an install id")
            .to_owned()
    }

    /// Points the saved login at another server (a dead one).
    fn move_saved_login_to(&self, url: &str) {
        let mut auth = self.auth_json();
        auth["server"] = json!(url);
        std::fs::write(self.auth_path(), auth.to_string()).expect("rewrite auth.json");
    }
}

/// A stored event: its name and properties (NULL where it has none).
#[derive(sqlx::FromRow)]
struct StoredEvent {
    name: String,
    method: Option<String>,
    reason: Option<String>,
    user_id: Option<String>,
    command: Option<String>,
    exit_code: Option<i64>,
    endpoint: Option<String>,
    status: Option<i64>,
    error_code: Option<String>,
}

/// The events the server holds for one installation, each as one line:
/// `name` and its non-null properties.
async fn stored(server: &TestServer, install_id: &str) -> Vec<String> {
    let rows: Vec<StoredEvent> = sqlx::query_as(
        "SELECT name, method, reason, user_id, command, CAST(exit_code AS BIGINT) AS exit_code, \
         endpoint, CAST(status AS BIGINT) AS status, error_code FROM telemetry_events \
         WHERE install_id = $1 ORDER BY occurred_at, name",
    )
    .bind(install_id)
    .fetch_all(server.state().pool())
    .await
    .expect("read the telemetry");
    rows.into_iter()
        .map(|row| {
            let mut line = row.name;
            for part in [
                row.method,
                row.reason,
                row.user_id,
                row.command,
                row.exit_code.map(|e| format!("exit {e}")),
                row.endpoint,
                row.status.map(|s| s.to_string()),
                row.error_code,
            ]
            .into_iter()
            .flatten()
            {
                line.push(' ');
                line.push_str(&part);
            }
            line
        })
        .collect()
}

async fn stored_count(server: &TestServer) -> i64 {
    let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM telemetry_events")
        .fetch_one(server.state().pool())
        .await
        .expect("count the telemetry");
    count
}

/// Waits until the server holds every `wanted` event of `cli`'s
/// installation; returns them all. Events a loaded machine could not send
/// within 300 ms wait behind a backoff: remove it (as time would) and run a
/// command, signed in again if need be, which sends them.
async fn arrived(server: &TestServer, cli: &Cli, pat: &str, wanted: &[&str]) -> Vec<String> {
    let install_id = cli.install_id();
    let mut events = Vec::new();
    for _ in 0..10 {
        events = stored(server, &install_id).await;
        if wanted.iter().all(|w| events.iter().any(|e| e == w)) {
            return events;
        }
        let _ = std::fs::remove_file(cli.telemetry_dir().join("backoff"));
        if !cli.auth_path().exists() {
            cli.login_with_pat(pat).await;
        }
        cli.cmd(["completions", "bash"])
            .telemetry_on()
            .run()
            .await
            .expect_code(0);
    }
    panic!("the server never got {wanted:?}; it has {events:#?}");
}

// -------------------------------------------------------------------- events

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_commands_api_errors_and_logouts_arrive_at_the_server() {
    let server = server(Engine::Sqlite).await;
    let alice = server.register("Alice").await;
    let pat = alice.create_pat("laptop", None).await;
    let cli = Cli::for_server(&server);

    // Not signed in anywhere: recorded, kept for the server they are about.
    let unknown = Token::generate(TokenKind::Pat);
    let out = cli
        .cmd(["login", "--with-token"])
        .stdin(unknown.expose())
        .telemetry_on()
        .run()
        .await
        .expect_code(2);
    assert!(
        out.stderr.starts_with(&format!("{NOTICE}\n")),
        "{}",
        out.stderr
    );
    let mut denied = cli
        .cmd(["login", "--no-browser", "--device-name", "box"])
        .telemetry_on()
        .spawn();
    let code = denied.user_code().await;
    assert_eq!(alice.deny(&code).await.status(), 200);
    let out = denied.finish().await.expect_code(1);
    assert!(!out.stderr.contains(NOTICE), "the notice is shown once");
    assert_eq!(
        stored_count(&server).await,
        0,
        "nothing sent before a login"
    );
    assert_eq!(cli.spool().len(), 7, "{:#?}", cli.spool());

    // Signed in: everything for this server goes.
    cli.cmd(["login", "--with-token"])
        .stdin(&pat.token)
        .telemetry_on()
        .run()
        .await
        .expect_code(0);
    cli.cmd(["join", "zzzzzzzzzzzz"])
        .telemetry_on()
        .run()
        .await
        .expect_code(5);
    cli.cmd(["logout"])
        .telemetry_on()
        .run()
        .await
        .expect_code(0);

    let user = &alice.user.id;
    let events = arrived(
        &server,
        &cli,
        &pat.token,
        &[
            "cli.login.started pat",
            "cli.api.error /api/my/whoami 401 invalid_token",
            "cli.login.failed pat token_rejected",
            "cli.command.executed login exit 2",
            "cli.login.started device-code",
            "cli.login.failed device-code denied",
            "cli.command.executed login exit 1",
            &format!("cli.login.succeeded pat {user}"),
            "cli.command.executed login exit 0",
            "cli.api.error /api/invites/{code} 404 not_found",
            "cli.command.executed join exit 5",
            &format!("cli.logout {user}"),
            "cli.command.executed logout exit 0",
        ],
    )
    .await;
    println!("{events:#?}");

    // Every batch carried the CLI's version and platform, under one install id.
    let platforms: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT DISTINCT cli_version, os, arch FROM telemetry_events WHERE install_id = $1",
    )
    .bind(cli.install_id())
    .fetch_all(server.state().pool())
    .await
    .unwrap();
    assert_eq!(
        platforms,
        [(
            env!("CARGO_PKG_VERSION").to_owned(),
            std::env::consts::OS.to_owned(),
            std::env::consts::ARCH.to_owned()
        )]
    );
    let (installs,): (i64,) =
        sqlx::query_as("SELECT COUNT(DISTINCT install_id) FROM telemetry_events")
            .fetch_one(server.state().pool())
            .await
            .unwrap();
    assert_eq!(installs, 1);
    let mode = |path: PathBuf| crate::harness::mode(&path);
    assert_eq!(mode(cli.telemetry_dir()), 0o700);
    assert_eq!(mode(cli.telemetry_dir().join("telemetry.json")), 0o600);
}

// ----------------------------------------------------------------------- off

/// A signed-in session of commands that would each record something.
async fn busy_afternoon(cli: &Cli, pat: &str, env: &[(&str, &str)]) -> Vec<Finished> {
    let mut outs = Vec::new();
    let runs: [(&[&str], Option<&str>, i32); 4] = [
        (&["login", "--with-token"], Some(pat), 0),
        (&["join", "zzzzzzzzzzzz"], None, 5),
        (&["whoami"], None, 0),
        (&["logout"], None, 0),
    ];
    for (args, stdin, code) in runs {
        let mut command = cli.cmd([]).telemetry_on();
        command.command.args(args);
        for (name, value) in env {
            command = command.env(name, value);
        }
        if let Some(text) = stdin {
            command = command.stdin(text);
        }
        outs.push(command.run().await.expect_code(code));
    }
    outs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_telemetry_off_nothing_is_recorded_or_sent() {
    let server = server(Engine::Sqlite).await;
    let alice = server.register("Alice").await;

    // Either variable: not even the telemetry directory is made.
    for env in [
        [("CLAUDEMESH_TELEMETRY", "0")],
        [("DO_NOT_TRACK", "1")],
        [("CLAUDEMESH_TELEMETRY", "false")],
    ] {
        let cli = Cli::for_server(&server);
        // A PAT for each afternoon, as each would be a machine of its own.
        let pat = alice.create_pat("laptop", None).await;
        for out in busy_afternoon(&cli, &pat.token, &env).await {
            assert!(!out.stderr.contains("telemetry"), "{env:?}: {}", out.stderr);
        }
        assert!(!cli.telemetry_dir().exists(), "{env:?}");
    }

    // The command: what was recorded and not sent is deleted.
    let cli = Cli::for_server(&server);
    let pat = alice.create_pat("laptop", None).await;
    cli.cmd(["whoami"])
        .telemetry_on()
        .run()
        .await
        .expect_code(2);
    assert_eq!(cli.spool().len(), 1);
    let out = cli
        .cmd(["telemetry", "off"])
        .telemetry_on()
        .run()
        .await
        .expect_code(0);
    assert_eq!(
        out.stderr,
        "✔ Telemetry is off: nothing is recorded or sent (deleted 1 event not sent yet)\n"
    );
    busy_afternoon(&cli, &pat.token, &[]).await;
    assert!(cli.spool().is_empty());
    assert!(!cli.telemetry_dir().join("spool.jsonl").exists());
    let status = cli
        .cmd(["telemetry", "status", "--json"])
        .telemetry_on()
        .run()
        .await
        .expect_code(0)
        .stdout_json();
    assert_eq!(status["enabled"], false);
    assert_eq!(status["disabled_by"], "claudemesh telemetry off");
    assert_eq!(status["pending_events"], 0);

    assert_eq!(stored_count(&server).await, 0);

    // On again; an environment variable still wins, and says so.
    let out = cli
        .cmd(["telemetry", "on"])
        .telemetry_on()
        .env("DO_NOT_TRACK", "1")
        .run()
        .await
        .expect_code(0);
    assert_eq!(
        out.stderr,
        "✔ Telemetry is on\n⚠ DO_NOT_TRACK is set: telemetry stays off while it is\n"
    );
    let out = cli
        .cmd(["telemetry"])
        .telemetry_on()
        .run()
        .await
        .expect_code(0);
    assert!(out.stdout.starts_with("Telemetry: on\n"), "{}", out.stdout);
    assert!(out.stdout.contains("Sent to:     nowhere: not signed in"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_notice_comes_once_on_stderr_and_never_from_the_mcp_server() {
    let cli = Cli::new(&dead_url());
    let out = cli
        .cmd(["completions", "bash", "--json"])
        .telemetry_on()
        .run()
        .await
        .expect_code(0);
    assert_eq!(out.stderr, format!("{NOTICE}\n"));
    assert!(!out.stdout.contains(NOTICE));
    let out = cli
        .cmd(["completions", "bash"])
        .telemetry_on()
        .run()
        .await
        .expect_code(0);
    assert_eq!(out.stderr, "");

    // `claudemesh mcp`: stdout is MCP's; no notice, no events, no files.
    let fresh = Cli::new(&dead_url());
    let out = fresh.cmd(["mcp"]).telemetry_on().run().await;
    assert!(!out.stderr.contains(NOTICE), "{}", out.stderr);
    assert_eq!(out.stdout, "");
    assert!(!fresh.telemetry_dir().exists());
}

// ------------------------------------------------------- never in the way

/// Runs `args` `n` times; the exit codes, the last output, and the
/// shortest time (the least disturbed by the rest of the machine).
async fn timed(cli: &Cli, args: &[&str], on: bool, n: usize) -> (Finished, Duration) {
    let mut best = Duration::MAX;
    let mut last = None;
    for _ in 0..n {
        let mut command = cli.cmd([]);
        command.command.args(args);
        if on {
            command = command.telemetry_on();
        }
        let started = Instant::now();
        let out = command.run().await;
        best = best.min(started.elapsed());
        last = Some(out);
    }
    (last.expect("ran"), best)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_server_changes_no_exit_code_and_costs_at_most_one_short_wait() {
    let server = server(Engine::Sqlite).await;
    let alice = server.register("Alice").await;
    let pat = alice.create_pat("laptop", None).await;
    // A server that takes connections and never answers: the worst case.
    let black_hole = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let black_hole_url = format!("http://{}", black_hole.local_addr().unwrap());

    for (what, url) in [
        ("never answers", black_hole_url.as_str()),
        ("refuses connections", &dead_url()),
    ] {
        let cli = Cli::for_server(&server);
        cli.login_with_pat(&pat.token).await;
        cli.move_saved_login_to(url);
        for (args, code) in [(&["completions", "bash"][..], 0), (&["join", "!!"][..], 3)] {
            let (off, off_time) = timed(&cli, args, false, 3).await;
            // The first run sends (and waits); the next ones find the backoff.
            let (first, first_time) = timed(&cli, args, true, 1).await;
            let (next, next_time) = timed(&cli, args, true, 3).await;
            for out in [&off, &first, &next] {
                assert_eq!(out.code, code, "{what} {args:?}: {out:?}");
                assert_eq!(out.stdout, off.stdout);
            }
            assert_eq!(first.stderr.replace(&format!("{NOTICE}\n"), ""), off.stderr);
            println!(
                "server that {what}, {args:?}: telemetry off {} ms; on, first run {} ms, later runs {} ms",
                off_time.as_millis(),
                first_time.as_millis(),
                next_time.as_millis()
            );
            // 300 ms at most, by design; bounds wide enough for any machine,
            // and far below the 10 s a request could take.
            assert!(
                first_time < off_time + Duration::from_secs(3),
                "{what}: {first_time:?} against {off_time:?}"
            );
            assert!(next_time < off_time + Duration::from_secs(3));
        }
        // Nothing lost: the events wait for the server to come back.
        assert!(cli.spool().len() >= 4, "{what}: {:#?}", cli.spool());
    }
    drop(black_hole);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_spool_or_a_full_disk_changes_nothing() {
    let cli = Cli::new(&dead_url());
    cli.cmd(["completions", "bash"])
        .telemetry_on()
        .run()
        .await
        .expect_code(0);

    // Full: a thousand events waiting (no login, so none is sent).
    let old: Vec<String> = (0..1000)
        .map(|i| {
            json!({ "event": { "event": "cli.logout", "id": format!("{i:a>26}"),
                               "at": "2026-01-01T00:00:00Z", "properties": { "user_id": null } } })
            .to_string()
        })
        .collect();
    let spool = cli.telemetry_dir().join("spool.jsonl");
    std::fs::write(&spool, old.join("\n") + "\n").expect("fill the spool");
    let started = Instant::now();
    let out = cli
        .cmd(["join", "!!"])
        .telemetry_on()
        .run()
        .await
        .expect_code(3);
    let took = started.elapsed();
    println!("a full spool: {} ms", took.as_millis());
    // Trimming a full spool is a read and a write of 256 KiB at most.
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert_eq!(out.stderr, NOT_AN_INVITE);
    let kept = cli.spool();
    assert_eq!(kept.len(), 1000);
    assert!(std::fs::metadata(&spool).unwrap().len() <= 256 * 1024);
    assert_eq!(
        kept[0]["event"]["id"],
        json!(format!("{:a>26}", 1)),
        "the oldest went"
    );
    assert_eq!(kept[999]["event"]["event"], "cli.command.executed");

    // A full disk: every write to the spool fails with ENOSPC.
    std::fs::remove_file(&spool).unwrap();
    std::os::unix::fs::symlink("/dev/full", &spool).expect("symlink");
    let out = cli
        .cmd(["join", "!!"])
        .telemetry_on()
        .run()
        .await
        .expect_code(3);
    assert_eq!(out.stderr, NOT_AN_INVITE);
    cli.cmd(["whoami"])
        .telemetry_on()
        .run()
        .await
        .expect_code(2);

    // A config directory telemetry cannot use: off, without a word.
    let blocked = Cli::new(&dead_url());
    std::fs::create_dir_all(&blocked.config_dir).unwrap();
    std::fs::write(blocked.telemetry_dir(), "not a directory").unwrap();
    let out = blocked
        .cmd(["join", "!!"])
        .telemetry_on()
        .run()
        .await
        .expect_code(3);
    assert_eq!(out.stderr, NOT_AN_INVITE);
}

// ------------------------------------------------------------ what is sent

/// A TCP relay in front of the server that keeps every byte each client
/// connection sent: the CLI's telemetry requests exactly as they left it.
struct Tap {
    url: String,
    connections: Arc<Mutex<Vec<Sent>>>,
}

/// What one client connection sent.
type Sent = Arc<Mutex<Vec<u8>>>;

impl Tap {
    async fn start(upstream: &str) -> Self {
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let connections: Arc<Mutex<Vec<Sent>>> = Arc::default();
        let all = Arc::clone(&connections);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                    continue;
                };
                let sent = Arc::new(Mutex::new(Vec::new()));
                all.lock().unwrap().push(Arc::clone(&sent));
                tokio::spawn(async move {
                    let (mut from_client, mut to_client) = client.into_split();
                    let (mut from_server, mut to_server) = server.into_split();
                    let up = async {
                        let mut buf = [0u8; 16 * 1024];
                        while let Ok(n) = from_client.read(&mut buf).await {
                            if n == 0 {
                                break;
                            }
                            sent.lock().unwrap().extend_from_slice(&buf[..n]);
                            if to_server.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                        let _ = to_server.shutdown().await;
                    };
                    let down = tokio::io::copy(&mut from_server, &mut to_client);
                    let _ = tokio::join!(up, down);
                });
            }
        });
        Self { url, connections }
    }

    /// Every telemetry request, headers and body, as sent.
    fn telemetry_requests(&self) -> Vec<String> {
        self.connections
            .lock()
            .unwrap()
            .iter()
            .map(|bytes| String::from_utf8_lossy(&bytes.lock().unwrap()).into_owned())
            .filter(|text| text.starts_with("POST /api/telemetry "))
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_is_sent_holds_no_token_email_path_name_message_or_argument() {
    let server = server(Engine::Sqlite).await;
    let alice = server.register("Zebra Alice").await;
    let pat = alice.create_pat("zebra-pat", None).await;
    let tap = Tap::start(&server.base_url).await;
    let cli = Cli::new(&tap.url);
    let bad_token = Token::generate(TokenKind::Pat);

    let mut login = cli
        .cmd(["login", "--no-browser", "--device-name", "zebra-box"])
        .telemetry_on()
        .spawn();
    let code = login.user_code().await;
    assert_eq!(alice.approve(&code).await.status(), 200);
    login.finish().await.expect_code(0);
    let run = |args: &[&str]| {
        let mut command = cli.cmd([]).telemetry_on();
        command.command.args(args);
        command.run()
    };
    run(&[
        "create",
        "Zebra Mesh",
        "--slug",
        "zebra-slug",
        "--name",
        "Zebra Person",
    ])
    .await
    .expect_code(0);
    let invite = run(&[
        "invite",
        "--mesh",
        "zebra-slug",
        "--email",
        "zebra.friend@example.com",
    ])
    .await
    .expect_code(0);
    let invite_url = invite.stdout.trim().to_owned();
    run(&[
        "send",
        "Zebra Person",
        "zebra secret message",
        "--mesh",
        "zebra-slug",
    ])
    .await;
    run(&["join", "zebrazebra42"]).await.expect_code(5);
    run(&["leave", "zebra-other", "--yes"]).await;
    run(&["whoami", "--token", bad_token.expose()])
        .await
        .expect_code(2);
    run(&["logout"]).await.expect_code(0);

    let requests = tap.telemetry_requests();
    let spool: Vec<String> = cli.spool().iter().map(Value::to_string).collect();
    let state = std::fs::read_to_string(cli.telemetry_dir().join("telemetry.json")).unwrap();
    let everything = [requests.join("\n"), spool.join("\n"), state].join("\n");
    // Not vacuous: the session's events are there (sent, or waiting).
    for name in [
        "cli.login.started",
        "cli.login.succeeded",
        "cli.api.error",
        "cli.logout",
        "\"create\"",
        "\"invite\"",
        "\"send\"",
    ] {
        assert!(everything.contains(name), "{name} missing:\n{everything}");
    }
    assert!(!requests.is_empty(), "nothing was sent");
    let home = cli.config_dir.parent().unwrap().display().to_string();
    for forbidden in [
        "zebra",
        "Zebra",
        pat.token.as_str(),
        bad_token.expose(),
        &alice.email,
        &alice.user.name,
        &home,
        invite_url.rsplit('/').next().unwrap(),
        "/api/my/meshes/zebra",
    ] {
        assert!(
            !everything.contains(forbidden),
            "{forbidden:?} was sent or spooled:\n{everything}"
        );
    }
    for request in &requests {
        assert!(
            !request.to_ascii_lowercase().contains("\nauthorization:"),
            "telemetry carries no credential:\n{request}"
        );
    }
    // The events, sent or waiting: API errors by route template only.
    let mut events: Vec<Value> = cli
        .spool()
        .into_iter()
        .map(|spooled| spooled["event"].clone())
        .collect();
    for request in &requests {
        let (_, body) = request.split_once("\r\n\r\n").expect("a request body");
        let batch: Value = serde_json::from_str(body).expect("a JSON batch");
        events.extend(batch["events"].as_array().expect("events").iter().cloned());
    }
    let endpoints: BTreeSet<&str> = events
        .iter()
        .filter_map(|event| event["properties"]["endpoint"].as_str())
        .collect();
    println!("endpoints reported: {endpoints:?}");
    assert!(endpoints.contains("/api/invites/{code}"), "{endpoints:?}");
    assert!(endpoints.contains("/api/my/whoami"), "{endpoints:?}");
}
