//! Matrix multiplication: every product GPT-2's linear layers need, forward and backward,
//! in both weight layouts, f32 or bf16 weights, without ever materialising a transpose.
//!
//! - [`forward`] / [`forward_gelu`]: `out (M, N) = inp (M, K) · W + bias` (then GELU);
//! - [`backward`]: `dinp += dout · Wᵀ`, `dW += inpᵀ · dout` (or its transpose for
//!   [`WeightLayout::OutIn`]), `dbias += Σ_rows dout`;
//! - [`gemm`]: the general strided product underneath, for other callers (attention).
//!
//! Two engines: a BLIS-style GEMM (`blis.rs`: packing in `pack.rs`, one register-tile
//! micro-kernel per ISA in `microkernel/`) and, for M ≤ 4 (decoding), a matrix–vector
//! path that streams the weights at memory bandwidth (`matvec.rs`). The bias, the stored
//! pre-activation and GELU are applied in the write-back of the last k block
//! (`epilogue.rs`). [`reference`](mod@reference) holds the naive triple loops the tests compare with.
//!
//! Which engine runs depends only on the shapes and strides, and each output element is
//! summed in a fixed order by one task, so results are bitwise identical for any number
//! of threads.

mod blis;
mod element;
mod epilogue;
mod matvec;
mod microkernel;
mod pack;
pub mod reference;
#[cfg(test)]
mod tests;

use half::bf16;

pub use element::Element;
use epilogue::{Finish, OutPtr};

use crate::cpu::simd::Isa;
use crate::error::{KernelError, Result, check_len};

/// How a weight matrix of a linear layer `y = x · W` (`K` inputs, `N` outputs) is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightLayout {
    /// `(K, N)`, row-major: Hugging Face GPT-2's `Conv1D` (`[in, out]`).
    InOut,
    /// `(N, K)`, row-major: PyTorch `Linear` and llm.c (`[out, in]`), and the tied LM
    /// head, which is the token embedding `wte (V, C)` itself.
    OutIn,
}

/// The elements of a weight matrix: f32, or bf16 (widened to f32 as they are read, so
/// the arithmetic and accumulation stay f32 and only the bytes in memory halve).
#[derive(Debug, Clone, Copy)]
pub enum WeightData<'a> {
    /// f32 elements.
    F32(&'a [f32]),
    /// bf16 elements.
    Bf16(&'a [bf16]),
}

/// A weight matrix: its elements and their layout.
#[derive(Debug, Clone, Copy)]
pub struct Weight<'a> {
    /// The `K·N` elements.
    pub data: WeightData<'a>,
    /// `(K, N)` or `(N, K)`.
    pub layout: WeightLayout,
}

impl<'a> Weight<'a> {
    /// An f32 weight.
    pub fn f32(data: &'a [f32], layout: WeightLayout) -> Self {
        Weight {
            data: WeightData::F32(data),
            layout,
        }
    }

    /// A bf16 weight.
    pub fn bf16(data: &'a [bf16], layout: WeightLayout) -> Self {
        Weight {
            data: WeightData::Bf16(data),
            layout,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self.data {
            WeightData::F32(w) => w.len(),
            WeightData::Bf16(w) => w.len(),
        }
    }

    /// Whether it has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The weight as the `(K, N)` right-hand operand `B` of `x · W`.
    fn as_b(&self, k: usize, n: usize) -> WeightRef<'a> {
        let (rs, cs) = match self.layout {
            WeightLayout::InOut => (n, 1),
            WeightLayout::OutIn => (1, k),
        };
        match self.data {
            WeightData::F32(w) => WeightRef::F32(MatRef::new(w, rs, cs)),
            WeightData::Bf16(w) => WeightRef::Bf16(MatRef::new(w, rs, cs)),
        }
    }
}

/// A weight as a GEMM operand of either element type.
#[derive(Clone, Copy)]
enum WeightRef<'a> {
    F32(MatRef<'a, f32>),
    Bf16(MatRef<'a, bf16>),
}

impl WeightRef<'_> {
    fn t(self) -> Self {
        match self {
            WeightRef::F32(b) => WeightRef::F32(b.t()),
            WeightRef::Bf16(b) => WeightRef::Bf16(b.t()),
        }
    }
}

/// A read-only strided matrix view: element `(i, j)` is `data[i·row_stride + j·col_stride]`.
/// The shape comes from the [`gemm`] call, which checks that every element is inside
/// `data`. Any layout is a view: row-major, column-major, a transpose ([`MatRef::t`]),
/// a column slice of a wider matrix.
#[derive(Debug, Clone, Copy)]
pub struct MatRef<'a, T = f32> {
    data: &'a [T],
    rs: usize,
    cs: usize,
}

