//! Counter-based random numbers, shared by the CPU kernels and (later) the CUDA ones.
//!
//! Every random number is a pure function of `(seed, counter)`: [`hash`] is output number
//! `counter` of a SplitMix64 stream whose state starts at `mix64(seed)`. No state is
//! carried between elements, so a kernel can compute element `i`'s number on any thread,
//! in any order, on the CPU or on a GPU, and get the same bits. Only 64-bit integer
//! adds, multiplies, shifts and xors are used, which map one-to-one onto PTX.
//!
//! [`Rng`] is the sequential convenience for callers (sampling, initialisation): it is
//! the same stream, walked with an incrementing counter.

/// The golden-ratio increment of SplitMix64 (Steele, Lea & Flood, 2014).
const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output function (Stafford's "mix 13"): a bijection on `u64` with full
/// avalanche.
#[inline]
pub const fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Random number `counter` of the stream `seed`: 64 uniformly distributed bits.
///
/// For a fixed seed, `counter ↦ hash(seed, counter)` is a bijection, so a stream never
/// repeats within 2^64 draws.
#[inline]
pub const fn hash(seed: u64, counter: u64) -> u64 {
    mix64(mix64(seed).wrapping_add(counter.wrapping_add(1).wrapping_mul(GOLDEN_GAMMA)))
}

/// Converts 64 random bits to an `f32` uniform in `[0, 1)` with 24-bit resolution (every
/// value is a multiple of 2^-24, exactly representable).
#[inline]
pub const fn bits_to_unit_f32(bits: u64) -> f32 {
    (bits >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
}

/// A uniform `f32` in `[0, 1)` (24-bit resolution) for element `counter` of stream `seed`.
#[inline]
pub const fn uniform(seed: u64, counter: u64) -> f32 {
    bits_to_unit_f32(hash(seed, counter))
}

/// A small sequential random number generator over the same stream as [`hash`]:
/// draw `k` of `Rng::new(seed)` is `hash(seed, k)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rng {
    seed: u64,
    counter: u64,
}

impl Rng {
    /// A generator at the start of stream `seed`.
    pub const fn new(seed: u64) -> Rng {
        Rng { seed, counter: 0 }
    }

    /// 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let bits = hash(self.seed, self.counter);
        self.counter = self.counter.wrapping_add(1);
        bits
    }

    /// A uniform `f32` in `[0, 1)` with 24-bit resolution.
    pub fn next_f32(&mut self) -> f32 {
        bits_to_unit_f32(self.next_u64())
    }

    /// A uniform `f64` in `[0, 1)` with 53-bit resolution.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A standard normal sample (mean 0, variance 1), by the Box–Muller transform.
    /// Uses two draws per sample (the second Box–Muller value is discarded so that the
    /// generator carries no state beyond its counter).
    pub fn next_normal(&mut self) -> f64 {
        // 1 - u lies in (0, 1], so the logarithm is finite.
        let u1 = 1.0 - self.next_f64();
        let u2 = self.next_f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference values of SplitMix64 with state 0 (from the public-domain C code by
    /// Vigna): `next()` adds the gamma, then mixes.
    #[test]
    fn mix64_matches_splitmix64() {
        let mut state = 0u64;
        let mut next = || {
            state = state.wrapping_add(GOLDEN_GAMMA);
            mix64(state)
        };
        assert_eq!(next(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(next(), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(next(), 0x06C4_5D18_8009_454F);
    }

    #[test]
    fn rng_walks_the_hash_stream() {
        let mut rng = Rng::new(42);
        for k in 0..100 {
            assert_eq!(rng.next_u64(), hash(42, k));
        }
    }

    #[test]
    fn uniform_is_in_range_and_well_spread() {
        // 100k draws: mean within 5 standard errors of 1/2, every decile populated
        // within 5% of its expected count, values in [0, 1).
        let n = 100_000u64;
        let mut deciles = [0u32; 10];
        let mut sum = 0.0f64;
        for k in 0..n {
            let u = uniform(7, k);
            assert!((0.0..1.0).contains(&u), "u = {u}");
            sum += f64::from(u);
            deciles[(u * 10.0) as usize] += 1;
        }
        let mean = sum / n as f64;
        let se = (1.0 / 12.0 / n as f64).sqrt();
        assert!((mean - 0.5).abs() < 5.0 * se, "mean {mean}");
        for (d, &count) in deciles.iter().enumerate() {
            let expected = n as f64 / 10.0;
            assert!(
                (f64::from(count) - expected).abs() < 0.05 * expected,
                "decile {d}: {count}"
            );
        }
    }

    #[test]
    fn streams_differ_between_seeds_and_counters() {
        assert_ne!(hash(0, 0), hash(1, 0));
        assert_ne!(hash(0, 0), hash(0, 1));
        assert_ne!(hash(1, 0), hash(0, 1));
    }

    #[test]
    fn normal_has_unit_moments() {
        let mut rng = Rng::new(3);
        let n = 50_000;
        let xs: Vec<f64> = (0..n).map(|_| rng.next_normal()).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.03, "mean {mean}");
        assert!((var - 1.0).abs() < 0.03, "var {var}");
    }
}
