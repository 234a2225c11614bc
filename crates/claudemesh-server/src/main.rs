//! `claudemesh-server`: parse the configuration, start, serve until Ctrl-C.

use clap::Parser;
use claudemesh_server::{Application, Config, clock::SystemClock};
use std::{process::ExitCode, sync::Arc};

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    claudemesh_server::logging::init(config.log_format);
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
    match app.run_until(shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("claudemesh-server: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
