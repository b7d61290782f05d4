//! The BLIS loop nest around the micro-kernel (Van Zee & van de Geijn, "BLIS: A Framework
//! for Rapidly Instantiating BLAS Functionality", 2015), arranged so that packed data
//! lives in the L2 of the core that uses it.
//!
//! ```text
//! for pc in K by KC                     sequential: fixes each C element's summation order
//!   for is in M by MS                   bounds the packed-A buffer and a task's rows
//!     pack Ã = A[is.., pc..]            shared by the tasks, in parallel over panels
//!     parallel for each group of GROUP NR-panels of columns (a task):
//!       pack B̃ = B[pc.., group]         thread-local, stays in this core's L2
//!       parallel for ic in rows by MC   A block in L2 (halves run elsewhere if stolen)
//!         for jr in group panels        B micro-panel in L1
//!           for ir in ic block by MR    micro-kernel; write-back cut at the edges,
//!                                       epilogue on the last pc
//! ```
//!
//! Block sizes for AMD Zen 3 (L1d 32 KiB, L2 512 KiB per core, L3 32 MiB shared), as in
//! BLIS's `zen3` `sgemm` configuration where they apply:
//! - `KC = 256`: a B micro-panel (`KC·NR·4` = 16 KiB) stays in L1 while the kernel sweeps
//!   A micro-panels (`KC·MR·4` = 6 KiB) past it;
//! - `MC = 144`: an A block (`MC·KC·4` = 144 KiB) stays in L2 across the jr loop;
//! - `GROUP = 8` panels: a task's packed B (`GROUP·NR·KC·4` = 128 KiB) stays in L2
//!   beside the A block across the whole ic loop. (BLIS packs one shared `KC × NC` B
//!   block into L3 instead; packing into L2 per task avoids writing the packed copy out
//!   to L3 and reading it back, which cost ~8 % at M = 256.)
//!
//! A is always packed, even when its rows are contiguous along k (forward: `inp`;
//! backward: `dout`) and the kernel could read them in place: the packed micro-panel
//! is one sequential stream with constant offsets instead of six row streams 3–12 KiB
//! apart, which measured 3–15 % faster at M ≥ 1024 on Zen 3 (equal at M = 256), for a
//! copy of A per k block that costs ~1 % of the time when A is in cache and ~5 % when
//! it comes from DRAM (4096 × 3072 × 768: 12–16 ms of ~250, one thread).
//!
//! Threads: the tasks of one round are few when N is small (N = 768 gives six), so a
//! thread that finishes its last task early would idle until the round ends; the row
//! blocks inside a task are therefore a nested parallel loop: rayon splits it into
//! halves, and another thread runs one only if it is out of work and steals it (it then
//! reads the task's packed B from the other core's cache, still cheaper than waiting);
//! otherwise the task's own thread runs them all, in order. Measured on 2 threads:
//! +3–8 % at 256×3072×768, 1024×768×768 and 4096×768×768, level on 1 thread.
//!
//! Every C element is computed in exactly one row block of one task, with the same k
//! blocking and the same micro-kernel, so the result does not depend on which thread
//! runs which piece, and the grid of tasks and row blocks depends only on the shape:
//! bitwise identical results for any pool size.

use rayon::prelude::*;

use super::epilogue::{Finish, OutPtr, Pass};
use super::microkernel::{self, MR, NR, Tile};
use super::pack::pack_block;
use super::{Element, MatRef};
use crate::cpu::simd::Isa;

/// Depth of one packed k block (see the module doc).
const KC: usize = 256;
/// Rows of an A block: `MC × KC` lives in one core's L2.
const MC: usize = 144;
/// Rows of C per task and of one packed-A buffer (`MS·KC·4` ≈ 2.3 MiB).
const MS: usize = 16 * MC;
/// NR panels of columns per task: 128 columns, 128 KiB of packed B.
const GROUP: usize = 8;

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
    let groups: Vec<_> = blocks(n.div_ceil(NR), GROUP, 1).collect();
    arena::with_shared(|a_buf| {
        for (pi, &(pc, kc)) in kblocks.iter().enumerate() {
            let pass = Pass {
                add: accumulate || pi > 0,
                finish: finish.filter(|_| pi + 1 == kblocks.len()),
            };
            for (is, ms) in blocks(m, MS, MR) {
                let a_panels = arena::grow(a_buf, ms.div_ceil(MR) * MR * kc);
                pack_block::<f32, MR>(
                    isa,
                    a_panels,
                    a.data,
                    is * a.rs + pc * a.cs,
                    ms,
                    a.rs,
                    a.cs,
                    kc,
                );
                let a_panels = &*a_panels;
                groups.par_iter().for_each(|&(q0, nq)| {
                    let (j0, j1) = (q0 * NR, ((q0 + nq) * NR).min(n));
                    arena::with_local(|b_buf| {
                        let b_panels = arena::grow(b_buf, nq * NR * kc);
                        pack_block::<T, NR>(
                            isa,
                            b_panels,
                            b.data,
                            pc * b.rs + j0 * b.cs,
                            j1 - j0,
                            b.cs,
                            b.rs,
                            kc,
                        );
                        task(
                            isa,
                            kc,
                            a_panels,
                            b_panels,
                            out,
                            (is, is + ms),
                            (j0, j1),
                            pass,
                        );
                    });
                });
            }
        }
    });
}

