//! How long a session waits before connecting again after a drop (and the
//! broker before it reads again what it could not read):
//! exponential backoff with full jitter.
//!
//! When an instance of the server dies, every session it held drops at the
//! same instant. Waits without jitter (0.5 s, 1 s, 2 s… after the drop) would
//! bring them all back at the same instants, a herd the surviving instances
//! take at once, again at each step. With full jitter each wait is drawn
//! uniformly from zero up to a ceiling, and the ceiling doubles from the
//! first wait to the longest after each failed try (AWS Architecture Blog,
//! "Exponential Backoff And Jitter", 2015): the reconnects spread evenly over
//! the window, and on average a session is back in half the ceiling.
//! Equal jitter (half the ceiling plus a random half) keeps a floor under
//! every wait, which only delays the sessions the other instances could
//! take at once.

use std::time::Duration;

/// The waits of one session between its tries to connect.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    ceiling: Duration,
}

impl Backoff {
    /// How a broker session reconnects: waits of at most 0.5 s at first,
    /// the ceiling doubling up to 30 s (the MCP link; the killed-instances
    /// load reproduces it).
    pub fn reconnecting() -> Self {
        Self::new(Duration::from_millis(500), Duration::from_secs(30))
    }

    /// Waits of at most `first` at first, the ceiling doubling up to `max`.
    pub fn new(first: Duration, max: Duration) -> Self {
        Self {
            first,
            max: max.max(first),
            ceiling: first,
        }
    }

    /// The wait before the next try: uniform in `[0, ceiling)`; the ceiling
    /// then doubles (up to the longest).
    pub fn next_wait(&mut self) -> Duration {
        let wait = full_jitter(self.ceiling, random_u64());
        self.ceiling = self.ceiling.saturating_mul(2).min(self.max);
        wait
    }

    /// After a connection that worked: the next drop starts from the first
    /// ceiling again.
    pub fn reset(&mut self) {
        self.ceiling = self.first;
    }

    /// The most the next wait can be.
    pub fn ceiling(&self) -> Duration {
        self.ceiling
    }
}

/// `random / 2^64` of `ceiling`: uniform in `[0, ceiling)` for a uniform
/// `random`, in integers (no rounding past the ceiling). Ceilings beyond
/// 2^64 ns (584 years) count as that, so the product fits in 128 bits.
fn full_jitter(ceiling: Duration, random: u64) -> Duration {
    let ceiling = u128::from(u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX));
    let nanos = (ceiling * u128::from(random)) >> 64;
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// A uniform 64-bit number from the operating system; if its source fails
/// (it does not in practice), the whole ceiling: the backoff without
/// jitter, never no wait at all.
fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    match getrandom::fill(&mut bytes) {
        Ok(()) => u64::from_le_bytes(bytes),
        Err(_) => u64::MAX,
    }
}

#[cfg(test)]
mod tests {
    use super::{Backoff, full_jitter};
    use std::time::Duration;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn a_wait_is_the_drawn_share_of_the_ceiling() {
        assert_eq!(full_jitter(SECOND, 0), Duration::ZERO);
        assert_eq!(full_jitter(SECOND, 1 << 63), SECOND / 2);
        let most = full_jitter(SECOND, u64::MAX);
        assert!(most < SECOND && most > SECOND - Duration::from_nanos(2));
        // The longest ceilings do not overflow.
        assert!(full_jitter(Duration::MAX, u64::MAX) <= Duration::MAX);
    }

    #[test]
    fn the_ceiling_doubles_up_to_the_longest_and_resets() {
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        let mut ceilings = Vec::new();
        for _ in 0..9 {
            let ceiling = backoff.ceiling();
            assert!(backoff.next_wait() < ceiling);
            ceilings.push(ceiling.as_millis());
        }
        assert_eq!(
            ceilings,
            [
                500, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000
            ]
        );
        backoff.reset();
        assert_eq!(backoff.ceiling(), Duration::from_millis(500));
    }

    #[test]
    fn waits_spread_over_the_whole_window() {
        // A thousand sessions dropped at once: their first waits fall in
        // every tenth of the window, not on one instant. (Each tenth is
        // missed by chance with probability 0.9^1000, about 1e-46.)
        let waits: Vec<Duration> = (0..1_000)
            .map(|_| Backoff::new(SECOND, SECOND).next_wait())
            .collect();
        let mut tenths = [0usize; 10];
        for wait in &waits {
            assert!(*wait < SECOND);
            tenths[usize::try_from(wait.as_millis() / 100).unwrap()] += 1;
        }
        assert!(tenths.iter().all(|&n| n > 0), "{tenths:?}");
    }
}
