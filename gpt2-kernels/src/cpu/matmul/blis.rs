//! The BLIS loop nest around the micro-kernel (Van Zee & van de Geijn, "BLIS: A Framework
//! for Rapidly Instantiating BLAS Functionality", 2015).
//!
//! ```text
//! for jc in N by NC            B block  KC × NC  packed once, shared   (L3)
//!   for pc in K by KC          sequential: fixes each C element's summation order
//!     pack B̃ = B[pc.., jc..]                     (parallel over groups of NR panels)
//!     for is in M by MS        bounds the packed-A buffer
//!       pack Ã = A[is.., pc..]                   (parallel over groups of MR panels)
//!       parallel for (ic block ≤ MC rows) × (≤ JR_GROUP panels of NR columns):
//!         for jr: for ir:      micro-kernel  MR × NR += Ã panel · B̃ panel
//!                              write-back (edges cut here), epilogue on the last pc
//! ```
//!
//! Block sizes for AMD Zen 3 (L1d 32 KiB, L2 512 KiB per core, L3 32 MiB shared), the
//! same as BLIS's `zen3` `sgemm` configuration:
//! - `KC = 256`: a B micro-panel (`KC·NR·4` = 16 KiB) stays in L1 while the kernel sweeps
//!   A micro-panels (`KC·MR·4` = 6 KiB) past it;
//! - `MC = 144`: an A block (`MC·KC·4` = 144 KiB) stays in L2 across the jr loop;
//! - `NC = 4080`: a B block (`KC·NC·4` ≈ 4 MiB) stays in L3 across the ic loop.
//!
//! Threads: every C element is computed by exactly one task with the same k blocking
//! and the same micro-kernel, so the result does not depend on which thread runs which
//! task, and the task grid itself depends only on the shape: bitwise identical results
//! for any pool size.

use rayon::prelude::*;

use super::epilogue::{Finish, OutPtr, Pass};
use super::microkernel::{self, MR, NR, Tile};
use super::pack::pack_block;
use super::{Element, MatRef};
use crate::cpu::simd::Isa;

/// Depth of one packed k block (see the module doc).
const KC: usize = 256;
/// Rows of C per task: an A block of `MC × KC` lives in one core's L2.
const MC: usize = 144;
/// Columns of one packed B block.
const NC: usize = 4080;
/// Rows of A packed at once (bounds the A buffer at `MS·KC·4` ≈ 2.3 MiB).
const MS: usize = 16 * MC;
/// Columns of C per task, in NR panels (512 columns): enough tasks for load balance
/// at GPT-2's smallest shapes, few enough that scheduling costs nothing.
const JR_GROUP: usize = 32;

/// Splits `len` into `ceil(len / max)` near-equal blocks whose sizes are multiples of
/// `align` (except the last), as `(start, size)`. Balanced blocks avoid a thin last
/// block, e.g. M = 256 becomes 132 + 124 rows, not 144 + 112.
pub(super) fn blocks(len: usize, max: usize, align: usize) -> impl Iterator<Item = (usize, usize)> {
    let count = len.div_ceil(max).max(1);
    let size = len.div_ceil(count).div_ceil(align) * align;
    (0..len)
        .step_by(size.max(1))
        .map(move |s| (s, size.min(len - s)))
}

/// `C (m, n) = [C +] A (m, k) · B (k, n)` with the pass epilogue, `k ≥ 1`. Operand
/// extents and C's bounds were checked by the caller.
#[allow(clippy::too_many_arguments)]
pub(super) fn gemm<T: Element>(
    isa: Isa,
    (m, n, k): (usize, usize, usize),
    a: MatRef<'_, f32>,
    b: MatRef<'_, T>,
    out: &OutPtr<'_>,
    accumulate: bool,
    finish: Option<Finish<'_>>,
) {
    let kblocks: Vec<_> = blocks(k, KC, 1).collect();
    arena::with(|arena| {
        for (jc, nc) in blocks(n, NC, NR) {
            for (pi, &(pc, kc)) in kblocks.iter().enumerate() {
                let pass = Pass {
                    add: accumulate || pi > 0,
                    finish: finish.filter(|_| pi + 1 == kblocks.len()),
                };
                let a_len = m.min(MS).div_ceil(MR) * MR * kc;
                let (a_buf, b_panels) = arena.buffers(a_len, nc.div_ceil(NR) * NR * kc);
                let origin = pc * b.rs + jc * b.cs;
                pack_block::<T, NR>(isa, b_panels, b.data, origin, nc, b.cs, b.rs, kc);
                let b_panels = &*b_panels;
                for (is, ms) in blocks(m, MS, MR) {
                    let a_panels = &mut a_buf[..ms.div_ceil(MR) * MR * kc];
                    let origin = is * a.rs + pc * a.cs;
                    pack_block::<f32, MR>(isa, a_panels, a.data, origin, ms, a.rs, a.cs, kc);
                    let a_panels = &*a_panels;
                    let row_blocks: Vec<_> = blocks(ms, MC, MR).collect();
                    let col_groups: Vec<_> = blocks(nc.div_ceil(NR), JR_GROUP, 1).collect();
                    let tasks = row_blocks.len() * col_groups.len();
                    (0..tasks).into_par_iter().for_each(|t| {
                        let (ir, mc) = row_blocks[t / col_groups.len()];
                        let (jq, nq) = col_groups[t % col_groups.len()];
                        let a = &a_panels[ir * kc..][..mc.div_ceil(MR) * MR * kc];
                        let b = &b_panels[jq * NR * kc..][..nq * NR * kc];
                        let (i0, j0) = (is + ir, jc + jq * NR);
                        let (i1, j1) = ((i0 + mc).min(m), (j0 + nq * NR).min(n));
                        macro_kernel(isa, kc, a, b, out, (i0, i1), (j0, j1), pass);
                    });
                }
            }
        }
    });
}