impl<'a, T: Element> MatRef<'a, T> {
    /// A view with explicit strides (in elements).
    pub fn new(data: &'a [T], row_stride: usize, col_stride: usize) -> Self {
        MatRef {
            data,
            rs: row_stride,
            cs: col_stride,
        }
    }

    /// A row-major matrix with `cols` columns (row stride `cols`, column stride 1).
    pub fn row_major(data: &'a [T], cols: usize) -> Self {
        Self::new(data, cols, 1)
    }

    /// The transposed view (strides swapped); no data moves.
    pub fn t(self) -> Self {
        Self::new(self.data, self.cs, self.rs)
    }
}

/// The output of [`gemm`]: a row-major matrix with row stride `ldc` (≥ the number of
/// columns, so rows never overlap).
#[derive(Debug)]
pub struct MatMut<'a> {
    data: &'a mut [f32],
    ldc: usize,
}

impl<'a> MatMut<'a> {
    /// Rows of `data` at stride `ldc`.
    pub fn new(data: &'a mut [f32], ldc: usize) -> Self {
        MatMut { data, ldc }
    }
}

/// What [`gemm`] does to each output after the product: `v = [C +] A·B + bias`, then
/// `pre = v` and `C = gelu(v)` (or `C = v`). The default is nothing.
#[derive(Debug, Default)]
pub struct Epilogue<'a> {
    /// Added to every row (`N` elements).
    pub bias: Option<&'a [f32]>,
    /// Apply GPT-2's tanh-approximated GELU.
    pub gelu: bool,
    /// Receives `v` before the activation; same layout as C (row stride `ldc`).
    pub pre: Option<&'a mut [f32]>,
}

/// `C (m, n) = [C +] A (m, k) · B (k, n)`, then the [`Epilogue`]; `accumulate` keeps C's
/// contents. A is f32, B is f32 or bf16; both are arbitrary strided views, absorbed by
/// packing (no transposed copies). Multithreaded on rayon's current pool.
///
/// Errors if a view does not fit its slice, `ldc < n` (with `m > 1`), or the bias / pre
/// lengths are wrong; nothing is written then.
#[allow(clippy::too_many_arguments)]
pub fn gemm<T: Element>(
    isa: Isa,
    m: usize,
    n: usize,
    k: usize,
    a: MatRef<'_, f32>,
    b: MatRef<'_, T>,
    c: MatMut<'_>,
    accumulate: bool,
    epilogue: Epilogue<'_>,
) -> Result<()> {
    check_gemm("matmul::gemm", (m, n, k), &a, &b, &c, &epilogue)?;
    run(isa, (m, n, k), a, b, c, accumulate, epilogue);
    Ok(())
}

/// Checks every argument of a GEMM.
fn check_gemm<T: Element>(
    op: &'static str,
    (m, n, k): (usize, usize, usize),
    a: &MatRef<'_, f32>,
    b: &MatRef<'_, T>,
    c: &MatMut<'_>,
    epilogue: &Epilogue<'_>,
) -> Result<()> {
    check_view(op, "a", a.data.len(), (m, k), (a.rs, a.cs))?;
    check_view(op, "b", b.data.len(), (k, n), (b.rs, b.cs))?;
    if m > 1 && n > 0 && c.ldc < n {
        return Err(KernelError::Shape {
            op,
            msg: format!("ldc = {} < n = {n}: output rows would overlap", c.ldc),
        });
    }
    check_view(op, "c", c.data.len(), (m, n), (c.ldc, 1))?;
    if let Some(bias) = epilogue.bias {
        check_len(op, "bias", bias.len(), n)?;
    }
    if let Some(pre) = &epilogue.pre {
        check_view(op, "pre", pre.len(), (m, n), (c.ldc, 1))?;
    }
    Ok(())
}

/// Checks that a `rows × cols` view with strides `(rs, cs)` lies inside `len` elements.
fn check_view(
    op: &'static str,
    name: &str,
    len: usize,
    (rows, cols): (usize, usize),
    (rs, cs): (usize, usize),
) -> Result<()> {
    if rows == 0 || cols == 0 {
        return Ok(());
    }
    let last = (rows - 1)
        .checked_mul(rs)
        .zip((cols - 1).checked_mul(cs))
        .and_then(|(r, c)| r.checked_add(c));
    match last {
        Some(last) if last < len => Ok(()),
        _ => Err(KernelError::Shape {
            op,
            msg: format!(
                "`{name}`: a {rows}×{cols} view with strides ({rs}, {cs}) does not fit in {len} elements"
            ),
        }),
    }
}

