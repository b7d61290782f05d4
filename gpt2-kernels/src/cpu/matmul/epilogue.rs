//! What happens to a finished tile on its way into C: accumulate, add the bias, keep the
//! pre-activation, apply GELU (the SIMD layer's, as `cpu::gelu`). Shared by the BLIS
//! driver and the matrix–vector path.

use std::marker::PhantomData;

use crate::cpu::simd::Isa;

/// How one k block's product is combined with C, and the optional final touches.
#[derive(Clone, Copy)]
pub(super) struct Pass<'a> {
    /// `C += AB` (C holds an earlier k block, or the caller asked to accumulate);
    /// otherwise `C = AB`.
    pub add: bool,
    /// The last k block: apply bias / pre / GELU after the sum. `None` otherwise.
    pub finish: Option<Finish<'a>>,
}

/// The epilogue applied once the full K sum is in C.
#[derive(Clone, Copy)]
pub(super) struct Finish<'a> {
    /// Bias over all N columns, indexed by the absolute column.
    pub bias: Option<&'a [f32]>,
    /// Apply GELU after the bias.
    pub gelu: bool,
}

/// C (`m × n`, row stride `ldc`) and the optional pre-activation buffer of the same
/// layout, as raw pointers: tasks on different threads each write their own
/// rectangle of C, which `&mut [f32]` cannot express without splitting by rows only.
pub(super) struct OutPtr<'a> {
    c: *mut f32,
    pre: Option<*mut f32>,
    ldc: usize,
    m: usize,
    n: usize,
    _borrow: PhantomData<&'a mut [f32]>,
}

// SAFETY: an `OutPtr` is a `&mut [f32]` (two of them) whose disjoint parts are handed
// out by `write_tile`, whose contract makes every caller own its rectangle exclusively.
unsafe impl Send for OutPtr<'_> {}
// SAFETY: as above: shared use only ever writes disjoint rectangles.
unsafe impl Sync for OutPtr<'_> {}

impl<'a> OutPtr<'a> {
    /// Wraps C and `pre`, which the caller has checked to hold `m × n` with row stride
    /// `ldc ≥ n` (`(m−1)·ldc + n` elements at least).
    pub(super) fn new(
        c: &'a mut [f32],
        pre: Option<&'a mut [f32]>,
        ldc: usize,
        m: usize,
        n: usize,
    ) -> Self {
        let need = if m == 0 || n == 0 {
            0
        } else {
            (m - 1) * ldc + n
        };
        assert!(
            c.len() >= need && pre.as_ref().is_none_or(|p| p.len() >= need) && (m <= 1 || ldc >= n)
        );
        OutPtr {
            c: c.as_mut_ptr(),
            pre: pre.map(|p| p.as_mut_ptr()),
            ldc,
            m,
            n,
            _borrow: PhantomData,
        }
    }

    /// Row stride of C.
    pub(super) fn ldc(&self) -> usize {
        self.ldc
    }

    /// Pointer to element `(i, j)` of C, where an `h × w` tile must fit.
    pub(super) fn tile_ptr(&self, (i, j): (usize, usize), (h, w): (usize, usize)) -> *mut f32 {
        assert!(i + h <= self.m && j + w <= self.n);
        self.c.wrapping_add(i * self.ldc + j)
    }

    /// Applies the epilogue in place to the `h × w` tile of C at `(i, j)`, which already
    /// holds the full sum.
    ///
    /// # Safety
    /// As [`Self::write_tile`]: the rectangle is exclusively the caller's.
    pub(super) unsafe fn finish_tile(
        &self,
        isa: Isa,
        fin: Finish<'_>,
        (i, j): (usize, usize),
        (h, w): (usize, usize),
    ) {
        assert!(i + h <= self.m && j + w <= self.n);
        for r in 0..h {
            // SAFETY: as in `write_tile`.
            let (c, pre) = unsafe { self.row(i + r, j, w) };
            finish_row(isa, fin, c, pre, j);
        }
    }

    /// Row `i`, columns `j..j + w` of C and `pre`.
    ///
    /// # Safety
    /// In bounds (checked by the callers) and exclusively the caller's.
    #[allow(clippy::mut_from_ref)] // disjointness is the (unsafe) caller's contract
    unsafe fn row(&self, i: usize, j: usize, w: usize) -> (&mut [f32], Option<&mut [f32]>) {
        let off = i * self.ldc + j;
        // SAFETY: the callers checked that the row segment is inside C/pre (with
        // `ldc ≥ n` from `new`, rows do not overlap) and own it exclusively.
        unsafe {
            (
                std::slice::from_raw_parts_mut(self.c.add(off), w),
                self.pre
                    .map(|p| std::slice::from_raw_parts_mut(p.add(off), w)),
            )
        }
    }

    /// Writes the `h × w` tile `ab` (row stride `ab_stride`) at rows `i..i+h`, columns
    /// `j..j+w` of C with [`write_row`].
    ///
    /// # Safety
    /// No other thread may access that rectangle of C or `pre` during the call
    /// (callers partition C into disjoint tiles). Bounds are checked here.
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn write_tile(
        &self,
        isa: Isa,
        pass: Pass<'_>,
        (i, j): (usize, usize),
        (h, w): (usize, usize),
        ab: &[f32],
        ab_stride: usize,
    ) {
        assert!(
            i + h <= self.m && j + w <= self.n && (h == 0 || ab.len() >= (h - 1) * ab_stride + w)
        );
        for r in 0..h {
            // SAFETY: in bounds (asserted above) and ours (the caller's contract).
            let (c, pre) = unsafe { self.row(i + r, j, w) };
            write_row(isa, pass, c, &ab[r * ab_stride..][..w], pre, j);
        }
    }
}

/// Writes one row segment of a tile: `c = (add ? c : 0) + ab`, then on the last pass
/// `c += bias[j0..]`, `pre = c`, `c = gelu(c)`. `ab`, `c` and `pre` have equal lengths.
#[inline]
fn write_row(
    isa: Isa,
    pass: Pass<'_>,
    c: &mut [f32],
    ab: &[f32],
    pre: Option<&mut [f32]>,
    j0: usize,
) {
    if pass.add {
        for (c, &x) in c.iter_mut().zip(ab) {
            *c += x;
        }
    } else {
        c.copy_from_slice(ab);
    }
    if let Some(fin) = pass.finish {
        finish_row(isa, fin, c, pre, j0);
    }
}

/// The epilogue on one row segment starting at column `j0`: `c += bias`, `pre = c`,
/// `c = gelu(c)`.
#[inline]
fn finish_row(isa: Isa, fin: Finish<'_>, c: &mut [f32], pre: Option<&mut [f32]>, j0: usize) {
    if let Some(bias) = fin.bias {
        let w = c.len();
        for (c, &b) in c.iter_mut().zip(&bias[j0..j0 + w]) {
            *c += b;
        }
    }
    if let Some(pre) = pre {
        pre.copy_from_slice(c);
    }
    if fin.gelu {
        isa.gelu_in_place(c);
    }
}
