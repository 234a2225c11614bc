//! `login`, `logout` and `whoami`: device-code and token logins, where the
//! token comes from, the auth file, sessions, and the command line itself.

use crate::harness::*;

// -------------------------------------------------------- device-code login

async fn device_code_login_saves_a_private_auth_file(engine: Engine) {
    let server = server(engine).await;
    let alice = server.register("Alice").await;
    let cli = Cli::for_server(&server);

    let mut login = cli
        .cmd(["login", "--no-browser", "--device-name", "test box"])
        .spawn();
    let code = login.user_code().await;
    assert_eq!(alice.approve(&code).await.status(), 200);
    let out = login.finish().await.expect_code(0);

    out.stderr_has("Not opening a browser: --no-browser was given.")
        .stderr_has(&format!("{}/cli-auth?code={code}", server.base_url))
        .stderr_has("Waiting for confirmation…")
        .stderr_has("✔ Authenticated as Alice\n")
        .stderr_has(&format!("✔ Token saved to {}\n", cli.auth_path().display()));
    assert!(!out.stderr.contains('\x1b'), "no colours off a terminal");
    assert_eq!(out.stdout, "", "nothing on stdout without --json");

    assert_eq!(mode(&cli.auth_path()), 0o600);
    assert_eq!(mode(&cli.config_dir), 0o700);
    let saved = cli.auth_json();
    assert_eq!(saved["version"], 1);
    assert_eq!(saved["source"], "device-code");
    assert_eq!(saved["user"]["email"], alice.email.as_str());
    assert_eq!(saved["user"]["id"], alice.user.id.as_str());
    assert_eq!(saved["server"], server.base_url.as_str());
    let token = cli.saved_token();
    assert_eq!(
        Token::parse(&token).map(|t| t.kind()),
        Ok(TokenKind::Session)
    );
    out.never_shows(&token);
    assert_eq!(whoami_status(&server, &token).await, 200);

    let who = cli.cmd(["whoami"]).run().await.expect_code(0);
    assert!(
        who.stdout.starts_with(&format!(
            "Logged in to {} as Alice ({})\n",
            server.base_url, alice.email
        )),
        "{}",
        who.stdout
    );
    assert!(
        who.stdout.contains("CLI session \"test box\""),
        "{}",
        who.stdout
    );
    assert!(
        who.stdout
            .contains(&format!("From:       {}", cli.auth_path().display()))
    );
    who.never_shows(&token);
}

async fn pat_login_from_stdin(engine: Engine) {
    let server = server(engine).await;
    let alice = server.register("Alice").await;
    let pat = alice.create_pat("ci-deploy", None).await;
    let cli = Cli::for_server(&server);

    let out = cli
        .cmd(["login", "--with-token"])
        .stdin(&format!("{}\n", pat.token))
        .run()
        .await
        .expect_code(0);
    out.stderr_has("✔ Authenticated as Alice (via PAT \"ci-deploy\")\n")
        .stderr_has(&format!("✔ Token saved to {}\n", cli.auth_path().display()))
        .never_shows(&pat.token);
    assert!(!out.stderr.contains("shell history"), "{}", out.stderr);
    let saved = cli.auth_json();
    assert_eq!(saved["source"], "pat");
    assert_eq!(saved["token"], pat.token.as_str());
    assert_eq!(mode(&cli.auth_path()), 0o600);

    let who = cli.cmd(["whoami", "--json"]).run().await.expect_code(0);
    let who = who.stdout_json();
    assert_eq!(who["user"]["name"], "Alice");
    assert_eq!(who["source"], "file");
    assert_eq!(who["token"]["kind"], "pat");
    assert_eq!(who["token"]["name"], "ci-deploy");
}

