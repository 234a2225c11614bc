//! Configuration, from flags or the environment. Nothing is required: with no
//! configuration the server stores its data in SQLite under `./data`.

use clap::{Parser, ValueEnum};
use std::path::PathBuf;

// Defaults of the limits per client address, a minute, counted per instance
// (0 turns each off). Here, with the settings, so that the modules that apply
// them depend on this one and not the other way round.
/// Device codes one address may start.
pub const DEVICE_CODES_PER_IP_PER_MINUTE: u32 = 30;
/// Accounts one address may create.
pub const SIGN_UPS_PER_IP_PER_MINUTE: u32 = 10;
/// Sign-ins, right or wrong, one address may attempt.
pub const SIGN_INS_PER_IP_PER_MINUTE: u32 = 30;
/// Telemetry batches one address may send. A command sends one (its own
/// events, at exit), so a person never comes near it; a CI farm behind one
/// address may, and its CLIs keep their events and try later.
pub const TELEMETRY_BATCHES_PER_IP_PER_MINUTE: u32 = 60;

#[derive(Parser, Clone)]
#[command(name = "claudemesh-server", version, about = "The claudemesh server")]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "CLAUDEMESH_BIND", default_value = "127.0.0.1:3000")]
    pub bind: String,

    /// The URL users reach this server at, used in the links it hands out
    /// (defaults to http://<bind address>).
    #[arg(long, env = "CLAUDEMESH_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Where the SQLite database and the mail outbox live.
    #[arg(long, env = "CLAUDEMESH_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,

    /// `postgres://…` to use PostgreSQL; unset for the embedded SQLite store.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// `smtp://host:port`, `smtps://user:pass@host` or `smtp://host:587?tls=required`
    /// to send mail; unset writes mail to `<data dir>/outbox` instead.
    #[arg(long, env = "CLAUDEMESH_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,

    /// The sender of the mail the server sends.
    #[arg(
        long,
        env = "CLAUDEMESH_MAIL_FROM",
        default_value = "claudemesh <noreply@claudemesh.localhost>"
    )]
    pub mail_from: String,

    /// How instances on one PostgreSQL database tell each other what changed:
    /// `postgres` (LISTEN/NOTIFY, the default: nothing else to run) or
    /// `nats://host:port[?subject=NAME]` (core NATS, for fan-out past what
    /// one database's NOTIFY carries; every instance of a deployment uses
    /// the same URL). PostgreSQL only.
    #[arg(
        long,
        env = "CLAUDEMESH_BUS",
        value_name = "URL",
        hide_env_values = true
    )]
    pub bus: Option<String>,

    /// Database connections in the pool (default: 4 for SQLite; for PostgreSQL two per CPU, at least 4).
    #[arg(long, env = "CLAUDEMESH_DB_POOL_SIZE")]
    pub db_pool_size: Option<u32>,

    /// Take the client address from X-Forwarded-For (only behind a proxy you run).
    #[arg(long, env = "CLAUDEMESH_TRUST_PROXY", default_value_t = false)]
    pub trust_proxy: bool,

    /// Requests one API token may make in any minute, counted per server
    /// instance (0: no limit). Browser sessions are not limited.
    #[arg(
        long,
        env = "CLAUDEMESH_TOKEN_REQUESTS_PER_MINUTE",
        default_value_t = 100
    )]
    pub token_requests_per_minute: u32,

    /// CLI logins (device codes, both faces) one client address may start
    /// in any minute, counted per server instance (0: no limit).
    #[arg(
        long,
        env = "CLAUDEMESH_DEVICE_CODES_PER_IP_PER_MINUTE",
        default_value_t = DEVICE_CODES_PER_IP_PER_MINUTE
    )]
    pub device_codes_per_ip_per_minute: u32,

    /// Accounts one client address may create in any minute, counted per
    /// server instance (0: no limit).
    #[arg(
        long,
        env = "CLAUDEMESH_SIGN_UPS_PER_IP_PER_MINUTE",
        default_value_t = SIGN_UPS_PER_IP_PER_MINUTE
    )]
    pub sign_ups_per_ip_per_minute: u32,

    /// Sign-ins, right or wrong, one client address may attempt in any
    /// minute, counted per server instance (0: no limit).
    #[arg(
        long,
        env = "CLAUDEMESH_SIGN_INS_PER_IP_PER_MINUTE",
        default_value_t = SIGN_INS_PER_IP_PER_MINUTE
    )]
    pub sign_ins_per_ip_per_minute: u32,

    /// Telemetry batches one client address may send in any minute, counted
    /// per server instance (0: no limit).
    #[arg(
        long,
        env = "CLAUDEMESH_TELEMETRY_BATCHES_PER_MINUTE",
        default_value_t = TELEMETRY_BATCHES_PER_IP_PER_MINUTE
    )]
    pub telemetry_batches_per_minute: u32,

    /// Days the CLI's telemetry events are kept (0: forever).
    #[arg(
        long,
        env = "CLAUDEMESH_TELEMETRY_RETENTION_DAYS",
        default_value_t = 90
    )]
    pub telemetry_retention_days: u32,

    /// Days the mesh log's entries are kept (0: forever). Older entries are
    /// dropped from the start of each chain; each log keeps its last entry.
    #[arg(
        long,
        env = "CLAUDEMESH_MESH_LOG_RETENTION_DAYS",
        default_value_t = 365
    )]
    pub mesh_log_retention_days: u32,

    /// Broker: messages one member may send in a burst.
    #[arg(long, env = "CLAUDEMESH_BROKER_SEND_BURST", default_value_t = 10)]
    pub broker_send_burst: u32,

    /// Broker: sustained messages per minute per member (0: no limit).
    #[arg(long, env = "CLAUDEMESH_BROKER_SENDS_PER_MINUTE", default_value_t = 60)]
    pub broker_sends_per_minute: u32,

    /// Broker: sessions connected at once in one mesh.
    #[arg(long, env = "CLAUDEMESH_BROKER_MAX_PEERS", default_value_t = 100)]
    pub broker_max_peers: u32,

    /// Broker: sessions connected at once per member.
    #[arg(
        long,
        env = "CLAUDEMESH_BROKER_MAX_CONNECTIONS_PER_MEMBER",
        default_value_t = 20
    )]
    pub broker_max_connections_per_member: u32,

    /// Broker: how long an undelivered message waits for its recipient, in seconds.
    #[arg(long, env = "CLAUDEMESH_BROKER_MESSAGE_TTL", default_value_t = 7 * 24 * 3600)]
    pub broker_message_ttl: u64,

    /// Log lines as JSON (for collectors) or as text (for people).
    #[arg(long, env = "CLAUDEMESH_LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,

    /// Seconds in-flight requests get to finish once the server is told to
    /// stop (SIGTERM, Ctrl-C); then it stops anyway.
    #[arg(long, env = "CLAUDEMESH_SHUTDOWN_GRACE", value_name = "SECONDS",
          default_value_t = SHUTDOWN_GRACE_SECS,
          value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub shutdown_grace: u64,

    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9464);
    /// off when unset. Its own address, so that the public one exposes
    /// nothing new: keep it on a private interface.
    #[arg(long, env = "CLAUDEMESH_METRICS_BIND", value_name = "ADDR")]
    pub metrics_bind: Option<String>,
    /// Seconds a connection's write may wait without progress (a client
    /// that stopped reading: a mesh log follower, a broker session); then
    /// the connection is closed.
    #[arg(long, env = "CLAUDEMESH_WRITE_STALL_TIMEOUT", value_name = "SECONDS",
          default_value_t = crate::http::write_stall::WRITE_STALL_SECS,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub write_stall_timeout: u64,
}

