//! When to try again.

use rand::Rng;
use std::time::Duration;

/// The next regular check: the poll interval, spread by ±10 % so that many branches added at
/// once do not poll in lockstep.
pub fn jittered(interval: Duration) -> Duration {
    let ms = interval.as_millis() as f64;
    let spread = rand::rng().random_range(-0.1..=0.1);
    Duration::from_millis((ms * (1.0 + spread)).max(1.0) as u64)
}

/// Exponential backoff after `failures` consecutive failures: `base` doubling, capped at `max`,
/// with jitter.
pub fn after_failures(base: Duration, failures: i64, max: Duration) -> Duration {
    let factor = 2u32.saturating_pow(failures.clamp(0, 20) as u32 - u32::from(failures > 0));
    jittered(base.saturating_mul(factor).min(max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_and_caps() {
        let base = Duration::from_secs(30);
        let max = Duration::from_secs(600);
        let around = |d: Duration, s: u64| {
            d.as_millis().abs_diff(u128::from(s) * 1000) <= u128::from(s) * 100 + 1
        };
        assert!(around(after_failures(base, 1, max), 30));
        assert!(around(after_failures(base, 2, max), 60));
        assert!(around(after_failures(base, 3, max), 120));
        assert!(around(after_failures(base, 12, max), 600));
        assert!(around(after_failures(base, 1000, max), 600));
    }
}