/// One task: C rows `i0..i1` × columns `j0..j1` from the packed micro-panels `a` (of
/// those rows; row `i`'s panel starts at `a[(i - i0)·kc]`, `i - i0` a multiple of MR)
/// and `b` (of those columns).
#[allow(clippy::too_many_arguments)]
fn task(
    isa: Isa,
    kc: usize,
    a: &[f32],
    b: &[f32],
    out: &OutPtr<'_>,
    (i0, i1): (usize, usize),
    (j0, j1): (usize, usize),
    pass: Pass<'_>,
) {
    let row_blocks: Vec<_> = blocks(i1 - i0, MC, MR).collect();
    row_blocks.par_iter().for_each(|&(ic, mc)| {
        let mut edge_c: Tile = [0.0; MR * NR];
        let (ib, ie) = (i0 + ic, i0 + ic + mc);
        // Tiles ib.. ib + full·MR have all MR rows: only the last block of the task can
        // end in a partial one.
        let full = mc / MR;
        for (b_panel, j) in b.chunks_exact(NR * kc).zip((j0..j1).step_by(NR)) {
            let w = NR.min(j1 - j);
            if w == NR && full > 0 {
                let c = out.tile_ptr((ib, j), (full * MR, NR));
                // SAFETY: tasks partition C into disjoint rectangles (`gemm` above), row
                // blocks partition a task's rows, and this column of tiles lies in this
                // block's rows ib..ie of this task's columns (`tile_ptr` checks C's
                // bounds).
                unsafe {
                    microkernel::kernel(
                        isa,
                        kc,
                        &a[(ib - i0) * kc..],
                        full,
                        b_panel,
                        c,
                        out.ldc(),
                        pass.add,
                    )
                };
            }
            // The rest one tile at a time through a local tile: partial columns, and the
            // partial last row panel.
            let first = if w == NR { ib + full * MR } else { ib };
            for i in (first..ie).step_by(MR) {
                // SAFETY: `edge_c` is a local MR × NR tile; the write-back goes to rows
                // i..ie of this task's columns, which this row block alone writes.
                unsafe {
                    microkernel::kernel(
                        isa,
                        kc,
                        &a[(i - i0) * kc..],
                        1,
                        b_panel,
                        edge_c.as_mut_ptr(),
                        NR,
                        false,
                    );
                    out.write_tile(isa, pass, (i, j), (MR.min(ie - i), w), &edge_c, NR);
                }
            }
        }
        // The epilogue of the tiles the kernel wrote in place (the edge tiles had theirs
        // in `write_tile`), once per row block while it is still in L2: rows of up to
        // GROUP·NR columns rather than one NR-wide segment per tile, so the bias, `pre`
        // copy and GELU run on long vectors.
        let full_cols = (j1 - j0) / NR * NR;
        if let Some(fin) = pass.finish.filter(|_| full > 0 && full_cols > 0) {
            // SAFETY: rows ib..ib + full·MR, columns j0..j0 + full_cols lie in this
            // row block of this task's rectangle of C, which no other piece writes.
            unsafe { out.finish_tile(isa, fin, (ib, j0), (full * MR, full_cols)) };
        }
    });
}

/// Pack buffers, reused across calls on the same thread: a call takes one out of a
/// thread-local and puts it back, so a nested use (a task that this thread picks up
/// while it waits for its own task's row blocks, or a rayon task that itself calls
/// GEMM) simply gets a fresh one instead of a borrow conflict. The
/// shared packed-A buffer (held by the calling thread) and the task-local packed-B
/// buffer (held by each worker) live in separate thread-locals, because the calling
/// thread also runs tasks.
mod arena {
    use std::cell::Cell;

    /// 16 floats = one 64-byte cache line, the allocation unit, so that every panel of B
    /// (a multiple of 16 floats long) starts on a cache line.
    #[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
    #[repr(C, align(64))]
    pub(super) struct Line([f32; 16]);

    /// The first `len` floats of `buf`, growing it if needed.
    pub(super) fn grow(buf: &mut Vec<Line>, len: usize) -> &mut [f32] {
        let lines = len.div_ceil(16);
        if buf.len() < lines {
            buf.resize(lines, Line::default());
        }
        &mut bytemuck::cast_slice_mut::<Line, f32>(&mut buf[..lines])[..len]
    }

    thread_local! {
        static SHARED: Cell<Vec<Line>> = const { Cell::new(Vec::new()) };
        static LOCAL: Cell<Vec<Line>> = const { Cell::new(Vec::new()) };
    }

    fn with(key: &'static std::thread::LocalKey<Cell<Vec<Line>>>, f: impl FnOnce(&mut Vec<Line>)) {
        let mut buf = key.take();
        f(&mut buf);
        key.set(buf);
    }

    /// Runs `f` with this thread's buffer for shared (packed-A) data.
    pub(super) fn with_shared(f: impl FnOnce(&mut Vec<Line>)) {
        with(&SHARED, f)
    }

    /// Runs `f` with this thread's buffer for a task's own (packed-B) data.
    pub(super) fn with_local(f: impl FnOnce(&mut Vec<Line>)) {
        with(&LOCAL, f)
    }
}
