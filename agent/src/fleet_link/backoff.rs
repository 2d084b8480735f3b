//! Jittered exponential backoff: each failed attempt doubles the ceiling up to a maximum;
//! the actual delay is drawn from the upper half of it, so a fleet restart does not make
//! every agent reconnect at the same instant.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// The delays between connection attempts.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    /// Starts at `min`, never exceeds `max`.
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max: max.max(min),
            attempt: 0,
        }
    }

    /// The ceiling of the next delay, before jitter.
    pub fn ceiling(&self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(31)).unwrap_or(u32::MAX);
        self.min.saturating_mul(factor).min(self.max)
    }

    /// The next delay, with `unit` in [0, 1) choosing where in the jitter range it falls.
    pub fn next_with(&mut self, unit: f64) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        let unit = unit.clamp(0.0, 1.0);
        ceiling.mul_f64(0.5 + 0.5 * unit)
    }

    /// The next delay, with random jitter.
    pub fn next_delay(&mut self) -> Duration {
        self.next_with(random_unit())
    }

    /// After a successful connection: start again from `min`.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// After a refusal that retrying soon cannot fix (version mismatch, revoked): wait the
    /// longest from now on.
    pub fn exhaust(&mut self) {
        self.attempt = 31;
    }
}

/// A uniformly distributed number in [0, 1). Jitter needs no cryptographic quality, only
/// different values in different processes: std's per-instance random hasher keys suffice.
fn random_unit() -> f64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(0);
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_maximum_and_stay_in_the_jitter_range() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let ceilings: Vec<_> = (0..6)
            .map(|_| {
                let c = b.ceiling();
                let d = b.next_with(0.0);
                assert_eq!(d, c / 2);
                c.as_millis()
            })
            .collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(b.next_with(1.0), Duration::from_secs(1));
    }

    #[test]
    fn reset_starts_over_and_exhaust_jumps_to_the_maximum() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(30));
        b.exhaust();
        assert_eq!(b.ceiling(), Duration::from_secs(30));
        b.reset();
        assert_eq!(b.ceiling(), Duration::from_millis(100));
    }

    #[test]
    fn random_jitter_stays_in_range() {
        let mut b = Backoff::new(Duration::from_secs(2), Duration::from_secs(2));
        for _ in 0..100 {
            let d = b.next_delay();
            assert!(
                d >= Duration::from_secs(1) && d <= Duration::from_secs(2),
                "{d:?}"
            );
        }
    }
}