/// Picks the engine, for arguments that passed [`check_gemm`].
#[allow(clippy::too_many_arguments)]
fn run<T: Element>(
    isa: Isa,
    (m, n, k): (usize, usize, usize),
    a: MatRef<'_, f32>,
    b: MatRef<'_, T>,
    c: MatMut<'_>,
    accumulate: bool,
    epilogue: Epilogue<'_>,
) {
    let Epilogue { bias, gelu, pre } = epilogue;
    // No epilogue at all: skip the pass over each finished tile.
    let finish = (bias.is_some() || gelu || pre.is_some()).then_some(Finish { bias, gelu });
    let out = OutPtr::new(c.data, pre, c.ldc, m, n);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        // An empty sum: C = [C +] 0, then the epilogue.
        let pass = epilogue::Pass {
            add: accumulate,
            finish,
        };
        // SAFETY: single-threaded here; the whole of C is ours.
        unsafe { out.write_tile(isa, pass, (0, 0), (m, n), &vec![0.0; n], 0) };
    } else if matvec::applies(m, &a, &b) {
        matvec::matvec(isa, (m, n, k), a, b, &out, accumulate, finish);
    } else {
        blis::gemm(isa, (m, n, k), a, b, &out, accumulate, finish);
    }
}

/// [`gemm`] with a weight of either element type as B.
#[allow(clippy::too_many_arguments)]
fn gemm_weight(
    isa: Isa,
    (m, n, k): (usize, usize, usize),
    a: MatRef<'_, f32>,
    b: WeightRef<'_>,
    c: MatMut<'_>,
    accumulate: bool,
    epilogue: Epilogue<'_>,
    op: &'static str,
) -> Result<()> {
    match b {
        WeightRef::F32(b) => check_gemm(op, (m, n, k), &a, &b, &c, &epilogue)
            .map(|()| run(isa, (m, n, k), a, b, c, accumulate, epilogue)),
        WeightRef::Bf16(b) => check_gemm(op, (m, n, k), &a, &b, &c, &epilogue)
            .map(|()| run(isa, (m, n, k), a, b, c, accumulate, epilogue)),
    }
}

/// The number of rows `M` of an `(M, K)` input, checking `k ≥ 1` and divisibility.
fn rows_of(op: &'static str, len: usize, k: usize) -> Result<usize> {
    if k == 0 || !len.is_multiple_of(k) {
        return Err(KernelError::Shape {
            op,
            msg: format!("`inp` has {len} elements, not a multiple of k = {k} (k must be ≥ 1)"),
        });
    }
    Ok(len / k)
}

/// `a · b`, or an error instead of overflow.
fn product(op: &'static str, a: usize, b: usize) -> Result<usize> {
    a.checked_mul(b).ok_or_else(|| KernelError::Shape {
        op,
        msg: format!("{a} × {b} overflows"),
    })
}

/// Checks the argument lengths shared by the forward functions (also the CUDA twin's);
/// returns M.
pub(crate) fn check_forward(
    op: &'static str,
    out: usize,
    pre: Option<usize>,
    inp: usize,
    weight: usize,
    bias: Option<usize>,
    (k, n): (usize, usize),
) -> Result<usize> {
    let m = rows_of(op, inp, k)?;
    check_len(op, "out", out, product(op, m, n)?)?;
    if let Some(pre) = pre {
        check_len(op, "pre", pre, m * n)?;
    }
    check_len(op, "weight", weight, product(op, k, n)?)?;
    if let Some(bias) = bias {
        check_len(op, "bias", bias, n)?;
    }
    Ok(m)
}

/// Checks the argument lengths of the backward (`grads`: the lengths of `dinp`,
/// `dweight`, `dbias` where given; also the CUDA twin's); returns M.
pub(crate) fn check_backward(
    op: &'static str,
    grads: [Option<usize>; 3],
    dout: usize,
    inp: usize,
    weight: usize,
    k: usize,
    n: usize,
) -> Result<usize> {
    let m = rows_of(op, inp, k)?;
    check_len(op, "dout", dout, product(op, m, n)?)?;
    check_len(op, "weight", weight, product(op, k, n)?)?;
    let want = [("dinp", m * k), ("dweight", k * n), ("dbias", n)];
    for (got, (name, want)) in grads.into_iter().zip(want) {
        if let Some(got) = got {
            check_len(op, name, got, want)?;
        }
    }
    Ok(m)
}