/// The default of `--shutdown-grace`: under systemd's stop timeout of 10 s
/// (docs/operations.md's unit), so a stop never ends in SIGKILL. Broker
/// sessions and waiting polls end at once; only plain requests can take it.
pub const SHUTDOWN_GRACE_SECS: u64 = 8;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormat {
    Json,
    Text,
}

impl Config {
    /// A configuration for tests and embedding: random port, given store.
    pub fn for_tests(data_dir: PathBuf, database_url: Option<String>) -> Self {
        Self {
            bind: "127.0.0.1:0".into(),
            public_url: None,
            data_dir,
            database_url,
            bus: None,
            smtp_url: None,
            db_pool_size: None,
            mail_from: "claudemesh <noreply@claudemesh.localhost>".into(),
            trust_proxy: false,
            token_requests_per_minute: 100,
            device_codes_per_ip_per_minute: DEVICE_CODES_PER_IP_PER_MINUTE,
            sign_ups_per_ip_per_minute: SIGN_UPS_PER_IP_PER_MINUTE,
            sign_ins_per_ip_per_minute: SIGN_INS_PER_IP_PER_MINUTE,
            telemetry_batches_per_minute: TELEMETRY_BATCHES_PER_IP_PER_MINUTE,
            telemetry_retention_days: 90,
            mesh_log_retention_days: 365,
            broker_send_burst: 10,
            broker_sends_per_minute: 60,
            broker_max_peers: 100,
            broker_max_connections_per_member: 20,
            broker_message_ttl: 7 * 24 * 3600,
            log_format: LogFormat::Text,
            shutdown_grace: SHUTDOWN_GRACE_SECS,
            metrics_bind: None,
            write_stall_timeout: crate::http::write_stall::WRITE_STALL_SECS,
        }
    }
}