on_both_engines!(
    device_code_login_saves_a_private_auth_file,
    pat_login_from_stdin
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_login_exits_1_and_saves_nothing() {
    let server = server(Engine::Sqlite).await;
    let alice = server.register("Alice").await;
    let cli = Cli::for_server(&server);

    let mut login = cli.cmd(["login", "--no-browser"]).spawn();
    let code = login.user_code().await;
    assert_eq!(alice.deny(&code).await.status(), 200);
    login
        .finish()
        .await
        .expect_code(1)
        .stderr_has("✘ Denied in browser\n");
    assert!(!cli.auth_path().exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_code_times_out_with_exit_1() {
    let server = server(Engine::Sqlite).await;
    let cli = Cli::for_server(&server);

    let mut login = cli.cmd(["login", "--no-browser"]).spawn();
    login.user_code().await;
    // Nobody approves; ten minutes pass on the server.
    server.clock.advance(Duration::from_secs(11 * 60));
    login
        .finish()
        .await
        .expect_code(1)
        .stderr_has("✘ Login timed out, run `claudemesh login` to retry\n");
    assert!(!cli.auth_path().exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_survives_the_server_going_away_mid_poll() {
    let mut server = server(Engine::Sqlite).await;
    let alice = server.register("Alice").await;
    let cli = Cli::for_server(&server);

    let mut login = cli.cmd(["login", "--no-browser"]).spawn();
    let code = login.user_code().await;
    server.stop().await;
    login
        .line_where("that it lost the server", |l| {
            l.contains("Lost contact with the server") && l.contains("retrying in")
        })
        .await;
    server.restart().await;
    assert_eq!(alice.approve(&code).await.status(), 200);
    let out = login.finish().await.expect_code(0);
    out.stderr_has("✔ Authenticated as Alice\n");
    cli.cmd(["whoami"]).run().await.expect_code(0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logging_in_again_replaces_the_session_and_revokes_the_old_one() {
    let server = server(Engine::Sqlite).await;
    let alice = server.register("Alice").await;
    let cli = Cli::for_server(&server);

    device_login(&cli, &alice, "box").await.expect_code(0);
    let first = cli.saved_token();
    let out = device_login(&cli, &alice, "box").await.expect_code(0);
    out.stderr_has("Replacing existing session for Alice\n");
    let second = cli.saved_token();
    assert_ne!(first, second);
    assert_eq!(whoami_status(&server, &second).await, 200);
    // The replaced session token was only ever in this file: it is revoked.
    assert_eq!(whoami_status(&server, &first).await, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_json_prints_one_document_without_the_token() {
    let server = server(Engine::Sqlite).await;
    let alice = server.register("Alice").await;
    let cli = Cli::for_server(&server);

    let mut login = cli.cmd(["login", "--no-browser", "--json"]).spawn();
    let code = login.user_code().await;
    assert_eq!(alice.approve(&code).await.status(), 200);
    let out = login.finish().await.expect_code(0);
    let json = out.stdout_json();
    assert_eq!(json["user"]["name"], "Alice");
    assert_eq!(json["source"], "device-code");
    assert_eq!(json["token_kind"], "session");
    assert_eq!(json["server"], server.base_url.as_str());
    assert_eq!(
        json["auth_file"],
        cli.auth_path().display().to_string().as_str()
    );
    out.never_shows(&cli.saved_token());
}

// --------------------------------------------- a code claimed by someone else

/// A transparent HTTP relay between the CLI and the server that notes the
/// device code the server hands out (playing a second client that learned
/// it) and can hold polls back, so the test decides deterministically who
/// polls first after approval. It drops the polls' `wait`, so to the CLI it
/// is a server from before `wait` that answers every poll at once; it notes
/// when each poll came and how it was answered.
mod relay {
    use axum::body::Body;
    use axum::extract::{Request, State};
    use axum::http::{Method, StatusCode};
    use axum::response::Response;
    use std::sync::{Arc, Mutex};
    use std::time::Instant;
    use tokio::sync::RwLock;

    #[derive(Clone)]
    pub struct Relay {
        pub url: String,
        upstream: String,
        client: reqwest::Client,
        device_code: Arc<Mutex<Option<String>>>,
        /// Polls pass with a read lock; the test holds the write lock to stop them.
        pub gate: Arc<RwLock<()>>,
        /// When each poll reached the relay, and the server's status for it.
        pub polls: Arc<Mutex<Vec<(Instant, u16)>>>,
    }

    impl Relay {
        pub async fn start(upstream: &str) -> Self {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind relay");
            let relay = Self {
                url: format!("http://{}", listener.local_addr().expect("relay address")),
                upstream: upstream.to_owned(),
                client: reqwest::Client::new(),
                device_code: Arc::default(),
                gate: Arc::default(),
                polls: Arc::default(),
            };
            let app = axum::Router::new()
                .fallback(forward)
                .with_state(relay.clone());
            tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            });
            relay
        }

        pub fn device_code(&self) -> String {
            self.device_code
                .lock()
                .expect("lock")
                .clone()
                .expect("the CLI started a login through the relay")
        }
    }

    async fn forward(State(relay): State<Relay>, request: Request) -> Response {
        let (parts, body) = request.into_parts();
        let mut path = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        let is_poll = parts.method == Method::GET && path.starts_with("/api/auth/cli/device-code/");
        let arrived = Instant::now();
        let _pass = if is_poll {
            path = parts.uri.path().to_owned();
            Some(relay.gate.read().await)
        } else {
            None
        };
        let body = axum::body::to_bytes(body, 1 << 20)
            .await
            .unwrap_or_default();
        let mut upstream = relay
            .client
            .request(parts.method.clone(), format!("{}{path}", relay.upstream))
            .body(body);
        for (name, value) in &parts.headers {
            if name != "host" && name != "content-length" {
                upstream = upstream.header(name, value);
            }
        }
        let Ok(answer) = upstream.send().await else {
            return Response::builder()
                .status(StatusCode::BAD_GATEWAY)
                .body(Body::empty())
                .expect("response");
        };
        let status = answer.status();
        if is_poll {
            relay
                .polls
                .lock()
                .expect("lock")
                .push((arrived, status.as_u16()));
        }
        let content_type = answer.headers().get("content-type").cloned();
        let bytes = answer.bytes().await.unwrap_or_default();
        if parts.method == Method::POST
            && path == "/api/auth/cli/device-code"
            && status.is_success()
        {
            let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
            *relay.device_code.lock().expect("lock") =
                json["device_code"].as_str().map(str::to_owned);
        }
        let mut response = Response::builder().status(status);
        if let Some(content_type) = content_type {
            response = response.header("content-type", content_type);
        }
        response.body(Body::from(bytes)).expect("response")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_claimed_by_another_login_fails_at_once_with_a_clear_message() {
    let server = server(Engine::Sqlite).await;
    let alice = server.register("Alice").await;
    let relay = relay::Relay::start(&server.base_url).await;
    let cli = Cli::new(&relay.url);

    let mut login = cli.cmd(["login", "--no-browser"]).spawn();
    let code = login.user_code().await;
    let device_code = relay.device_code();

    // Hold the CLI's polls, approve, and claim the token first from elsewhere.
    let gate = relay.gate.write().await;
    assert_eq!(alice.approve(&code).await.status(), 200);
    let poll_url = server.url(&format!("/api/auth/cli/device-code/{device_code}"));
    let other = loop {
        let answer = server
            .anonymous()
            .get(&poll_url)
            .send()
            .await
            .expect("poll");
        let status = answer.status().as_u16();
        let body: Value = answer.json().await.expect("poll body");
        if status == 429 {
            // The CLI polled within the last second: wait as told.
            let interval = body["interval"].as_f64().unwrap_or(1.5);
            tokio::time::sleep(Duration::from_secs_f64(interval)).await;
            continue;
        }
        assert_eq!(status, 200, "{body}");
        break body;
    };
    assert_eq!(other["status"], "approved");
    let other_token = other["token"]
        .as_str()
        .expect("the first poller gets the token")
        .to_owned();
    drop(gate);

    let out = login.finish().await.expect_code(6);
    out.stderr_has("✘ This code was already used by another claudemesh login\n")
        .never_shows(&other_token);
    assert!(!cli.auth_path().exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn against_a_server_without_wait_the_login_polls_at_its_interval() {
    let server = server(Engine::Sqlite).await;
    let alice = server.register("Alice").await;
    let relay = relay::Relay::start(&server.base_url).await;
    let cli = Cli::new(&relay.url);

    let mut login = cli.cmd(["login", "--no-browser"]).spawn();
    let code = login.user_code().await;
    let polls = || relay.polls.lock().expect("lock").clone();
    let deadline = std::time::Instant::now() + SAFETY_LIMIT;
    while polls().len() < 4 {
        assert!(
            std::time::Instant::now() < deadline,
            "the CLI stopped polling"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(alice.approve(&code).await.status(), 200);
    login.finish().await.expect_code(0);

    let polls = polls();
    for pair in polls.windows(2) {
        let gap = pair[1].0 - pair[0].0;
        // 1.5 s from the start of one poll to the next, give or take the
        // scheduler; the server's limit is 0.8 s.
        assert!(gap >= Duration::from_millis(1300), "{gap:?} between polls");
    }
    assert!(
        polls.iter().all(|(_, status)| *status == 200),
        "never slowed down: {polls:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_reaches_the_waiting_login_at_once() {
    for engine in [Engine::Sqlite, Engine::Postgres] {
        let server = server(engine).await;
        let alice = server.register("Alice").await;
        let cli = Cli::for_server(&server);
        let mut login = cli.cmd(["login", "--no-browser"]).spawn();
        let code = login.user_code().await;
        // Approve while the CLI's poll is held by the server.
        let deadline = std::time::Instant::now() + SAFETY_LIMIT;
        while server.state().wakeups.waiting() == 0 {
            assert!(std::time::Instant::now() < deadline, "no waiting poll");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let approved = std::time::Instant::now();
        assert_eq!(alice.approve(&code).await.status(), 200);
        login
            .line_where("that it saved the token", |l| {
                l.starts_with("✔ Token saved to")
            })
            .await;
        let latency = approved.elapsed();
        println!("# {engine:?}: approve sent → CLI saved auth.json: {latency:?}");
        // Typically a few milliseconds. Without the wake-up the held poll
        // would answer only when its wait ran out (the CLI's `POLL_WAIT`,
        // 20 s): half of that cannot be a slow machine's doing.
        assert!(latency < Duration::from_secs(10), "{latency:?}");
        login.finish().await.expect_code(0);
        assert!(cli.auth_path().exists());
    }
}

// ------------------------------------------------------------ token login

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pat_login_by_flag_warns_about_shell_history() {
    let server = server(Engine::Sqlite).await;
    let alice = server.register("Alice").await;
    let pat = alice.create_pat("ci-deploy", None).await;
    let cli = Cli::for_server(&server);

    let out = cli
        .cmd(["login", "--token", &pat.token])
        .run()
        .await
        .expect_code(0);
    out.stderr_has("shell history")
        .stderr_has("--with-token")
        .stderr_has("✔ Authenticated as Alice (via PAT \"ci-deploy\")\n")
        .stderr_has(&format!("✔ Token saved to {}\n", cli.auth_path().display()))
        .never_shows(&pat.token);
    assert_eq!(cli.auth_json()["source"], "pat");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_token_is_refused_before_any_request() {
    // Nothing listens at the server URL: any request would end in exit 4.
    let cli = Cli::new(&dead_url());
    let real = Token::generate(TokenKind::Pat);
    let mut typo = real.expose().to_owned();
    let last = typo.pop().expect("a character");
    typo.push(if last == 'a' { 'b' } else { 'a' });

    for bad in ["cm_pat_abc123", "ghp_notours", typo.as_str()] {
        cli.cmd(["login", "--with-token"])
            .stdin(bad)
            .says(1, "✘ Invalid token format (expected cm_pat_…)\n")
            .await;
    }
    cli.cmd(["login", "--token", &typo])
        .says(1, "✘ Invalid token format (expected cm_pat_…)\n")
        .await;
    assert!(!cli.auth_path().exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_refuses_before_any_request_when_the_config_dir_cannot_be_private() {
    let home = tempfile::tempdir().expect("home");
    let blocker = home.path().join("not-a-directory");
    std::fs::write(&blocker, "").expect("write");
    let mut cli = Cli::new(&dead_url());
    cli.config_dir = blocker.join(".claudemesh");
    for args in [["login", "--no-browser"], ["login", "--with-token"]] {
        let out = cli
            .cmd(args)
            .stdin(Token::generate(TokenKind::Pat).expose())
            .run()
            .await
            .expect_code(1);
        out.stderr_has(&format!(
            "✘ Refusing to save the token: cannot make {} private (mode 0700)",
            cli.config_dir.display()
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_token_is_rejected_with_exit_2() {
    let server = server(Engine::Sqlite).await;
    let cli = Cli::for_server(&server);
    let unknown = Token::generate(TokenKind::Pat);

    cli.cmd(["login", "--with-token"])
        .stdin(unknown.expose())
        .says(2, "✘ Token rejected\n")
        .await
        .never_shows(unknown.expose());
    assert!(!cli.auth_path().exists());
}

// ------------------------------------------------------- token resolution

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_flag_beats_the_environment_which_beats_the_saved_login() {
    let server = server(Engine::Sqlite).await;
    let alice = server.register("Alice").await;
    let bob = server.register("Bob").await;
    let carol = server.register("Carol").await;
    let alice_pat = alice.create_pat("alice-ci", None).await;
    let bob_pat = bob.create_pat("bob-ci", None).await;
    let carol_pat = carol.create_pat("carol-ci", None).await;
    let cli = Cli::for_server(&server);
    cli.login_with_pat(&alice_pat.token).await;

    let who = |out: Finished| {
        let json = out.expect_code(0).stdout_json();
        (
            json["user"]["name"].as_str().unwrap_or_default().to_owned(),
            json["source"].as_str().unwrap_or_default().to_owned(),
        )
    };
    let all = cli
        .cmd(["whoami", "--json", "--token", &carol_pat.token])
        .env("CLAUDEMESH_TOKEN", &bob_pat.token)
        .run()
        .await;
    assert_eq!(who(all), ("Carol".into(), "flag".into()));
    let env_and_file = cli
        .cmd(["whoami", "--json"])
        .env("CLAUDEMESH_TOKEN", &bob_pat.token)
        .run()
        .await;
    assert_eq!(who(env_and_file), ("Bob".into(), "env".into()));
    let file_only = cli.cmd(["whoami", "--json"]).run().await;
    assert_eq!(who(file_only), ("Alice".into(), "file".into()));

    // The human report names the source too.
    let out = cli
        .cmd(["whoami"])
        .env("CLAUDEMESH_TOKEN", &bob_pat.token)
        .run()
        .await
        .expect_code(0);
    assert!(out.stdout.contains("as Bob ("), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("From:       CLAUDEMESH_TOKEN environment variable")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_explicit_token_works_without_any_saved_login() {
    let server = server(Engine::Sqlite).await;
    let alice = server.register("Alice").await;
    let pat = alice.create_pat("one-shot", None).await;
    let cli = Cli::for_server(&server);

    let out = cli
        .cmd(["whoami"])
        .env("CLAUDEMESH_TOKEN", &pat.token)
        .run()
        .await
        .expect_code(0);
    assert!(out.stdout.contains("PAT \"one-shot\""), "{}", out.stdout);
    assert!(!cli.auth_path().exists(), "a one-shot token is never saved");
}

// ------------------------------------------------------ auth file problems

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_exits_2_with_the_spec_message_and_keeps_auth_json() {
    let server = server(Engine::Sqlite).await;
    let alice = server.register("Alice").await;
    let pat = alice.create_pat("laptop", None).await;
    let cli = Cli::for_server(&server);
    cli.login_with_pat(&pat.token).await;

    let revoked = alice
        .browser
        .delete(alice.url(&format!("/api/my/cli/tokens/{}", pat.info.id)))
        .send()
        .await
        .expect("revoke");
    assert_eq!(revoked.status(), 200);

    let out = cli.cmd(["whoami"]).run().await.expect_code(2);
    assert_eq!(out.stderr, AUTH_FAILED);
    assert_eq!(out.stdout, "");
    assert!(cli.auth_path().exists(), "auth.json is left for the user");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_auth_file_exits_2() {
    let server = server(Engine::Sqlite).await;
    let cli = Cli::for_server(&server);
    std::fs::create_dir(&cli.config_dir).expect("config dir");
    std::fs::set_permissions(&cli.config_dir, std::fs::Permissions::from_mode(0o700))
        .expect("chmod");
    std::fs::write(cli.auth_path(), "{\"version\": 1, \"token\": tru").expect("write");
    std::fs::set_permissions(cli.auth_path(), std::fs::Permissions::from_mode(0o600))
        .expect("chmod");

    let out = cli.cmd(["whoami"]).run().await.expect_code(2);
    assert_eq!(
        out.stderr,
        "✘ Auth file corrupted, run `claudemesh login`\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_too_open_auth_file_is_warned_about_and_fixed() {
    let server = server(Engine::Sqlite).await;
    let alice = server.register("Alice").await;
    let pat = alice.create_pat("laptop", None).await;
    let cli = Cli::for_server(&server);
    cli.login_with_pat(&pat.token).await;
    std::fs::set_permissions(cli.auth_path(), std::fs::Permissions::from_mode(0o644))
        .expect("chmod");

    let out = cli.cmd(["whoami"]).run().await.expect_code(0);
    out.stderr_has(&format!(
        "⚠ {} was readable by others (mode 644); fixed it to 600",
        cli.auth_path().display()
    ));
    assert_eq!(mode(&cli.auth_path()), 0o600);
    assert!(out.stdout.contains("as Alice ("));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whoami_without_a_login_exits_2() {
    let server = server(Engine::Sqlite).await;
    let cli = Cli::for_server(&server);
    let out = cli.cmd(["whoami"]).run().await.expect_code(2);
    out.stderr_has("✘ Not logged in\n");
    assert_eq!(out.stdout, "");
}

// ------------------------------------------------------------------ logout

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_revokes_the_token_on_the_server_and_removes_the_file() {
    let server = server(Engine::Sqlite).await;
    let alice = server.register("Alice").await;
    let cli = Cli::for_server(&server);
    device_login(&cli, &alice, "box").await.expect_code(0);
    let token = cli.saved_token();

    let out = cli.cmd(["logout"]).run().await.expect_code(0);
    assert_eq!(
        out.stderr,
        format!(
            "✔ Token revoked on server\n✔ Removed {}\n",
            cli.auth_path().display()
        )
    );
    assert!(!cli.auth_path().exists());
    assert_eq!(whoami_status(&server, &token).await, 401);

    cli.cmd(["whoami"]).run().await.expect_code(2);
    cli.cmd(["logout"]).says(0, "Not logged in").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_without_the_server_still_removes_the_file_and_warns() {
    let mut server = server(Engine::Sqlite).await;
    let alice = server.register("Alice").await;
    let pat = alice.create_pat("laptop", None).await;
    let cli = Cli::for_server(&server);
    cli.login_with_pat(&pat.token).await;

    server.stop().await;
    let out = cli.cmd(["logout", "--revoke"]).run().await.expect_code(0);
    out.stderr_has("⚠ Could not revoke the token on the server")
        .stderr_has(&format!("✔ Removed {}\n", cli.auth_path().display()))
        .never_shows(&pat.token);
    assert!(!cli.auth_path().exists());
    // The warning was true: the token still works.
    server.restart().await;
    assert_eq!(whoami_status(&server, &pat.token).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_token_revokes_a_leaked_token_and_keeps_the_saved_login() {
    let server = server(Engine::Sqlite).await;
    let alice = server.register("Alice").await;
    let mine = alice.create_pat("laptop", None).await;
    let leaked = alice.create_pat("pasted in a gist", None).await;
    let cli = Cli::for_server(&server);
    cli.login_with_pat(&mine.token).await;

    let out = cli
        .cmd(["logout", "--token", &leaked.token])
        .run()
        .await
        .expect_code(0);
    assert_eq!(out.stderr, "✔ Token revoked on server\n");
    assert_eq!(whoami_status(&server, &leaked.token).await, 401);
    assert!(
        cli.auth_path().exists(),
        "another token's logout keeps auth.json"
    );
    cli.cmd(["whoami"]).run().await.expect_code(0);
}

// ------------------------------------------- a saved token stays with its server

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_login_is_never_sent_to_another_server() {
    let server = server(Engine::Sqlite).await;
    let alice = server.register("Alice").await;
    let pat = alice.create_pat("laptop", None).await;
    let cli = Cli::for_server(&server);
    cli.login_with_pat(&pat.token).await;

    // Nothing listens at the other URL: had the token been sent, this would be exit 4.
    let elsewhere = dead_url();
    let out = cli
        .cmd(["whoami"])
        .env("CLAUDEMESH_API_URL", &elsewhere)
        .run()
        .await
        .expect_code(2);
    out.stderr_has(&format!(
        "✘ The saved login is for {}, not {elsewhere}\n",
        server.base_url
    ));

    // Logout revokes at the server that issued the token, whatever is asked for.
    cli.cmd(["logout", "--revoke"])
        .env("CLAUDEMESH_API_URL", &elsewhere)
        .says(0, "✔ Token revoked on server\n")
        .await;
    assert_eq!(whoami_status(&server, &pat.token).await, 401);
    assert!(!cli.auth_path().exists());
}

// ---------------------------------------------------------------- sessions

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whoami_sessions_lists_every_cli_session_and_marks_this_one() {
    let server = server(Engine::Sqlite).await;
    let alice = server.register("Alice").await;
    let laptop = Cli::for_server(&server);
    let desktop = Cli::for_server(&server);
    device_login(&laptop, &alice, "laptop").await.expect_code(0);
    device_login(&desktop, &alice, "desktop")
        .await
        .expect_code(0);

    let out = laptop
        .cmd(["whoami", "--sessions"])
        .run()
        .await
        .expect_code(0);
    assert!(out.stdout.contains("CLI sessions (2):"), "{}", out.stdout);
    let line = |name: &str| {
        out.stdout
            .lines()
            .find(|l| l.contains(&format!("{name} (")))
            .unwrap_or_else(|| panic!("no line for {name}:\n{}", out.stdout))
            .to_owned()
    };
    assert!(line("laptop").starts_with("* laptop"), "{}", out.stdout);
    assert!(line("laptop").ends_with("← this session"));
    assert!(!line("desktop").contains("this session"));

    let json = desktop
        .cmd(["whoami", "--sessions", "--json"])
        .run()
        .await
        .expect_code(0)
        .stdout_json();
    let sessions = json["sessions"].as_array().expect("sessions");
    assert_eq!(sessions.len(), 2);
    let current: Vec<_> = sessions
        .iter()
        .filter(|s| s["current"] == true)
        .map(|s| s["device"]["name"].clone())
        .collect();
    assert_eq!(current, ["desktop"]);
}

// -------------------------------------------------------- the command line

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_version_completions_and_usage_errors() {
    let cli = Cli::new(&dead_url());

    let help = cli.cmd(["--help"]).run().await.expect_code(0);
    assert!(help.stdout.contains("Exit codes:"), "{}", help.stdout);
    assert!(help.stdout.contains("2  authentication"));
    for command in [
        "login",
        "logout",
        "whoami",
        "create",
        "list",
        "sync",
        "invite",
        "join",
        "leave",
        "peers",
        "send",
        "inbox",
        "completions",
    ] {
        let out = cli.cmd([command, "--help"]).run().await.expect_code(0);
        assert!(
            out.stdout.contains("Examples:"),
            "{command}: {}",
            out.stdout
        );
    }
    let version = cli.cmd(["--version"]).run().await.expect_code(0);
    assert_eq!(
        version.stdout,
        format!("claudemesh {}\n", env!("CARGO_PKG_VERSION"))
    );

    let completions = cli.cmd(["completions", "bash"]).run().await.expect_code(0);
    assert!(completions.stdout.contains("_claudemesh"));

    // Usage errors are 3, so that 2 always means authentication.
    cli.cmd(["whoami", "--bogus"]).run().await.expect_code(3);
    cli.cmd(["frobnicate"]).run().await.expect_code(3);
    cli.cmd(["completions", "tcsh"]).run().await.expect_code(3);
    cli.cmd(["login", "--with-token", "--token", "cm_pat_x"])
        .stdin("")
        .run()
        .await
        .expect_code(3);
    cli.cmd(["whoami"])
        .env("CLAUDEMESH_API_URL", "claudemesh.com")
        .run()
        .await
        .expect_code(3);
    // An unreachable server is 4.
    cli.cmd([
        "whoami",
        "--token",
        Token::generate(TokenKind::Pat).expose(),
    ])
    .says(4, "Could not reach the claudemesh server")
    .await;
}
