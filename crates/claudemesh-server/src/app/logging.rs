//! Log set-up. Lines go to stderr; `RUST_LOG` filters (default `info`).
//!
//! Nothing here logs request URIs or bodies: a device code travels in a URL
//! path and tokens in bodies, and neither may reach a log. Requests are logged
//! by their route template (see [`crate::http::request::log_requests`]).

use crate::app::config::LogFormat;
use tracing_subscriber::EnvFilter;

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
