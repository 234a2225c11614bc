//! Where in a period a sender starts, and whom it picks: shared by our load
//! and the NATS load so both spread their traffic the same way.

/// A uniform number in `0..n` (`n` > 0), from the operating system's
/// generator: the bench needs no seedable sequence, only spread.
pub fn random_below(n: usize) -> usize {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("random");
    usize::try_from(u64::from_le_bytes(bytes) % n as u64).unwrap_or(0)
}
