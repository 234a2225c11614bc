//! Time, injectable: the server asks a [`Clock`] for "now", so tests can move
//! time forward (code expiry, poll intervals) without sleeping.
//!
//! Times are milliseconds since the Unix epoch everywhere inside the server
//! and in the database (an integer column reads the same on both engines).

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> i64;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
    }
}

/// A clock for tests: either frozen (moves only when told) or running (real
/// time), and in both cases it can be pushed forward to reach an expiry.
pub struct ManualClock {
    /// When frozen, the instant it is frozen at; 0 while running.
    frozen_at: AtomicI64,
    offset: AtomicI64,
}

impl ManualClock {
    /// A clock stopped at the real current time.
    pub fn new() -> Self {
        Self {
            frozen_at: AtomicI64::new(SystemClock.now_ms()),
            offset: AtomicI64::new(0),
        }
    }

    /// A clock that follows real time (for tests where a real client
    /// waits between requests).
    pub fn running() -> Self {
        Self {
            frozen_at: AtomicI64::new(0),
            offset: AtomicI64::new(0),
        }
    }

    pub fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.offset.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        let base = match self.frozen_at.load(Ordering::SeqCst) {
            0 => SystemClock.now_ms(),
            frozen => frozen,
        };
        base + self.offset.load(Ordering::SeqCst)
    }
}

pub const SECOND_MS: i64 = 1_000;
pub const MINUTE_MS: i64 = 60 * SECOND_MS;
pub const DAY_MS: i64 = 24 * 60 * MINUTE_MS;

/// Formats epoch milliseconds as RFC 3339 UTC, for the wire.
pub fn rfc3339(ms: i64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| {
            t.replace_nanosecond(0)
                .ok()?
                .format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_seconds() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_000_000_999), "2026-11-18T11:06:40Z");
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new();
        let start = clock.now_ms();
        clock.advance(Duration::from_secs(2));
        assert_eq!(clock.now_ms(), start + 2_000);
    }
}
