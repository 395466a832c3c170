//! Exponential backoff with full jitter, for retrying calls to external services.

use std::time::Duration;

use rand::Rng;

#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            attempt: 0,
        }
    }

    /// The next delay: uniformly random in `[0, min(max, base·2^attempt)]` (AWS "full jitter"),
    /// so that many retrying clients spread out instead of retrying in lockstep.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32 << self.attempt.min(20))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        ceiling.mul_f64(rand::rng().random::<f64>())
    }

    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_stay_capped() {
        let mut backoff = Backoff::new(Duration::from_millis(10), Duration::from_millis(200));
        for attempt in 0..12u32 {
            let ceiling =
                Duration::from_millis(10 * 2u64.pow(attempt)).min(Duration::from_millis(200));
            assert!(backoff.next_delay() <= ceiling);
        }
        assert_eq!(backoff.attempts(), 12);
        backoff.reset();
        assert_eq!(backoff.attempts(), 0);
    }
}