/// `out (M, N) = inp (M, K) · W + bias`, `M = inp.len() / k`, `W` given as `(K, N)` or
/// `(N, K)` ([`WeightLayout`]), f32 or bf16 (f32 accumulation). For M ≤ 4 the weights
/// are streamed once at memory bandwidth (decode); otherwise BLIS GEMM.
pub fn forward(
    isa: Isa,
    out: &mut [f32],
    inp: &[f32],
    weight: Weight<'_>,
    bias: Option<&[f32]>,
    k: usize,
    n: usize,
) -> Result<()> {
    const OP: &str = "matmul::forward";
    let (w, b) = (weight.len(), bias.map(<[f32]>::len));
    let m = check_forward(OP, out.len(), None, inp.len(), w, b, (k, n))?;
    let epilogue = Epilogue {
        bias,
        ..Epilogue::default()
    };
    gemm_weight(
        isa,
        (m, n, k),
        MatRef::row_major(inp, k),
        weight.as_b(k, n),
        MatMut::new(out, n),
        false,
        epilogue,
        OP,
    )
}

/// [`forward`] followed by GPT-2's GELU (tanh approximation), fused into the write-back
/// of the product: `out = gelu(inp · W + bias)`. `pre`, if given, receives
/// `inp · W + bias` (GELU's backward needs it).
#[allow(clippy::too_many_arguments)]
pub fn forward_gelu(
    isa: Isa,
    out: &mut [f32],
    pre: Option<&mut [f32]>,
    inp: &[f32],
    weight: Weight<'_>,
    bias: Option<&[f32]>,
    k: usize,
    n: usize,
) -> Result<()> {
    const OP: &str = "matmul::forward_gelu";
    let m = check_forward(
        OP,
        out.len(),
        pre.as_ref().map(|p| p.len()),
        inp.len(),
        weight.len(),
        bias.map(<[f32]>::len),
        (k, n),
    )?;
    let epilogue = Epilogue {
        bias,
        gelu: true,
        pre,
    };
    gemm_weight(
        isa,
        (m, n, k),
        MatRef::row_major(inp, k),
        weight.as_b(k, n),
        MatMut::new(out, n),
        false,
        epilogue,
        OP,
    )
}

/// Backward of [`forward`], **accumulating** into whichever gradients are given:
/// `dinp (M, K) += dout (M, N) · Wᵀ`; `dweight` (same layout as `weight`) `+= inpᵀ · dout`
/// (`(K, N)`) or `doutᵀ · inp` (`(N, K)`); `dbias (N) +=` column sums of `dout`.
/// `weight` may be bf16; the gradients are f32. All lengths are checked before anything
/// is written.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    isa: Isa,
    dinp: Option<&mut [f32]>,
    dweight: Option<&mut [f32]>,
    dbias: Option<&mut [f32]>,
    dout: &[f32],
    inp: &[f32],
    weight: Weight<'_>,
    k: usize,
    n: usize,
) -> Result<()> {
    const OP: &str = "matmul::backward";
    let lens = [dinp.as_ref(), dweight.as_ref(), dbias.as_ref()].map(|d| d.map(|d| d.len()));
    let m = check_backward(OP, lens, dout.len(), inp.len(), weight.len(), k, n)?;
    let dout_mat = MatRef::row_major(dout, n);
    let inp_mat = MatRef::row_major(inp, k);
    if let Some(dinp) = dinp {
        // dinp (M, K) += dout (M, N) · Wᵀ (N, K)
        let wt = weight.as_b(k, n).t();
        gemm_weight(
            isa,
            (m, k, n),
            dout_mat,
            wt,
            MatMut::new(dinp, k),
            true,
            Epilogue::default(),
            OP,
        )?;
    }
    if let Some(dw) = dweight {
        match weight.layout {
            // dW (K, N) += inpᵀ (K, M) · dout (M, N)
            WeightLayout::InOut => gemm(
                isa,
                k,
                n,
                m,
                inp_mat.t(),
                dout_mat,
                MatMut::new(dw, n),
                true,
                Epilogue::default(),
            )?,
            // dW (N, K) += doutᵀ (N, M) · inp (M, K)
            WeightLayout::OutIn => gemm(
                isa,
                n,
                k,
                m,
                dout_mat.t(),
                inp_mat,
                MatMut::new(dw, k),
                true,
                Epilogue::default(),
            )?,
        }
    }
    if let Some(dbias) = dbias {
        bias_backward(dbias, dout, n);
    }
    Ok(())
}

/// `dbias (N) += Σ_rows dout (M, N)`: parallel over fixed column chunks, rows summed in
/// order, so the result is independent of the thread count. (Plain loops: the compiler
/// vectorises an element-wise add without changing its rounding.)
fn bias_backward(dbias: &mut [f32], dout: &[f32], n: usize) {
    use rayon::prelude::*;
    const CHUNK: usize = 256;
    dbias.par_chunks_mut(CHUNK).enumerate().for_each(|(c, db)| {
        for row in dout.chunks_exact(n) {
            for (d, &g) in db.iter_mut().zip(&row[c * CHUNK..]) {
                *d += g;
            }
        }
    });
}
