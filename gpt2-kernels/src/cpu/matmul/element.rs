//! The element types a GEMM operand may hold: f32, or bf16 widened to f32 on the fly.

use half::bf16;

/// An element type of a [`MatRef`](super::MatRef): `f32` or `half::bf16` (sealed).
/// Arithmetic is always f32; bf16 only halves the bytes a weight takes in memory.
pub trait Element: sealed::Sealed + Copy + Send + Sync + 'static {
    /// The value as f32 (exact for both types).
    fn to_f32(self) -> f32;
}

impl Element for f32 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
}

impl Element for bf16 {
    /// bf16 is the top half of an f32: a shift, exact, NaN stays NaN. (Not `half`'s
    /// `to_f32`, whose NaN branch stops the loops around it from vectorising.)
    #[inline(always)]
    fn to_f32(self) -> f32 {
        f32::from_bits(u32::from(self.to_bits()) << 16)
    }
}

mod sealed {
    /// Keeps [`super::Element`] to the two types the kernels know how to load.
    pub trait Sealed {
        /// Whether the type is bf16 (selects the vector load in [`super::load8`]).
        const IS_BF16: bool;
    }
    impl Sealed for f32 {
        const IS_BF16: bool = false;
    }
    impl Sealed for half::bf16 {
        const IS_BF16: bool = true;
    }
}

/// Loads 8 consecutive elements at `p` as 8 f32 lanes.
///
/// # Safety
/// `p..p+8` must be readable; the CPU must have AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
pub(super) unsafe fn load8<T: Element>(p: *const T) -> std::arch::x86_64::__m256 {
    use std::arch::x86_64::*;
    // SAFETY: the caller guarantees 8 readable elements; `Element` is sealed to f32 and
    // bf16 (16 bytes for 8 of them, read as one unaligned 128-bit load).
    unsafe {
        if T::IS_BF16 {
            let h = _mm_loadu_si128(p.cast::<__m128i>());
            _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(h)))
        } else {
            _mm256_loadu_ps(p.cast::<f32>())
        }
    }
}