/// One task: C rows `i0..i1` × columns `j0..j1` from packed panels `a` (covering those
/// rows) and `b` (covering those columns). B's micro-panel stays in L1 across the ir
/// loop, A's block in L2 across the jr loop.
#[allow(clippy::too_many_arguments)]
fn macro_kernel(
    isa: Isa,
    kc: usize,
    a: &[f32],
    b: &[f32],
    out: &OutPtr<'_>,
    (i0, i1): (usize, usize),
    (j0, j1): (usize, usize),
    pass: Pass<'_>,
) {
    let mut edge: Tile = [0.0; MR * NR];
    for (b_panel, j) in b.chunks_exact(NR * kc).zip((j0..j1).step_by(NR)) {
        for (a_panel, i) in a.chunks_exact(MR * kc).zip((i0..i1).step_by(MR)) {
            let size = (MR.min(i1 - i), NR.min(j1 - j));
            // SAFETY (all three blocks): tasks partition C into disjoint rectangles
            // (`gemm` above) and this tile lies inside this task's rectangle; `tile_ptr`
            // checks that a full tile fits in C; `edge` is a local MR × NR tile.
            if size == (MR, NR) {
                let c = out.tile_ptr((i, j), size);
                unsafe { microkernel::kernel(isa, kc, a_panel, b_panel, c, out.ldc(), pass.add) };
                if let Some(fin) = pass.finish {
                    unsafe { out.finish_tile(isa, fin, (i, j), size) };
                }
            } else {
                unsafe {
                    microkernel::kernel(isa, kc, a_panel, b_panel, edge.as_mut_ptr(), NR, false)
                };
                unsafe { out.write_tile(isa, pass, (i, j), size, &edge, NR) };
            }
        }
    }
}

/// Pack buffers, reused across calls on the same thread: a call takes them out of a
/// thread-local and puts them back, so a nested call (a rayon task that itself calls
/// GEMM while this thread waits) simply gets fresh ones instead of a borrow conflict.
mod arena {
    use std::cell::Cell;

    /// 16 floats = one 64-byte cache line, the allocation unit, so that every panel of B
    /// (a multiple of 16 floats long) starts on a cache line.
    #[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
    #[repr(C, align(64))]
    struct Line([f32; 16]);

    /// The packed A and B buffers of one GEMM call.
    #[derive(Default)]
    pub(super) struct Arena {
        a: Vec<Line>,
        b: Vec<Line>,
    }

    fn grow(buf: &mut Vec<Line>, len: usize) -> &mut [f32] {
        let lines = len.div_ceil(16);
        if buf.len() < lines {
            buf.resize(lines, Line::default());
        }
        &mut bytemuck::cast_slice_mut::<Line, f32>(&mut buf[..lines])[..len]
    }

    impl Arena {
        /// The packed-A and packed-B buffers, `a_len` and `b_len` floats.
        pub(super) fn buffers(&mut self, a_len: usize, b_len: usize) -> (&mut [f32], &mut [f32]) {
            (grow(&mut self.a, a_len), grow(&mut self.b, b_len))
        }
    }

    thread_local! {
        static ARENA: Cell<Arena> = Cell::default();
    }

    /// Runs `f` with this thread's arena.
    pub(super) fn with<R>(f: impl FnOnce(&mut Arena) -> R) -> R {
        let mut arena = ARENA.take();
        let r = f(&mut arena);
        ARENA.set(arena);
        r
    }
}
