//! The one way this CLI makes an HTTP agent (the API client and the
//! telemetry sender alike): status codes are answers, not errors, both
//! timeouts are bounded, and the user agent names the version and platform.

use std::time::Duration;

pub fn agent(connect_timeout: Duration, request_timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(connect_timeout))
        .timeout_global(Some(request_timeout))
        .user_agent(user_agent())
        .build()
        .new_agent()
}

/// An agent for a response that lasts as long as it is read (a followed
/// log): only connecting is bounded.
pub fn streaming_agent(connect_timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(connect_timeout))
        .user_agent(user_agent())
        .build()
        .new_agent()
}

fn user_agent() -> String {
    format!(
        "claudemesh-cli/{} ({}; {})",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}
