//! The per-member send rate: a token bucket per member, in this instance's
//! memory. N instances allow a member up to N times the rate, since each
//! counts only what passes through it (documented in docs/operations.md).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct SendRate {
    burst: f64,
    per_second: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl SendRate {
    /// `per_minute` 0 turns the limit off.
    pub fn new(burst: u32, per_minute: u32) -> Self {
        Self {
            burst: f64::from(burst.max(1)),
            per_second: f64::from(per_minute) / 60.0,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one send for `member_id`, or says how long until one is free.
    pub fn take(&self, member_id: &str) -> Result<(), Duration> {
        self.take_at(member_id, Instant::now())
    }

    fn take_at(&self, member_id: &str, now: Instant) -> Result<(), Duration> {
        if self.per_second == 0.0 {
            return Ok(());
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() > 100_000 {
            // Forget full buckets (idle members) rather than grow forever.
            let (burst, rate) = (self.burst, self.per_second);
            buckets.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate < burst);
        }
        let bucket = buckets.entry(member_id.to_owned()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let refill = now.duration_since(bucket.at).as_secs_f64() * self.per_second;
        bucket.tokens = (bucket.tokens + refill).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - bucket.tokens) / self.per_second,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_sustained_rate() {
        let rate = SendRate::new(10, 60);
        let start = Instant::now();
        for _ in 0..10 {
            assert!(rate.take_at("m", start).is_ok());
        }
        let wait = rate.take_at("m", start).unwrap_err();
        assert!(wait <= Duration::from_secs(1) && wait > Duration::from_millis(900));
        assert!(rate.take_at("other", start).is_ok());
        assert!(rate.take_at("m", start + Duration::from_secs(1)).is_ok());
        assert!(rate.take_at("m", start + Duration::from_secs(1)).is_err());
    }

    #[test]
    fn zero_per_minute_is_no_limit() {
        let rate = SendRate::new(1, 0);
        for _ in 0..1000 {
            assert!(rate.take("m").is_ok());
        }
    }
}
