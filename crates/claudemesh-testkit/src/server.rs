//! The server in this process: [`TestServer`], its [`Options`], a
//! [`SecondInstance`] on the same database, and the engines.

use claudemesh_api::wire::{AccountResponse, MeshRole};
use claudemesh_server::clock::ManualClock;
use claudemesh_server::{Application, Config};
use reqwest::cookie::Jar;
use reqwest::header::{HeaderMap, HeaderValue, ORIGIN};
use serde_json::{Value, json};
use sqlx::{Connection, Executor, PgConnection};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::mesh::{Mesh, MeshOptions};
use crate::user::TestUser;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

pub const DEFAULT_PASSWORD: &str = "correct horse battery staple";

fn admin_pg_url() -> String {
    std::env::var("CLAUDEMESH_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// How to start a [`TestServer`] beyond the defaults.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Follow real time instead of a frozen clock.
    pub running_clock: bool,
    /// Send mail here (see [`SmtpSink`](crate::SmtpSink)); the outbox directory otherwise.
    pub smtp_url: Option<String>,
    /// Take client addresses from `X-Forwarded-For`, as behind a proxy.
    pub trust_proxy: bool,
    /// Requests a minute per API token (0: no limit); the server's default
    /// (100) when `None`.
    pub token_requests_per_minute: Option<u32>,
    /// Keep the server's limits per client address on device codes,
    /// sign-ups and sign-ins (30, 10 and 30 a minute). Off otherwise: every
    /// test client is 127.0.0.1, and tests start logins and create accounts
    /// faster than people do.
    pub address_limits: bool,
    /// Serve `/metrics` on an address of its own (`--metrics-bind`).
    pub metrics: bool,
    /// Seconds a connection's write may wait without progress before the
    /// server closes it (`--write-stall-timeout`); the server's default (60)
    /// when `None`.
    pub write_stall_timeout: Option<u64>,
    /// The broker's `--bus` (PostgreSQL only): see [`crate::nats::bus_url`].
    pub bus: Option<String>,
    /// Sessions a mesh may have connected; the server's default (100) when
    /// `None`.
    pub broker_max_peers: Option<u32>,
    /// Sessions one member may have connected in a mesh; the server's
    /// default (20) when `None`.
    pub broker_max_connections_per_member: Option<u32>,
}

/// A running server and everything needed to restart it on the same port
/// and database.
pub struct TestServer {
    pub base_url: String,
    pub port: u16,
    pub clock: Arc<ManualClock>,
    pub engine: Engine,
    config: Config,
    state: Option<claudemesh_server::app::state::AppState>,
    metrics_addr: Option<std::net::SocketAddr>,
    running: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
    pg_database: Option<String>,
    _data_dir: TempDir,
}

/// A second instance of a [`TestServer`]'s server (see
/// [`TestServer::second_instance`]); [`SecondInstance::stop`] ends it.
pub struct SecondInstance {
    pub base_url: String,
    pub state: claudemesh_server::app::state::AppState,
    running: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
}

impl SecondInstance {
    /// Stops it gracefully and waits until it has.
    pub async fn stop(mut self) {
        if let Some((stop, running)) = self.running.take() {
            let _ = stop.send(());
            running.await.expect("the second instance stops cleanly");
        }
    }
}

impl TestServer {
    /// A server whose clock is frozen (tests move it with `clock.advance`).
    pub async fn start(engine: Engine) -> Self {
        Self::start_with(engine, Options::default()).await
    }

    /// A server whose clock follows real time, for tests where a real client
    /// (the CLI) waits between requests; `clock.advance` still jumps ahead.
    pub async fn start_running_clock(engine: Engine) -> Self {
        Self::start_with(
            engine,
            Options {
                running_clock: true,
                ..Options::default()
            },
        )
        .await
    }

    pub async fn start_with(engine: Engine, options: Options) -> Self {
        let clock = if options.running_clock {
            ManualClock::running()
        } else {
            ManualClock::new()
        };
        let data_dir = tempfile::tempdir().expect("temporary directory");
        let (database_url, pg_database) = match engine {
            Engine::Sqlite => (None, None),
            Engine::Postgres => {
                let (url, name) = create_pg_database().await;
                (Some(url), Some(name))
            }
        };
        let mut config = Config::for_tests(data_dir.path().to_owned(), database_url);
        config.smtp_url = options.smtp_url;
        config.trust_proxy = options.trust_proxy;
        if let Some(per_minute) = options.token_requests_per_minute {
            config.token_requests_per_minute = per_minute;
        }
        if options.metrics {
            config.metrics_bind = Some("127.0.0.1:0".into());
        }
        if let Some(seconds) = options.write_stall_timeout {
            config.write_stall_timeout = seconds;
        }
        config.bus = options.bus;
        if let Some(max) = options.broker_max_peers {
            config.broker_max_peers = max;
        }
        if let Some(max) = options.broker_max_connections_per_member {
            config.broker_max_connections_per_member = max;
        }
        if !options.address_limits {
            config.device_codes_per_ip_per_minute = 0;
            config.sign_ups_per_ip_per_minute = 0;
            config.sign_ins_per_ip_per_minute = 0;
        }
        let mut server = Self {
            base_url: String::new(),
            port: 0,
            clock: Arc::new(clock),
            engine,
            config,
            state: None,
            metrics_addr: None,
            running: None,
            pg_database,
            _data_dir: data_dir,
        };
        server.boot().await;
        server
    }

    async fn boot(&mut self) {
        let app = Application::build(self.config.clone(), self.clock.clone())
            .await
            .expect("the test server starts");
        self.port = app.local_addr().port();
        self.base_url = app.public_url().to_owned();
        // Later restarts reuse the port, so clients keep their URL.
        self.config.bind = app.local_addr().to_string();
        self.config.public_url = Some(self.base_url.clone());
        self.state = Some(app.state().clone());
        self.metrics_addr = app.metrics_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            app.run_until(async {
                let _ = stopped.await;
            })
            .await
            .expect("the test server runs");
        });
        self.running = Some((stop, handle));
    }

    /// Stops the server (the database stays).
    pub async fn stop(&mut self) {
        if let Some((stop, handle)) = self.running.take() {
            let _ = stop.send(());
            let _ = handle.await;
        }
    }

    /// Starts the server again on the same port and database.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.boot().await;
    }

    /// Another instance of the server on the same database, with the real
    /// clock, on a port of its own: the multi-instance tests (PostgreSQL).
    pub async fn second_instance(&self) -> SecondInstance {
        let mut config = self.config.clone();
        config.bind = "127.0.0.1:0".into();
        config.public_url = None;
        let second = Application::build(config, Arc::new(claudemesh_server::clock::SystemClock))
            .await
            .expect("a second instance starts");
        let base_url = format!("http://{}", second.local_addr());
        let state = second.state().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let running = tokio::spawn(async move {
            second
                .run_until(async {
                    let _ = stopped.await;
                })
                .await
                .expect("the second instance runs");
        });
        SecondInstance {
            base_url,
            state,
            running: Some((stop, running)),
        }
    }

    /// The running server's state, for tests that look into the database.
    pub fn state(&self) -> &claudemesh_server::app::state::AppState {
        self.state.as_ref().expect("the server has started")
    }

    /// Copies a stored broker message and its deliveries under `new_id`,
    /// as whoever holds the database could (a replay under a new id).
    pub async fn copy_broker_message(&self, id: &str, new_id: &str) {
        let columns = "mesh_id, sender_member_id, sender_session_key, sender_member_key, \
            sender_name, attestation_expires_at, attestation_signature, kind, group_name, \
            priority, body_nonce, body, created_at, expires_at, attestation_rights";
        let pool = self.state().pool();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO broker_messages (id, {columns}) SELECT $2, {columns} \
             FROM broker_messages WHERE id = $1"
        )))
        .bind(id)
        .bind(new_id)
        .execute(pool)
        .await
        .expect("the message row is copied");
        sqlx::query(
            "INSERT INTO broker_deliveries (message_id, recipient_key, recipient_member_id, \
             key_nonce, key_box) SELECT $2, recipient_key, recipient_member_id, key_nonce, \
             key_box FROM broker_deliveries WHERE message_id = $1",
        )
        .bind(id)
        .bind(new_id)
        .execute(pool)
        .await
        .expect("the delivery rows are copied");
    }

    /// Changes a stored broker message's kind and group in the database (a
    /// relabelling the broker's envelope would then carry).
    pub async fn relabel_broker_message(&self, id: &str, kind: &str, group: Option<&str>) {
        sqlx::query("UPDATE broker_messages SET kind = $2, group_name = $3 WHERE id = $1")
            .bind(id)
            .bind(kind)
            .bind(group)
            .execute(self.state().pool())
            .await
            .expect("the message is relabelled");
    }

    /// The audit log as `(event, user_id, detail)`, oldest first.
    pub async fn audit_events(&self) -> Vec<(String, Option<String>, String)> {
        sqlx::query_as("SELECT event, user_id, detail FROM audit_log ORDER BY at, id")
            .fetch_all(self.state().pool())
            .await
            .expect("read the audit log")
    }

    /// Whether the audit log has an `event`.
    pub async fn audited(&self, event: &str) -> bool {
        self.audit_events().await.iter().any(|(e, _, _)| e == event)
    }

    /// The server configuration (for tests that start a second instance).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// `/metrics` on its own address, when started with `metrics`.
    pub fn metrics_url(&self) -> Option<String> {
        Some(format!("http://{}/metrics", self.metrics_addr?))
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// The server's OpenAPI document (`/api/openapi.json`).
    pub async fn openapi(&self) -> Value {
        self.anonymous()
            .get(self.url("/api/openapi.json"))
            .send()
            .await
            .expect("openapi request")
            .json()
            .await
            .expect("the OpenAPI document is JSON")
    }

    /// A client with no credentials.
    pub fn anonymous(&self) -> reqwest::Client {
        reqwest::Client::new()
    }

    /// A fresh browser-like client: keeps cookies, sends this site's Origin.
    pub fn browser(&self) -> reqwest::Client {
        self.browser_with(Arc::new(Jar::default()))
    }

    /// A browser-like client keeping its cookies in `cookies`.
    fn browser_with(&self, cookies: Arc<Jar>) -> reqwest::Client {
        let mut headers = HeaderMap::new();
        headers.insert(
            ORIGIN,
            HeaderValue::from_str(&self.base_url).expect("origin header"),
        );
        reqwest::Client::builder()
            .cookie_provider(cookies)
            .default_headers(headers)
            .build()
            .expect("http client")
    }

    /// Registers a new account with a unique email; its browser is signed in.
    pub async fn register(&self, name: &str) -> TestUser {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let email = format!("{}.{n}@example.com", name.to_lowercase().replace(' ', "."));
        let cookies = Arc::new(Jar::default());
        let browser = self.browser_with(cookies.clone());
        let response = browser
            .post(self.url("/api/auth/register"))
            .json(&json!({ "email": email, "password": DEFAULT_PASSWORD, "name": name }))
            .send()
            .await
            .expect("register request");
        assert_eq!(response.status(), 201, "register {email}");
        let account: AccountResponse = response.json().await.expect("register body");
        TestUser {
            user: account.user,
            email,
            password: DEFAULT_PASSWORD.into(),
            browser,
            cookies,
            base_url: self.base_url.clone(),
        }
    }

    /// A mesh called `Team` of one new account per name, each a member with
    /// a machine key of their own; the first created it (its admin).
    pub async fn mesh(&self, names: &[&str]) -> Mesh {
        self.mesh_with(names, MeshOptions::default()).await
    }

    /// [`TestServer::mesh`] with another name or more admins.
    pub async fn mesh_with(&self, names: &[&str], options: MeshOptions) -> Mesh {
        let (first, others) = names.split_first().expect("a mesh has a member");
        let creator = self.register(first).await;
        let mut mesh =
            Mesh::create(&self.base_url, self.clock.clone(), creator, &options.name).await;
        for name in others {
            let user = self.register(name).await;
            let role = if options.admins.iter().any(|admin| admin == name) {
                MeshRole::Admin
            } else {
                MeshRole::Member
            };
            mesh.join(&user, role).await;
        }
        mesh
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some((stop, handle)) = self.running.take() {
            let _ = stop.send(());
            handle.abort();
        }
        self.state = None;
        if let Some(name) = self.pg_database.take() {
            // Drop runs outside async context: drop the database from a
            // thread with its own small runtime.
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .ok()?;
                runtime.block_on(async {
                    let mut admin = PgConnection::connect(&admin_pg_url()).await.ok()?;
                    let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                    admin.execute(sqlx::AssertSqlSafe(sql)).await.ok()
                })
            })
            .join();
        }
    }
}

async fn create_pg_database() -> (String, String) {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let admin_url = admin_pg_url();
    let name = format!(
        "claudemesh_test_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst),
        claudemesh_server::db::ids::random_base32::<4>()
    );
    let mut admin = PgConnection::connect(&admin_url)
        .await
        .unwrap_or_else(|err| {
            panic!(
                "PostgreSQL tests need a server at {admin_url} (set CLAUDEMESH_TEST_PG_URL): {err}"
            )
        });
    admin
        .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .await
        .expect("create the test database");
    let base = admin_url
        .rsplit_once('/')
        .map_or(admin_url.as_str(), |(base, _)| base);
    (format!("{base}/{name}"), name)
}
