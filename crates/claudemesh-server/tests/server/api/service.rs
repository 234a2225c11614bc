//! The server as a service: the real `claudemesh-server` binary checking its
//! configuration (`--check-config`) and stopping on SIGTERM: it lets the
//! requests in flight finish, closes its broker sessions with "connect
//! again" so their clients go to another instance, answers a waiting poll
//! at once, and never takes longer than its shutdown grace.

use claudemesh_api::broker::Priority;
use claudemesh_client::{Client, Event};
use claudemesh_testkit::{Engine, TestServer};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long to wait for the server before calling the test broken.
const SAFETY_LIMIT: Duration = Duration::from_secs(60);

/// `claudemesh-server ARGS` with nothing from this environment but `env`.
fn server_command(data_dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_claudemesh-server"));
    command
        .args(args)
        .env_clear()
        .env("CLAUDEMESH_DATA_DIR", data_dir)
        .env("CLAUDEMESH_LOG_FORMAT", "text")
        .env("RUST_LOG", "info");
    for (name, value) in env {
        command.env(name, value);
    }
    command
}

/// A running binary: its address, and its stderr line by line.
struct Process {
    child: Child,
    addr: String,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Process {
    fn start(data_dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Self {
        let mut child = server_command(data_dir, env, args)
            .env("CLAUDEMESH_BIND", "127.0.0.1:0")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the server binary starts");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut process = Self {
            child,
            addr: String::new(),
            lines,
            seen: Vec::new(),
        };
        let listening = process.line_where(|l| l.starts_with("claudemesh-server listening on "));
        process.addr = listening
            .trim_start_matches("claudemesh-server listening on ")
            .split(' ')
            .next()
            .expect("an address")
            .to_owned();
        process
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn line_where(&mut self, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + SAFETY_LIMIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if wanted(&line) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "the server never said it; it said:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Waits for the process to end by itself: its exit code, and how long
    /// it took from `since`.
    fn exits_by_itself(&mut self, since: Instant) -> (i32, Duration) {
        let deadline = Instant::now() + SAFETY_LIMIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return (status.code().expect("an exit code"), since.elapsed());
            }
            assert!(Instant::now() < deadline, "the server did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn said(&mut self, text: &str) -> bool {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        self.seen.iter().any(|line| line.contains(text))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `POST /api/auth/cli/device-code` whose body is held back: sent with
/// `Expect: 100-continue`, and returned once the server said `100
/// Continue`, that is once the handler is running and waiting for the
/// body. The request is then in flight, deterministically.
fn request_in_flight(addr: &str) -> (TcpStream, &'static str) {
    let body = r#"{"device_name":"in flight","device_os":"linux","device_arch":"x86_64"}"#;
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(SAFETY_LIMIT))
        .expect("read timeout");
    write!(
        stream,
        "POST /api/auth/cli/device-code HTTP/1.1\r\nHost: {addr}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\
         Expect: 100-continue\r\n\r\n",
        body.len()
    )
    .expect("send the head");
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).expect("the server answers");
        got.push(byte[0]);
    }
    assert!(
        got.starts_with(b"HTTP/1.1 100 Continue"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    (stream, body)
}

#[test]
fn check_config_prints_the_settings_and_exits_0_when_they_would_start_the_server() {
    let home = tempfile::tempdir().unwrap();
    let data_dir = home.path().join("state");
    let out = server_command(
        &data_dir,
        &[
            ("CLAUDEMESH_BIND", "127.0.0.1:3999"),
            ("CLAUDEMESH_PUBLIC_URL", "https://mesh.example.com/"),
            (
                "CLAUDEMESH_SMTP_URL",
                "smtps://mailer:s3cret-pw@mail.example.com",
            ),
            ("CLAUDEMESH_METRICS_BIND", "127.0.0.1:9464"),
        ],
        &["--check-config"],
    )
    .output()
    .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert_eq!(
        stdout,
        format!(
            "claudemesh-server: the configuration is valid\n  \
             listen on      127.0.0.1:3999\n  \
             public URL     https://mesh.example.com\n  \
             store          SQLite, {db}\n  \
             data dir       {dir} (made at start)\n  \
             broker bus     none (SQLite: one instance)\n  \
             mail           SMTP at mail.example.com (not connected to)\n  \
             metrics        http://127.0.0.1:9464/metrics\n  \
             stopping       in-flight requests get 8 s after SIGTERM\n",
            db = data_dir.join("claudemesh.db").display(),
            dir = data_dir.display()
        )
    );
    assert!(!stdout.contains("s3cret"));
    // It made nothing, bound nothing.
    assert!(!data_dir.exists());
    assert!(std::net::TcpListener::bind("127.0.0.1:3999").is_ok());
}

#[test]
fn check_config_names_every_problem_and_exits_1() {
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let out = server_command(
        &file,
        &[
            ("CLAUDEMESH_BIND", "nowhere"),
            ("CLAUDEMESH_PUBLIC_URL", "mesh.example.com"),
            ("DATABASE_URL", "mysql://root:pw@db/claudemesh"),
            ("CLAUDEMESH_MAIL_FROM", "not an address"),
            ("CLAUDEMESH_METRICS_BIND", "metrics-host"),
            ("CLAUDEMESH_BUS", "nats://bus:pw2@nats.internal/broker"),
        ],
        &["--check-config"],
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(out.stdout.is_empty());
    for problem in [
        "claudemesh-server: the configuration has 7 problems:\n",
        "  ✘ --bus (CLAUDEMESH_BUS): `nats://…@nats.internal/broker` should be nats://host:port, with no path\n",
        "  ✘ --metrics-bind (CLAUDEMESH_METRICS_BIND): `metrics-host` is not an address to listen on (host:port)",
        "  ✘ --bind (CLAUDEMESH_BIND): `nowhere` is not an address to listen on (host:port)",
        "  ✘ --public-url (CLAUDEMESH_PUBLIC_URL): `mesh.example.com` is not a URL (http://… or https://…)\n",
        "  ✘ --database-url (DATABASE_URL): not a postgres:// (or sqlite:) URL\n",
        &format!(
            "  ✘ --data-dir (CLAUDEMESH_DATA_DIR): {}: not a directory\n",
            file.display()
        ),
        "  ✘ --smtp-url / --mail-from (CLAUDEMESH_SMTP_URL / CLAUDEMESH_MAIL_FROM): CLAUDEMESH_MAIL_FROM is not an email address",
    ] {
        assert!(
            stderr.contains(problem),
            "{problem:?} missing from\n{stderr}"
        );
    }
    assert!(
        !stderr.contains("pw@") && !stderr.contains("pw2"),
        "{stderr}"
    );
}

/// Two instances on one PostgreSQL database, as behind a load balancer:
/// the binary, told to stop with SIGTERM, and one in this process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_requests_and_sends_broker_sessions_to_another_instance() {
    let other = TestServer::start_running_clock(Engine::Postgres).await;
    let mesh = other.mesh(&["Alice", "Bob"]).await;
    let data_dir = tempfile::tempdir().unwrap();
    let database_url = other.config().database_url.clone().unwrap();
    let mut stopping = Process::start(data_dir.path(), &[("DATABASE_URL", &database_url)], &[]);

    let bob = mesh.connect(1).await;
    let alice = Client::connect(&stopping.url(), mesh.identity(0), mesh.presence(0, &[]))
        .await
        .unwrap();
    let (mut in_flight, body) = request_in_flight(&stopping.addr);

    let told = Instant::now();
    stopping.sigterm();
    // Alice's session is closed with "connect again"…
    let closed = tokio::time::timeout(SAFETY_LIMIT, async {
        loop {
            match alice.next_event().await {
                Some(Event::Closed { message, .. }) => return message,
                Some(_) => {}
                None => panic!("the session ended without a close"),
            }
        }
    })
    .await
    .expect("the session is closed");
    assert_eq!(closed, "The server is restarting; connect again");
    // …while the request in flight still gets its whole answer.
    in_flight.write_all(body.as_bytes()).unwrap();
    let mut answer = String::new();
    in_flight.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.contains("\"user_code\":"), "{answer}");
    // No new connection is taken.
    assert!(
        reqwest::get(format!("{}/healthz", stopping.url()))
            .await
            .is_err(),
        "a stopping server took a new request"
    );

    let (code, took) = stopping.exits_by_itself(told);
    assert_eq!(code, 0, "{}", stopping.seen.join("\n"));
    assert!(stopping.said("stopping: no new connections; finishing in-flight requests"));
    assert!(!stopping.said("still in flight"));
    eprintln!("stopped {} ms after SIGTERM", took.as_millis());

    // Alice connects again, to the instance that is still up, and messages
    // flow.
    let alice = mesh.connect(0).await;
    bob.send("Alice", "welcome back", Priority::Next)
        .await
        .unwrap();
    let got = tokio::time::timeout(SAFETY_LIMIT, async {
        loop {
            if let Some(Event::Message(m)) = alice.next_event().await {
                return m.text;
            }
        }
    })
    .await
    .expect("the message arrives");
    assert_eq!(got, "welcome back");
}

/// A poll waiting for the login to be approved is answered at once
/// (`pending`, the CLI polls again, elsewhere) rather than held to its end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_poll_is_answered_at_once_when_the_server_stops() {
    let mut server = TestServer::start(Engine::Sqlite).await;
    let created: serde_json::Value = server
        .anonymous()
        .post(server.url("/api/auth/cli/device-code"))
        .json(&serde_json::json!({
            "device_name": "laptop", "device_os": "linux", "device_arch": "x86_64"
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let code = created["device_code"].as_str().unwrap().to_owned();
    let poll = tokio::spawn(
        server
            .anonymous()
            .get(server.url(&format!("/api/auth/cli/device-code/{code}?wait=20")))
            .send(),
    );
    let deadline = Instant::now() + SAFETY_LIMIT;
    while server.state().wakeups.waiting() == 0 {
        assert!(Instant::now() < deadline, "the poll never started waiting");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.stop().await;
    let answer = poll.await.unwrap().expect("the poll is answered");
    assert_eq!(answer.status(), 200);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["status"], "pending", "{body}");
}

/// A client that never finishes its request cannot hold the stop past
/// `--shutdown-grace`.
#[test]
fn a_request_that_never_finishes_holds_the_stop_only_for_the_grace() {
    let data_dir = tempfile::tempdir().unwrap();
    let mut stopping = Process::start(data_dir.path(), &[], &["--shutdown-grace", "1"]);
    let (_stuck, _body) = request_in_flight(&stopping.addr);
    let told = Instant::now();
    stopping.sigterm();
    let (code, took) = stopping.exits_by_itself(told);
    assert_eq!(code, 0, "{}", stopping.seen.join("\n"));
    assert!(
        stopping.said("stopping with requests still in flight after the shutdown grace"),
        "{}",
        stopping.seen.join("\n")
    );
    eprintln!("stopped {} ms after SIGTERM (grace 1 s)", took.as_millis());
}
