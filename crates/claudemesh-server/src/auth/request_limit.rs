//! The per-token request limit: each API token may make at most N requests
//! in any minute (`--token-requests-per-minute`, default 100; 0 turns it
//! off). Past it, 429 `rate_limited` with `Retry-After`.
//!
//! Only bearer-token requests count (a browser's cookie session is not an
//! API key), keyed by the token's id, never the token, and only once the
//! token is verified: an unknown token never gets an entry here.
//!
//! Counts live in this instance's memory: N instances behind a load balancer
//! allow a token up to N times the limit (docs/operations.md). Keeping them
//! in the database would add a write to every request, which the token check
//! was built to avoid.
//!
//! A token's minute is sixty one-second slots, so "N in a minute" holds over
//! any sixty consecutive seconds of the clock (not a fixed minute that
//! resets, nor a bucket that refills while a burst is still under way), a
//! burst of N is allowed, and `Retry-After`, in whole seconds anyway, is
//! exact: the time until enough of the oldest slots leave the window.
//! Refused requests do not count. Time is the app's clock, so tests move it
//! instead of sleeping.
//!
//! The hot path is one uncontended lock of one of 64 shards and one map
//! look-up, about 0.1 µs; bench/README.md has the verified route with the
//! limit on and off. A token idle for a minute has an empty window and is
//! forgotten at the next sweep, which runs when a shard has doubled in size
//! since the last, so memory stays within about twice the most tokens active
//! in one minute (about 300 bytes each).

use crate::clock::SECOND_MS;
use crate::http::error::AppError;
use axum::http::StatusCode;
use claudemesh_api::{ErrorBody, ErrorCode};
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

/// Seconds in a window, and slots per token.
const WINDOW_SECONDS: usize = 60;
/// Shards of the table, so concurrent requests rarely share a lock.
const SHARDS: usize = 64;
/// A shard sweeps idle tokens once it holds this many (then twice as many
/// as it kept).
const FIRST_SWEEP_AT: usize = 64;

/// The per-token request counts of this instance.
pub struct RequestLimit {
    per_minute: u32,
    shards: Box<[Shard]>,
}

/// One lock and its tokens, on a cache line of its own.
#[repr(align(64))]
struct Shard(Mutex<Windows>);

struct Windows {
    by_token: HashMap<Box<str>, Window>,
    sweep_at: usize,
}

/// One token's last minute.
struct Window {
    /// The second (since the epoch) of the newest slot.
    second: i64,
    /// The sum of `slots`.
    total: u32,
    /// Requests accepted in each of the last sixty seconds; second `s` in
    /// slot `s mod 60`.
    slots: [u32; WINDOW_SECONDS],
}

impl RequestLimit {
    /// `per_minute` 0 turns the limit off.
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            shards: (0..SHARDS)
                .map(|_| {
                    Shard(Mutex::new(Windows {
                        by_token: HashMap::new(),
                        sweep_at: FIRST_SWEEP_AT,
                    }))
                })
                .collect(),
        }
    }

    /// Counts one request with token `token_id` at `now_ms`, or refuses it
    /// with the 429 to answer.
    pub fn check(&self, token_id: &str, now_ms: i64) -> Result<(), AppError> {
        self.take(token_id, now_ms).map_err(|retry_after| {
            AppError::new(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::RateLimited,
                // The wait is in `Retry-After`; clients word it their own way.
                format!(
                    "Too many requests with this token: at most {} a minute",
                    self.per_minute
                ),
            )
            .with_retry_after(retry_after)
        })
    }

    /// Takes one request for `token_id`, or says in how many seconds one
    /// would be accepted.
    fn take(&self, token_id: &str, now_ms: i64) -> Result<(), u64> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let second = now_ms.div_euclid(SECOND_MS);
        let mut windows = self.shards[shard_of(token_id)]
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(window) = windows.by_token.get_mut(token_id) {
            return window.take(second, self.per_minute);
        }
        windows.sweep_if_due(second);
        let mut window = Window::new(second);
        let taken = window.take(second, self.per_minute);
        windows.by_token.insert(token_id.into(), window);
        taken
    }

    /// Tokens with an entry (for tests of the sweep).
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| shard.0.lock().map_or(0, |w| w.by_token.len()))
            .sum()
    }
}

/// FNV-1a of the id. Ids are random and made by the server, and only
/// verified tokens reach the table, so no caller can choose where it lands.
fn shard_of(token_id: &str) -> usize {
    let hash = token_id
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        });
    // The modulo keeps the value below SHARDS, so the cast cannot truncate.
    (hash % SHARDS as u64) as usize
}

fn slot(second: i64) -> usize {
    // rem_euclid of 60 is in 0..60.
    second.rem_euclid(WINDOW_SECONDS as i64) as usize
}

impl Windows {
    /// Forgets tokens with nothing in their window once the shard has grown
    /// to `sweep_at`; the next sweep waits until it doubles again, so the
    /// cost per request stays constant.
    fn sweep_if_due(&mut self, second: i64) {
        if self.by_token.len() < self.sweep_at {
            return;
        }
        self.by_token
            .retain(|_, window| second - window.second < WINDOW_SECONDS as i64);
        self.sweep_at = (self.by_token.len() * 2).max(FIRST_SWEEP_AT);
    }
}

impl Window {
    fn new(second: i64) -> Self {
        Self {
            second,
            total: 0,
            slots: [0; WINDOW_SECONDS],
        }
    }

