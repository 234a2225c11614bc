//! What every area shares: a machine's CLI (`Cli`), running it
//! (`Invocation`, `Running`), reading what it did (`Finished`), and the
//! servers and helpers around it.

pub(crate) use claudemesh_api::{Token, TokenKind};
pub(crate) use claudemesh_testkit::{Engine, TestServer, TestUser};
pub(crate) use serde_json::Value;
pub(crate) use std::io::{BufRead, BufReader, Read, Write};
pub(crate) use std::os::unix::fs::PermissionsExt;
pub(crate) use std::path::{Path, PathBuf};
pub(crate) use std::process::{Child, Command, Stdio};
pub(crate) use std::time::Duration;
pub(crate) use tempfile::TempDir;
pub(crate) use tokio::sync::mpsc;

/// How long to wait for the CLI before calling the test broken.
pub(crate) const SAFETY_LIMIT: Duration = Duration::from_secs(180);

pub(crate) const AUTH_FAILED: &str = "✘ Authentication failed (token expired or revoked)\nRun claudemesh login to re-authenticate.\n";

/// One machine's CLI: its own config directory, pointed at one server.
pub(crate) struct Cli {
    _home: TempDir,
    pub(crate) config_dir: PathBuf,
    pub(crate) api_url: String,
}

impl Cli {
    pub(crate) fn new(api_url: &str) -> Self {
        let home = tempfile::tempdir().expect("temporary home");
        // Not created yet: the CLI must create it (0700) itself.
        let config_dir = home.path().join(".claudemesh");
        Self {
            _home: home,
            config_dir,
            api_url: api_url.to_owned(),
        }
    }

    pub(crate) fn for_server(server: &TestServer) -> Self {
        Self::new(&server.base_url)
    }

    pub(crate) fn auth_path(&self) -> PathBuf {
        self.config_dir.join("auth.json")
    }

    pub(crate) fn auth_json(&self) -> Value {
        let text = std::fs::read_to_string(self.auth_path()).expect("auth.json exists");
        serde_json::from_str(&text).expect("auth.json is JSON")
    }

    pub(crate) fn saved_token(&self) -> String {
        self.auth_json()["token"]
            .as_str()
            .expect("a token")
            .to_owned()
    }

    /// `claudemesh ARGS` in a clean environment: no inherited token, display,
    /// SSH session, colour setting or proxy, no usage telemetry (the
    /// telemetry tests turn it on: `Invocation::telemetry_on`), and the token
    /// kept in auth.json with no word about a credential store (the keyring
    /// tests choose their store: `CLAUDEMESH_KEYRING`).
    pub(crate) fn cmd<const N: usize>(&self, args: [&str; N]) -> Invocation {
        let mut command = Command::new(env!("CARGO_BIN_EXE_claudemesh"));
        command
            .args(args)
            .env_clear()
            .env("CLAUDEMESH_HOME", &self.config_dir)
            .env("CLAUDEMESH_API_URL", &self.api_url)
            .env("CLAUDEMESH_TELEMETRY", "0")
            .env("CLAUDEMESH_KEYRING", "off");
        Invocation {
            command,
            stdin: None,
        }
    }

    /// A full `login --with-token` for a PAT.
    pub(crate) async fn login_with_pat(&self, token: &str) {
        self.cmd(["login", "--with-token"])
            .stdin(token)
            .run()
            .await
            .expect_code(0);
    }
}

pub(crate) struct Invocation {
    pub(crate) command: Command,
    pub(crate) stdin: Option<String>,
}

#[derive(Debug)]
pub(crate) struct Finished {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Finished {
    pub(crate) fn expect_code(self, code: i32) -> Self {
        assert_eq!(
            self.code, code,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }

    pub(crate) fn stderr_has(&self, text: &str) -> &Self {
        assert!(
            self.stderr.contains(text),
            "stderr lacks {text:?}\n--- stderr\n{}",
            self.stderr
        );
        self
    }

    pub(crate) fn stdout_json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|err| {
            panic!("stdout is not one JSON document ({err}):\n{}", self.stdout)
        })
    }

    /// The CLI never prints a raw token.
    pub(crate) fn never_shows(&self, secret: &str) -> &Self {
        assert!(!self.stdout.contains(secret), "token on stdout");
        assert!(!self.stderr.contains(secret), "token on stderr");
        self
    }
}

