//! The retry schedule for network failures while polling: 1.5 s, 3 s, 6 s, …
//! doubling up to 30 s (spec, error-handling table). A success resets it.

use std::time::Duration;

pub const INITIAL: Duration = Duration::from_millis(1500);
pub const MAX: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
    failures: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(INITIAL, MAX)
    }
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            next: initial.min(max),
            failures: 0,
        }
    }

    /// The wait after one more failure.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        self.failures += 1;
        delay
    }

    /// How many failures in a row since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    pub fn reset(&mut self) {
        self.next = self.initial.min(self.max);
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_one_and_a_half_seconds_up_to_thirty() {
        let mut backoff = Backoff::default();
        let secs: Vec<f64> = (0..8).map(|_| backoff.next_delay().as_secs_f64()).collect();
        assert_eq!(secs, [1.5, 3.0, 6.0, 12.0, 24.0, 30.0, 30.0, 30.0]);
        assert_eq!(backoff.failures(), 8);
    }

    #[test]
    fn a_success_starts_the_schedule_again() {
        let mut backoff = Backoff::default();
        backoff.next_delay();
        backoff.next_delay();
        backoff.reset();
        assert_eq!(backoff.failures(), 0);
        assert_eq!(backoff.next_delay(), INITIAL);
    }

    #[test]
    fn never_overflows() {
        let mut backoff = Backoff::new(Duration::MAX, Duration::MAX);
        assert_eq!(backoff.next_delay(), Duration::MAX);
        assert_eq!(backoff.next_delay(), Duration::MAX);
    }
}
