//! What this machine can do at most: its f32 FMA peak and its streaming read bandwidth,
//! measured on the current rayon pool. The benches and `--profile` divide by these to
//! report each kernel as a fraction of the machine.
//!
//! Both are short micro-benchmarks (a few hundred milliseconds together), best of 5;
//! neither is cached, so a caller measures once and keeps the numbers.

use std::time::Instant;

use rayon::prelude::*;

use crate::cpu::simd::Isa;

/// The f32 FMA peak of the current rayon pool in GFLOP/s (an FMA counts as 2 FLOPs):
/// every thread runs a register-only loop of 12 independent 8-lane FMA chains, enough to
/// hide a 4-cycle latency on 2 FMA pipes. `None` without AVX2+FMA (the scalar path has
/// no meaningful peak to compare with).
pub fn fma_peak_gflops() -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    if let Some(isa) = Isa::avx2() {
        let iters = 20_000_000;
        let threads = rayon::current_num_threads();
        let best = (0..5)
            .map(|_| {
                let t = Instant::now();
                rayon::broadcast(|_| {
                    debug_assert!(isa.is_avx2());
                    // SAFETY: `Isa::avx2` returned Some: the CPU has AVX2 and FMA.
                    std::hint::black_box(unsafe { fma_loop(iters) });
                });
                t.elapsed().as_secs_f64()
            })
            .fold(f64::MAX, f64::min);
        return Some((threads * iters * 12 * 8 * 2) as f64 / best / 1e9);
    }
    None
}

/// 12 chains × `iters` dependent 8-lane FMAs, kept in registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn fma_loop(iters: usize) -> f32 {
    use std::arch::x86_64::*;
    let x = _mm256_set1_ps(std::hint::black_box(0.999_999));
    let y = _mm256_set1_ps(std::hint::black_box(1e-7));
    let mut acc = [_mm256_set1_ps(1.0); 12];
    for _ in 0..iters {
        for a in &mut acc {
            *a = _mm256_fmadd_ps(*a, x, y);
        }
    }
    let s = acc
        .iter()
        .fold(_mm256_setzero_ps(), |s, &a| _mm256_add_ps(s, a));
    _mm256_cvtss_f32(s)
}

/// The streaming read bandwidth of the current rayon pool in GB/s (10⁹ bytes): the
/// threads sum a 512 MiB buffer, far larger than any last-level cache, in 256 KiB chunks.
pub fn read_bandwidth_gbs() -> f64 {
    let buf = vec![1f32; 128 << 20];
    let best = (0..5)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(stream_sum(std::hint::black_box(&buf)));
            t.elapsed().as_secs_f64()
        })
        .fold(f64::MAX, f64::min);
    (buf.len() * 4) as f64 / best / 1e9
}

/// Sums `buf` on the current pool: a pure streaming read, the loop that
/// [`read_bandwidth_gbs`] times (benches use it as the yardstick of a memory-bound kernel).
pub fn stream_sum(buf: &[f32]) -> f32 {
    buf.par_chunks(1 << 16)
        .map(|ch| {
            // 32 independent lanes: the compiler keeps them in 4 vector registers.
            let mut acc = [0f32; 32];
            for v in ch.chunks_exact(32) {
                for (a, x) in acc.iter_mut().zip(v) {
                    *a += x;
                }
            }
            acc.iter().sum::<f32>()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_sum_counts_every_element() {
        let buf = vec![1f32; 3 << 16];
        assert_eq!(stream_sum(&buf), (3 << 16) as f32);
    }
}