impl Invocation {
    pub(crate) fn env(mut self, name: &str, value: &str) -> Self {
        self.command.env(name, value);
        self
    }

    pub(crate) fn stdin(mut self, text: &str) -> Self {
        self.stdin = Some(text.to_owned());
        self
    }

    /// Runs to the end.
    pub(crate) async fn run(self) -> Finished {
        self.spawn().finish().await
    }

    /// Starts the CLI; its stderr is read line by line as it comes.
    pub(crate) fn spawn(mut self) -> Running {
        self.command
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = self.command.spawn().expect("the claudemesh binary starts");
        if let Some(text) = self.stdin {
            let mut pipe = child.stdin.take().expect("stdin pipe");
            // A CLI that exits without reading stdin closes the pipe: fine.
            let _ = pipe.write_all(text.as_bytes());
        }
        let (tx, lines) = mpsc::unbounded_channel();
        let stderr = child.stderr.take().expect("stderr pipe");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut stdout = child.stdout.take().expect("stdout pipe");
        let stdout = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stdout.read_to_string(&mut text);
            text
        });
        Running {
            child,
            lines,
            seen: Vec::new(),
            stdout: Some(stdout),
        }
    }
}

/// A CLI still running. Killed if the test ends (or fails) before it does.
pub(crate) struct Running {
    pub(crate) child: Child,
    pub(crate) lines: mpsc::UnboundedReceiver<String>,
    pub(crate) seen: Vec<String>,
    pub(crate) stdout: Option<std::thread::JoinHandle<String>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    /// Waits until the CLI prints a stderr line that `wanted` accepts.
    pub(crate) async fn line_where(&mut self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        let found = tokio::time::timeout(SAFETY_LIMIT, async {
            while let Some(line) = self.lines.recv().await {
                self.seen.push(line.clone());
                if wanted(&line) {
                    return Some(line);
                }
            }
            None
        })
        .await;
        match found {
            Ok(Some(line)) => line,
            _ => panic!(
                "the CLI never printed {what}\n--- stderr so far\n{}",
                self.seen.join("\n")
            ),
        }
    }

    /// The user code the CLI shows, e.g. `BCDF-GHJK`.
    pub(crate) async fn user_code(&mut self) -> String {
        let line = self.line_where("a user code", is_user_code_line).await;
        line.trim().to_owned()
    }

    pub(crate) async fn finish(mut self) -> Finished {
        let status = tokio::time::timeout(SAFETY_LIMIT, async {
            loop {
                if let Some(status) = self.child.try_wait().expect("wait for the CLI") {
                    return status;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("the CLI did not exit\n{}", self.seen.join("\n")));
        while let Some(line) = self.lines.recv().await {
            self.seen.push(line);
        }
        let stdout = self
            .stdout
            .take()
            .map(|h| h.join().expect("stdout reader"))
            .unwrap_or_default();
        let mut stderr = self.seen.join("\n");
        if !stderr.is_empty() {
            stderr.push('\n');
        }
        Finished {
            code: status.code().unwrap_or(-1),
            stdout,
            stderr,
        }
    }
}

pub(crate) fn is_user_code_line(line: &str) -> bool {
    let code = line.trim();
    code.len() == 9
        && code.char_indices().all(|(i, c)| {
            if i == 4 {
                c == '-'
            } else {
                c.is_ascii_uppercase()
            }
        })
}

pub(crate) fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
}

/// `GET /api/my/whoami` with a token, over plain HTTP: the status.
pub(crate) async fn whoami_status(server: &TestServer, token: &str) -> u16 {
    server
        .anonymous()
        .get(server.url("/api/my/whoami"))
        .bearer_auth(token)
        .send()
        .await
        .expect("whoami request")
        .status()
        .as_u16()
}

/// A URL where nothing listens.
pub(crate) fn dead_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

/// Runs a device-code login on `cli` approved by `user`; returns its output.
pub(crate) async fn device_login(cli: &Cli, user: &TestUser, device_name: &str) -> Finished {
    let mut login = cli
        .cmd(["login", "--no-browser", "--device-name", device_name])
        .spawn();
    let code = login.user_code().await;
    assert_eq!(user.approve(&code).await.status(), 200);
    login.finish().await
}

pub(crate) async fn server(engine: Engine) -> TestServer {
    TestServer::start_running_clock(engine).await
}
