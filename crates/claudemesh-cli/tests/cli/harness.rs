//! What every area shares: a machine's CLI (`Cli`) and its config file,
//! running it (`Invocation`; `Running`, `Streaming`), the lines it prints as
//! they come (`Lines`), reading what it did (`Finished`), people in a mesh
//! each on a machine of their own (`DevMesh`), the test double of Claude
//! Code (`fake_claude`), and the servers and helpers around them.

pub(crate) use claudemesh_api::{Token, TokenKind};
pub(crate) use claudemesh_testkit::{Engine, Member, Mesh, MeshOptions, TestServer, TestUser};
pub(crate) use serde_json::{Value, json};
pub(crate) use std::io::{BufRead, BufReader, Read, Write};
pub(crate) use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
pub(crate) use std::path::{Path, PathBuf};
pub(crate) use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
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

    pub(crate) fn config_path(&self) -> PathBuf {
        self.config_dir.join("config.json")
    }

    pub(crate) fn config_json(&self) -> Value {
        let text = std::fs::read_to_string(self.config_path()).expect("config.json exists");
        serde_json::from_str(&text).expect("config.json is JSON")
    }

    /// This machine's mesh records for `server`.
    pub(crate) fn local_meshes(&self, server: &TestServer) -> Vec<Value> {
        if !self.config_path().exists() {
            return Vec::new();
        }
        self.config_json()["servers"][server.base_url.as_str()]["meshes"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    pub(crate) fn local_mesh(&self, server: &TestServer, slug: &str) -> Value {
        self.local_meshes(server)
            .into_iter()
            .find(|m| m["slug"] == slug)
            .unwrap_or_else(|| panic!("no local record of {slug}: {}", self.config_json()))
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

    /// `claudemesh ARGS` with the arguments in a slice.
    pub(crate) fn cmd_args(&self, args: &[&str]) -> Invocation {
        let mut cmd = self.cmd([]);
        cmd.command.args(args);
        cmd
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

    /// Runs to the end, which must be exit `code` with `text` on stderr.
    pub(crate) async fn says(self, code: i32, text: &str) -> Finished {
        let out = self.run().await.expect_code(code);
        out.stderr_has(text);
        out
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
        let stderr = Lines::of(child.stderr.take().expect("stderr pipe"));
        let mut stdout = child.stdout.take().expect("stdout pipe");
        let stdout = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stdout.read_to_string(&mut text);
            text
        });
        Running {
            child,
            stderr,
            stdout: Some(stdout),
        }
    }

    /// Starts the CLI with stdout and stderr read line by line as they
    /// come, and nothing on stdin.
    pub(crate) fn stream(self) -> Streaming {
        self.stream_with(Stdio::null())
    }

    /// [`Invocation::stream`] with stdin a pipe the test writes to.
    pub(crate) fn stream_with_stdin(self) -> Streaming {
        self.stream_with(Stdio::piped())
    }

    fn stream_with(mut self, stdin: Stdio) -> Streaming {
        self.command
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = self.command.spawn().expect("the claudemesh binary starts");
        Streaming {
            stdin: child.stdin.take(),
            stdout: Lines::of(child.stdout.take().expect("stdout pipe")),
            stderr: Lines::of(child.stderr.take().expect("stderr pipe")),
            child,
        }
    }
}

// ------------------------------------------------------------ waiting

/// The lines of a pipe (a child's stdout or stderr) as they come, read on a
/// thread of their own, and every line taken so far.
pub(crate) struct Lines {
    incoming: mpsc::UnboundedReceiver<String>,
    /// Every line taken so far, in order.
    pub(crate) seen: Vec<String>,
    /// How many of `seen` the waits have passed.
    passed: usize,
}

impl Lines {
    pub(crate) fn of(pipe: impl Read + Send + 'static) -> Self {
        let (tx, incoming) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            incoming,
            seen: Vec::new(),
            passed: 0,
        }
    }

    /// The next line, if one comes within `limit`.
    pub(crate) async fn next_within(&mut self, limit: Duration) -> Option<String> {
        let line = tokio::time::timeout(limit, self.incoming.recv())
            .await
            .ok()??;
        self.seen.push(line.clone());
        self.passed = self.seen.len();
        Some(line)
    }

    /// The first line `wanted` accepts, among those taken but not yet waited
    /// past and then those to come, within the safety limit.
    pub(crate) async fn line_where(&mut self, wanted: impl Fn(&str) -> bool) -> Option<String> {
        if let Some(at) = self.seen[self.passed..].iter().position(|l| wanted(l)) {
            self.passed += at + 1;
            return Some(self.seen[self.passed - 1].clone());
        }
        self.passed = self.seen.len();
        tokio::time::timeout(SAFETY_LIMIT, async {
            while let Some(line) = self.incoming.recv().await {
                self.seen.push(line);
                self.passed = self.seen.len();
                let line = &self.seen[self.passed - 1];
                if wanted(line) {
                    return Some(line.clone());
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
    }

    /// Takes the lines already there, without waiting.
    pub(crate) fn take_ready(&mut self) {
        while let Ok(line) = self.incoming.try_recv() {
            self.seen.push(line);
        }
    }

    /// Takes every line until the pipe closes: false if it is still open
    /// after the safety limit.
    pub(crate) async fn take_all(&mut self) -> bool {
        tokio::time::timeout(SAFETY_LIMIT, async {
            while let Some(line) = self.incoming.recv().await {
                self.seen.push(line);
            }
        })
        .await
        .is_ok()
    }

    /// The lines taken so far, one text.
    pub(crate) fn text(&self) -> String {
        self.seen.join("\n")
    }
}

/// Waits for `child` to exit, within the safety limit.
pub(crate) async fn exit_of(child: &mut Child) -> Option<ExitStatus> {
    tokio::time::timeout(SAFETY_LIMIT, async {
        loop {
            if let Some(status) = child.try_wait().expect("wait for the child") {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .ok()
}

/// A CLI still running. Killed if the test ends (or fails) before it does.
pub(crate) struct Running {
    pub(crate) child: Child,
    pub(crate) stderr: Lines,
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
        match self.stderr.line_where(wanted).await {
            Some(line) => line,
            None => panic!(
                "the CLI never printed {what}\n--- stderr so far\n{}",
                self.stderr.text()
            ),
        }
    }

    /// The user code the CLI shows, e.g. `BCDF-GHJK`.
    pub(crate) async fn user_code(&mut self) -> String {
        let line = self.line_where("a user code", is_user_code_line).await;
        line.trim().to_owned()
    }

    pub(crate) async fn finish(mut self) -> Finished {
        let status = exit_of(&mut self.child)
            .await
            .unwrap_or_else(|| panic!("the CLI did not exit\n{}", self.stderr.text()));
        assert!(
            self.stderr.take_all().await,
            "the CLI exited, but something it started still holds its stderr"
        );
        let stdout = self
            .stdout
            .take()
            .map(|h| h.join().expect("stdout reader"))
            .unwrap_or_default();
        let mut stderr = self.stderr.text();
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

/// A CLI left running (`inbox --follow`, `launch`), read line by line on
/// both streams. Dropping it closes its stdin and kills it.
pub(crate) struct Streaming {
    pub(crate) child: Child,
    pub(crate) stdin: Option<ChildStdin>,
    pub(crate) stdout: Lines,
    pub(crate) stderr: Lines,
}

impl Drop for Streaming {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Streaming {
    /// What it printed so far, for a failure's message.
    pub(crate) fn context(&mut self) -> String {
        self.stderr.take_ready();
        format!(
            "--- stdout so far\n{}\n--- stderr so far\n{}",
            self.stdout.text(),
            self.stderr.text()
        )
    }

    /// The next line on stdout.
    pub(crate) async fn stdout_line(&mut self, what: &str) -> String {
        match self.stdout.next_within(SAFETY_LIMIT).await {
            Some(line) => line,
            None => panic!("the CLI never printed {what} on stdout\n{}", self.context()),
        }
    }

    /// The next stdout line, as JSON.
    pub(crate) async fn stdout_json(&mut self, what: &str) -> Value {
        let line = self.stdout_line(what).await;
        serde_json::from_str(&line).unwrap_or_else(|err| panic!("not JSON ({err}): {line}"))
    }

    /// Waits until the CLI prints a stderr line that `wanted` accepts.
    pub(crate) async fn stderr_where(
        &mut self,
        what: &str,
        wanted: impl Fn(&str) -> bool,
    ) -> String {
        match self.stderr.line_where(wanted).await {
            Some(line) => line,
            None => panic!("the CLI never printed {what}\n{}", self.context()),
        }
    }

    /// Sends it a signal (`INT` for Ctrl-C, `TERM`, …), as a terminal or a
    /// process manager would.
    pub(crate) fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Closes its stdin and waits for it to exit and for every process it
    /// started to let go of its stdout and stderr: the exit code and all of
    /// stderr.
    pub(crate) async fn finish(&mut self) -> (i32, String) {
        drop(self.stdin.take());
        self.exited().await
    }

    /// Waits for it to exit on its own, its stdin left open (a program
    /// that reads it could take the end of input for its cue to exit,
    /// ahead of a signal on its way), and for every process it started to
    /// let go of its stdout and stderr: the exit code and all of stderr.
    pub(crate) async fn exited(&mut self) -> (i32, String) {
        let Some(status) = exit_of(&mut self.child).await else {
            panic!("the CLI did not exit\n{}", self.context());
        };
        if !(self.stdout.take_all().await && self.stderr.take_all().await) {
            panic!(
                "the CLI exited, but something it started still holds its output\n{}",
                self.context()
            );
        }
        (status.code().unwrap_or(-1), self.stderr.text())
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

/// The test double of Claude Code, built by `cargo test` as an example of
/// this package: `target/debug/examples/fake_claude` beside the test
/// binary's `target/debug/deps/`.
pub(crate) fn fake_claude() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let path = exe
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join("examples").join("fake_claude"))
        .expect("the test binary lives in target/<profile>/deps");
    assert!(
        path.is_file(),
        "the test double of Claude Code is missing at {}; `cargo test -p claudemesh-cli` \
         builds it (a `--test cli` run alone does not: `cargo build -p claudemesh-cli \
         --example fake_claude` first)",
        path.display()
    );
    path
}

// ------------------------------------------------------ people and meshes

/// A machine of `user`'s, logged in with a PAT of its own.
pub(crate) async fn machine(server: &TestServer, user: &TestUser) -> Cli {
    let pat = user.create_pat("machine", None).await;
    let cli = Cli::for_server(server);
    cli.login_with_pat(&pat.token).await;
    cli
}

/// A new account per name, then each logged in on a machine of its own:
/// `[(alice, alices), (bob, bobs)]`. No mesh yet.
pub(crate) async fn on_machines<const N: usize>(
    server: &TestServer,
    names: [&str; N],
) -> [(TestUser, Cli); N] {
    let mut users = Vec::new();
    for name in names {
        users.push(server.register(name).await);
    }
    let mut people = Vec::new();
    for user in users {
        let cli = machine(server, &user).await;
        people.push((user, cli));
    }
    let Ok(people) = people.try_into() else {
        unreachable!("a machine per name")
    };
    people
}

/// `claudemesh invite ARGS` that succeeds: the link it printed on stdout.
pub(crate) async fn invite_link<const N: usize>(cli: &Cli, args: [&str; N]) -> String {
    let out = cli.cmd(args).run().await.expect_code(0);
    let link = out.stdout.trim_end_matches('\n');
    assert!(
        !link.contains('\n') && link.contains("/i/"),
        "stdout is one link:\n{}",
        out.stdout
    );
    link.to_owned()
}

/// People in the mesh `dev` (as [`TestServer::mesh`] makes one: the first
/// created it), each on a machine of their own that has joined it, on a
/// server whose clock runs: the server, the mesh, and the machines in the
/// order of `mesh.members`. Bind every part when taking it apart
/// (`let DevMesh(_server, mesh, [alices, bobs]) = …`): a part matched by
/// `_` or `..` is dropped at once (the server with it).
pub(crate) struct DevMesh<const N: usize>(
    pub(crate) TestServer,
    pub(crate) Mesh,
    pub(crate) [Cli; N],
);

impl<const N: usize> DevMesh<N> {
    pub(crate) async fn start(engine: Engine, names: [&str; N]) -> Self {
        let server = server(engine).await;
        let mesh = server.mesh_with(&names, MeshOptions::named("Dev")).await;
        let mut machines = Vec::new();
        for member in &mesh.members {
            machines.push(Cli::joined(&server, &mesh, member).await);
        }
        let Ok(machines) = machines.try_into() else {
            unreachable!("a machine per name")
        };
        Self(server, mesh, machines)
    }
}

impl Cli {
    /// A machine of `member`'s that joined `mesh` with the member's key: its
    /// `config.json` as `claudemesh join` leaves it, then a login with a PAT
    /// (whose sync finds the mesh joined here, and registers no other key).
    pub(crate) async fn joined(server: &TestServer, mesh: &Mesh, member: &Member) -> Self {
        let cli = Self::for_server(server);
        std::fs::create_dir(&cli.config_dir).expect("the config directory");
        std::fs::set_permissions(&cli.config_dir, std::fs::Permissions::from_mode(0o700))
            .expect("chmod");
        let record = json!({
            "slug": mesh.slug,
            "mesh_id": mesh.id,
            "name": mesh.name,
            "user_id": member.user.user.id,
            "member_id": member.member_id,
            "role": member.role,
            "display_name": member.name,
            "public_key": member.key.public_hex(),
            "secret_key": member.key.secret_hex(),
            "joined_at": mesh.created_at,
        });
        let mut servers = serde_json::Map::new();
        servers.insert(server.base_url.clone(), json!({ "meshes": [record] }));
        let config = json!({ "version": 1, "servers": servers });
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(cli.config_path())
            .and_then(|mut file| file.write_all(config.to_string().as_bytes()))
            .expect("write config.json");
        let out = cli
            .cmd(["login", "--with-token"])
            .stdin(member.token().await)
            .run()
            .await
            .expect_code(0);
        out.stderr_has(&format!("✔ Synced 1 mesh: {}\n", mesh.slug));
        assert!(!out.stderr.contains("+ "), "{}", out.stderr);
        cli
    }
}