    fn take(&mut self, second: i64, limit: u32) -> Result<(), u64> {
        self.advance(second);
        if self.total < limit {
            self.slots[slot(self.second)] += 1;
            self.total += 1;
            Ok(())
        } else {
            Err(self.seconds_until_room(limit))
        }
    }

    /// Moves the window to end at `second`, emptying the slots it leaves
    /// behind. A clock that steps back counts in the newest slot.
    fn advance(&mut self, second: i64) {
        let gap = second - self.second;
        if gap <= 0 {
            return;
        }
        if gap >= WINDOW_SECONDS as i64 {
            self.slots = [0; WINDOW_SECONDS];
            self.total = 0;
        } else {
            for passed in self.second + 1..=second {
                let slot = &mut self.slots[slot(passed)];
                self.total -= *slot;
                *slot = 0;
            }
        }
        self.second = second;
    }

    /// Whole seconds until the window holds fewer than `limit`: after `d`
    /// seconds, the `d` oldest slots have left it. The wait from now to that
    /// second's start is at most `d` seconds.
    fn seconds_until_room(&self, limit: u32) -> u64 {
        let mut total = self.total;
        for d in 1..=WINDOW_SECONDS as i64 {
            total -= self.slots[slot(self.second - WINDOW_SECONDS as i64 + d)];
            if total < limit {
                return d.unsigned_abs();
            }
        }
        WINDOW_SECONDS as u64
    }
}

/// The OpenAPI answer of every route that takes a bearer token, when the
/// token is over its limit.
#[derive(utoipa::IntoResponses)]
#[response(
    status = 429,
    description = "`rate_limited`: too many requests with this token (per token and server instance; 100 a minute by default)",
    headers(("Retry-After" = u64, description = "Seconds until a request with this token is accepted again"))
)]
pub struct RateLimited(pub ErrorBody);

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_800_000_000_000;

    #[test]
    fn a_burst_of_the_limit_then_a_refusal_until_the_minute_has_passed() {
        let limit = RequestLimit::new(100);
        for _ in 0..100 {
            assert_eq!(limit.take("tok_a", T0), Ok(()));
        }
        assert_eq!(limit.take("tok_a", T0), Err(60));
        assert_eq!(limit.take("tok_a", T0 + 59_999), Err(1));
        assert_eq!(limit.take("tok_b", T0), Ok(()), "another token");
        assert_eq!(limit.take("tok_a", T0 + 60_000), Ok(()));
    }

    #[test]
    fn the_limit_holds_over_any_sixty_seconds_not_a_fixed_minute() {
        let limit = RequestLimit::new(10);
        // 5 at 0 s, 5 at 30 s: full until 60 s, when the first 5 leave.
        for at in [0, 30_000] {
            for _ in 0..5 {
                assert_eq!(limit.take("t", T0 + at), Ok(()));
            }
        }
        assert_eq!(limit.take("t", T0 + 45_000), Err(15));
        assert_eq!(limit.take("t", T0 + 59_500), Err(1));
        for _ in 0..5 {
            assert_eq!(limit.take("t", T0 + 60_000), Ok(()));
        }
        assert_eq!(limit.take("t", T0 + 60_000), Err(30));
    }

    #[test]
    fn refused_requests_do_not_count() {
        let limit = RequestLimit::new(1);
        assert_eq!(limit.take("t", T0), Ok(()));
        for _ in 0..1000 {
            assert!(limit.take("t", T0 + 30_000).is_err());
        }
        assert_eq!(limit.take("t", T0 + 60_000), Ok(()));
    }

    #[test]
    fn zero_is_no_limit() {
        let limit = RequestLimit::new(0);
        for _ in 0..10_000 {
            assert_eq!(limit.take("t", T0), Ok(()));
        }
        assert_eq!(limit.tracked(), 0);
    }

    #[test]
    fn a_clock_that_steps_back_counts_in_the_newest_second() {
        let limit = RequestLimit::new(2);
        assert_eq!(limit.take("t", T0), Ok(()));
        assert_eq!(limit.take("t", T0 - 120_000), Ok(()));
        assert_eq!(limit.take("t", T0 - 120_000), Err(60));
        assert_eq!(limit.take("t", T0 + 60_000), Ok(()));
    }

    #[test]
    fn idle_tokens_are_forgotten() {
        let limit = RequestLimit::new(100);
        for n in 0..10_000 {
            assert_eq!(limit.take(&format!("tok_{n}"), T0), Ok(()));
        }
        assert_eq!(limit.tracked(), 10_000);
        // A minute later a new wave of tokens sweeps the old ones out.
        for n in 0..10_000 {
            assert_eq!(limit.take(&format!("new_{n}"), T0 + 60_000), Ok(()));
        }
        assert!(limit.tracked() < 15_000, "{}", limit.tracked());
        // Active tokens are kept, with their counts.
        let busy = RequestLimit::new(1);
        assert_eq!(busy.take("busy", T0), Ok(()));
        for n in 0..10_000 {
            assert_eq!(busy.take(&format!("tok_{n}"), T0 + 1_000), Ok(()));
        }
        assert!(busy.take("busy", T0 + 2_000).is_err());
    }

    #[test]
    fn the_refusal_is_a_429_rate_limited_with_retry_after() {
        let limit = RequestLimit::new(1);
        assert!(limit.check("t", T0).is_ok());
        let err = limit.check("t", T0 + 500).unwrap_err();
        assert_eq!(err.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(err.code, ErrorCode::RateLimited);
        assert_eq!(err.retry_after, Some(60));
        assert!(
            err.message.contains("at most 1 a minute"),
            "{}",
            err.message
        );
    }
}
