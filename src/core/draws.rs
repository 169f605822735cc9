//! The random draws the core makes: the jitter of a wait (the breaker's return, a retry in
//! place, a redelivery's backoff) and the ids of ledger claims. Each engine and settlement
//! holds its own source, seeded once at init, so two in one process are independent and a
//! test fixes every draw with a seed.

use std::sync::{Mutex, MutexGuard};

#[derive(Debug)]
pub struct Draws(Mutex<fastrand::Rng>);

impl Draws {
    /// A source seeded once from fastrand's generator for this thread (itself seeded from the
    /// system's entropy): what the deployed function uses.
    pub fn new() -> Self {
        Self(Mutex::new(fastrand::Rng::new()))
    }

    /// A source whose draws a test can repeat.
    pub fn seeded(seed: u64) -> Self {
        Self(Mutex::new(fastrand::Rng::with_seed(seed)))
    }

    fn rng(&self) -> MutexGuard<'_, fastrand::Rng> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Uniform in `[0, 1)`: the share of a jitter's range.
    pub fn unit(&self) -> f64 {
        self.rng().f64()
    }

    /// A claim id: 128 random bits as 32 hex digits.
    pub fn claim_id(&self) -> String {
        let mut rng = self.rng();
        format!("{:016x}{:016x}", rng.u64(..), rng.u64(..))
    }
}

impl Default for Draws {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_repeats_its_draws_and_two_sources_do_not_share_them() {
        let a = Draws::seeded(7);
        let (first, id) = (a.unit(), a.claim_id());
        assert!((0.0..1.0).contains(&first));
        assert_eq!(id.len(), 32);
        // A second source with the same seed draws the same, however much the first drew.
        let b = Draws::seeded(7);
        let _ = (a.unit(), a.unit());
        assert_eq!((b.unit(), b.claim_id()), (first, id));
    }
}
