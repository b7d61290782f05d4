//! The small SIMD layer: which instruction set a kernel runs on, chosen at run time.
//!
//! Kernels never call `is_x86_feature_detected!` themselves: the caller picks an
//! [`Isa`] once ([`Isa::best`]) and passes it down. An `Isa` value can only be made for
//! an instruction set the CPU has, which is what makes the `unsafe` calls into
//! `#[target_feature]` code below sound. A NEON backend is one more variant and one
//! more file beside `simd/avx2.rs` and `simd/scalar.rs`.

use std::sync::OnceLock;

/// An instruction set that kernels can run on. Construct with [`Isa::best`],
/// [`Isa::scalar`] or [`Isa::avx2`]; holding an `Isa::Avx2Fma` proves the CPU has
/// AVX2 and FMA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Isa(Level);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Level {
    Scalar,
    #[cfg(target_arch = "x86_64")]
    Avx2Fma,
}

impl Isa {
    /// The portable scalar path; always available.
    pub const fn scalar() -> Isa {
        Isa(Level::Scalar)
    }

    /// AVX2 + FMA, if this CPU has both.
    pub fn avx2() -> Option<Isa> {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return Some(Isa(Level::Avx2Fma));
            }
        }
        None
    }

    /// The fastest instruction set this CPU has, detected once. Setting the environment
    /// variable `GPT2_SIMD=scalar` forces the scalar path (for debugging and comparison).
    pub fn best() -> Isa {
        static BEST: OnceLock<Isa> = OnceLock::new();
        *BEST.get_or_init(|| {
            if std::env::var("GPT2_SIMD").is_ok_and(|v| v.eq_ignore_ascii_case("scalar")) {
                return Isa::scalar();
            }
            Isa::avx2().unwrap_or(Isa::scalar())
        })
    }

    /// Every instruction set available on this CPU (for tests that compare paths).
    pub fn available() -> Vec<Isa> {
        let mut v = vec![Isa::scalar()];
        v.extend(Isa::avx2());
        v
    }

    /// A short name: `"scalar"` or `"avx2+fma"`.
    pub fn name(self) -> &'static str {
        match self.0 {
            Level::Scalar => "scalar",
            #[cfg(target_arch = "x86_64")]
            Level::Avx2Fma => "avx2+fma",
        }
    }

    /// Whether this is the AVX2+FMA instruction set.
    pub fn is_avx2(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            self.0 == Level::Avx2Fma
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }
}

impl std::fmt::Display for Isa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
