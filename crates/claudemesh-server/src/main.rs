//! `claudemesh-server`: parse the configuration, start, serve until Ctrl-C
//! or SIGTERM (then stop gracefully: `Application::run_until`); or check the
//! configuration and exit (`--check-config`); or, with a subcommand, a task
//! on the same store (`telemetry-report`).

use clap::{Args, Parser, Subcommand};
use claudemesh_server::clock::{Clock, SystemClock};
use claudemesh_server::db::pool::Db;
use claudemesh_server::telemetry::Report;
use claudemesh_server::{Application, Config};
use std::{process::ExitCode, sync::Arc};

#[derive(Parser)]
#[command(name = "claudemesh-server", version, about = "The claudemesh server")]
struct Cli {
    #[command(flatten)]
    config: Config,

    /// Check the settings (flags and environment) and exit: 0 when the
    /// server could start with them, 1 with each problem. Binds nothing and
    /// connects to nothing.
    #[arg(long)]
    check_config: bool,

    /// With none, the server runs.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    TelemetryReport(TelemetryReportArgs),
}

/// Print what the CLI's telemetry says: login success rate, login failure
/// reasons, the most used commands and the API errors met
///
/// Reads the store the server uses: the SQLite file in --data-dir, or the
/// PostgreSQL database of DATABASE_URL.
///
/// Examples:
///   claudemesh-server telemetry-report
///   claudemesh-server telemetry-report --days 7 --data-dir /var/lib/claudemesh
///   DATABASE_URL=postgres://… claudemesh-server telemetry-report
#[derive(Args)]
#[command(verbatim_doc_comment)]
struct TelemetryReportArgs {
    /// Events received in the last N days
    #[arg(long, value_name = "N", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(1..=36_500))]
    days: u32,

    /// The server's data directory (as the server's own --data-dir)
    #[arg(long = "data-dir", id = "report_data_dir", value_name = "DIR")]
    data_dir: Option<std::path::PathBuf>,

    /// `postgres://…` (as the server's own --database-url)
    #[arg(long = "database-url", id = "report_database_url", value_name = "URL")]
    database_url: Option<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let Cli {
        mut config,
        check_config,
        command,
    } = Cli::parse();
    if check_config {
        let report = claudemesh_server::app::check::check(&config).await;
        return if report.ok() {
            print!("{}", report.render());
            ExitCode::SUCCESS
        } else {
            eprint!("{}", report.render());
            ExitCode::FAILURE
        };
    }
    if let Some(Command::TelemetryReport(args)) = command {
        config.data_dir = args.data_dir.unwrap_or(config.data_dir);
        config.database_url = args.database_url.or(config.database_url);
        return telemetry_report(&config, args.days).await;
    }
    claudemesh_server::app::logging::init(config.log_format);
    let app = match Application::build(config, Arc::new(SystemClock)).await {
        Ok(app) => app,
        Err(err) => {
            eprintln!("claudemesh-server: {err}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!(
        "claudemesh-server listening on {} (public URL {}, {} store, mail via {})",
        app.local_addr(),
        app.public_url(),
        app.engine_name(),
        app.mail_transport()
    );
    if let Some(addr) = app.metrics_addr() {
        eprintln!("claudemesh-server metrics at http://{addr}/metrics");
    }
    match app.run_until(shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("claudemesh-server: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn telemetry_report(config: &Config, days: u32) -> ExitCode {
    let db = match Db::open(
        config.database_url.as_deref(),
        &config.data_dir,
        config.db_pool_size,
    )
    .await
    {
        Ok(db) => db,
        Err(err) => {
            eprintln!("claudemesh-server: {err}");
            return ExitCode::FAILURE;
        }
    };
    match Report::load(&db.pool, SystemClock.now_ms(), days).await {
        Ok(report) => {
            print!("{report}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("claudemesh-server: reading the telemetry failed: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {},
                    _ = term.recv() => {},
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "no SIGTERM handler; stopping on Ctrl-C only");
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
