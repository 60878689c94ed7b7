//! Full-jitter exponential backoff: the delay before attempt `n` is uniform in
//! `[0, min(cap, initial * 2^n)]`. The randomness is injected, so tests are deterministic.

/// A source of uniform numbers in `[0, 1)`. The browser shell passes `Math.random`.
pub trait Random {
    fn next_unit(&mut self) -> f64;
}

impl<F: FnMut() -> f64> Random for F {
    fn next_unit(&mut self) -> f64 {
        self()
    }
}

/// Backoff settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The ceiling of the first retry's delay.
    pub initial_ms: u64,
    /// The ceiling no delay exceeds.
    pub max_ms: u64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { initial_ms: 500, max_ms: 30_000 }
    }
}

impl Backoff {
    /// The ceiling for retry number `attempt` (0 for the first retry).
    pub fn ceiling(&self, attempt: u32) -> u64 {
        // Doubled until the cap (a `saturating_mul` is a 128-bit product in wasm: more code).
        let mut c = self.initial_ms;
        for _ in 0..attempt.min(63) {
            if c >= self.max_ms {
                break;
            }
            c = c.saturating_add(c);
        }
        c.min(self.max_ms)
    }

    /// A delay in `[0, ceiling(attempt)]`.
    pub fn delay(&self, attempt: u32, rng: &mut dyn Random) -> u64 {
        let ceiling = self.ceiling(attempt);
        let unit = rng.next_unit();
        // Clamp: a bad random source must not push the delay outside [0, ceiling].
        let unit = if unit.is_finite() { unit.clamp(0.0, 1.0) } else { 0.0 };
        let delay = (ceiling as f64 * unit) as u64;
        delay.min(ceiling)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceilings_double_up_to_the_cap() {
        let b = Backoff { initial_ms: 500, max_ms: 30_000 };
        let c: Vec<u64> = (0..8).map(|n| b.ceiling(n)).collect();
        assert_eq!(c, [500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000]);
        assert_eq!(b.ceiling(200), 30_000);
    }

    #[test]
    fn delays_stay_within_bounds_even_with_a_bad_rng() {
        let b = Backoff::default();
        for r in [0.0, 0.5, 0.999_999, 1.0, 7.0, -1.0, f64::NAN, f64::INFINITY] {
            let mut rng = move || r;
            for n in 0..70 {
                let d = b.delay(n, &mut rng);
                assert!(d <= b.ceiling(n), "r={r} n={n} d={d}");
            }
        }
    }
}
