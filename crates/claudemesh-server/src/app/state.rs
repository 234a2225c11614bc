//! What every handler can reach: the store, the clock, the settings, the
//! mailer, the broker, the per-token request limit, the per-address limits
//! on unauthenticated writes, the waiting device-code polls.

use crate::auth::address_limits::AddressLimits;
use crate::auth::request_limit::RequestLimit;
use crate::auth::wakeups::Wakeups;
use crate::broker::Broker;
use crate::clock::Clock;
use crate::db::pool::Db;
use crate::text::mail::Mailer;
use std::sync::Arc;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub db: Db,
    pub clock: Arc<dyn Clock>,
    pub settings: Settings,
    pub mailer: Mailer,
    pub broker: Broker,
    /// Requests per API token in the last minute (this instance's count).
    pub request_limit: RequestLimit,
    /// Device-code starts, sign-ups and sign-ins per client address in the
    /// last minute (this instance's count).
    pub address_limits: AddressLimits,
    /// Device-code polls waiting for news on this instance.
    pub wakeups: Wakeups,
}

/// Settings derived once at start-up.
pub struct Settings {
    /// The public URL without a trailing slash, e.g. `https://claudemesh.com`.
    pub public_url: String,
    /// `scheme://host[:port]` of the public URL: the only origin trusted for
    /// cookie-authenticated changes.
    pub public_origin: String,
    /// Mark cookies `Secure` (the public URL is https).
    pub secure_cookies: bool,
    pub trust_proxy: bool,
    /// Telemetry batches one client address may send in any minute (0: no limit).
    pub telemetry_batches_per_minute: u32,
}

impl Settings {
    pub fn new(public_url: &str, trust_proxy: bool) -> Self {
        let public_url = public_url.trim_end_matches('/').to_owned();
        let public_origin = origin_of(&public_url).unwrap_or_else(|| public_url.clone());
        Self {
            secure_cookies: public_url.starts_with("https://"),
            public_url,
            public_origin,
            trust_proxy,
            telemetry_batches_per_minute: crate::app::config::TELEMETRY_BATCHES_PER_IP_PER_MINUTE,
        }
    }
}

/// `scheme://authority` of a URL, lowercased; `None` if it has no scheme.
pub fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    Some(format!("{scheme}://{authority}").to_ascii_lowercase())
}

impl AppState {
    #[expect(
        clippy::too_many_arguments,
        reason = "one for each part of the state, built by the caller"
    )]
    pub fn new(
        db: Db,
        clock: Arc<dyn Clock>,
        settings: Settings,
        mailer: Mailer,
        broker: Broker,
        request_limit: RequestLimit,
        address_limits: AddressLimits,
        wakeups: Wakeups,
    ) -> Self {
        Self(Arc::new(Inner {
            db,
            clock,
            settings,
            mailer,
            broker,
            request_limit,
            address_limits,
            wakeups,
        }))
    }

    pub fn now(&self) -> i64 {
        self.0.clock.now_ms()
    }

    pub fn pool(&self) -> &sqlx::AnyPool {
        &self.0.db.pool
    }
}

/// The broker's route takes the broker alone.
impl axum::extract::FromRef<AppState> for Broker {
    fn from_ref(state: &AppState) -> Broker {
        state.broker.clone()
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_drops_path_and_case() {
        assert_eq!(
            origin_of("HTTPS://Claudemesh.com/cli-auth?x=1").as_deref(),
            Some("https://claudemesh.com")
        );
        assert_eq!(
            origin_of("http://127.0.0.1:3000").as_deref(),
            Some("http://127.0.0.1:3000")
        );
        assert_eq!(origin_of("nonsense"), None);
    }
}
