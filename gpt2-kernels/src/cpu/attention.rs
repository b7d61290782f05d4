//! Causal multi-head self-attention, flash style: scores are made one block at a time
//! and folded into the output with an online softmax, so the `(T, T)` matrix never
//! exists; the backward recomputes each block of probabilities from the saved
//! log-sum-exp.
//!
//! Shapes: `qkv` `(B, T, 3C)` is GPT-2's `c_attn` output: queries in columns `[0, C)`,
//! keys in `[C, 2C)`, values in `[2C, 3C)`; head `h` uses columns `h·HS..(h+1)·HS` of
//! each (`HS = C / NH`). `out` `(B, T, C)` has head `h` in columns `h·HS..(h+1)·HS`.
//! `lse` `(B, NH, T)` is `log Σ_{j ≤ i} e^{s_ij}` with `s_ij = q_i·k_j / √HS`.
//!
//! ## Algorithm
//! One task per (batch, head). It packs its operands once: `Q/√HS` and `V` contiguous,
//! `Kᵀ` by blocks of 64 keys (the `(B, T, 3C)` rows are 9 KiB apart, which would map a
//! block's rows onto a few L1 sets). Then for each block of 64 queries, and each block
//! of 64 keys up to the diagonal: `S = Q·Kᵀ/√HS` (`gemm`, 6×16 register tiles), mask
//! keys after each query, update the running row max `m` and sum `l`, rescale the
//! output rows by `e^{m_old − m_new}` and add `P·V` (`gemm_acc`). At the end
//! `out = O / l` and `lse = m + ln l`. A thread holds one 64×64 block of scores.
//! With fewer than 8 queries (decoding) nothing is packed and `S` is dot products of
//! rows read in place (`gemm_nt`).
//!
//! The backward (FlashAttention-2's) walks key blocks and, for each, the query blocks
//! at or below the diagonal: `P = e^{S − lse}`, `dV += Pᵀ·dO`, `dP = dO·Vᵀ`,
//! `dS = P ⊙ (dP − D)` with `D_i = dO_i·O_i`, `dQ += dS·K/√HS`, `dK += dSᵀ·Q/√HS`.
//!
//! Tasks write to private buffers that are then copied or added into the outputs by
//! batch row, so every sum is made in the same order whatever the number of threads.
//!
//! ## Dropout on the probabilities (training)
//! [`forward_train`] / [`backward_train`] take an optional [`Dropout`], as Hugging Face
//! GPT-2's `attn_dropout` on the softmax output: `out_i = Σ_j P_ij·M_ij·v_j` with
//! `M_ij ∈ {0, 1/(1 − p)}`. The mask is counter-based like [`super::dropout`]'s: entry
//! `(b, h, i, j)` uses counter `offset + ((b·NH + h)·T + i)·T + j`, its index in the
//! `(B, NH, T, T)` matrix a materialised implementation would hold, so the backward
//! regenerates it block by block. The softmax statistics (`m`, `l`, `lse`) are those of
//! the undropped `P`. In the backward `dP = (dO·Vᵀ) ⊙ M`, `dV += (P ⊙ M)ᵀ·dO`, and
//! `D_i = dO_i·O_i` still equals `Σ_j P_ij dP_ij` because `O` is the dropped output.

use rayon::prelude::*;

use super::dropout::{keep_scale, kept};
use super::rows_of;
use super::simd::{Isa, MatMut, MatRef};
use crate::error::check_len;
use crate::{KernelError, Result};

/// Queries and keys per block of scores (both directions).
const BLOCK: usize = 64;

/// Dropout on the attention probabilities: probability `p`, counter stream `seed`, and
/// the first counter `offset` of this call's `B·NH·T·T` range (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dropout {
    /// Probability of dropping an entry, in `[0, 1)`.
    pub p: f32,
    /// The random stream.
    pub seed: u64,
    /// Counter of entry `(0, 0, 0, 0)`.
    pub offset: u64,
}

/// The dropout mask of one (batch, head): entry `(i, j)` uses counter `base + i·T + j`.
#[derive(Debug, Clone, Copy)]
struct HeadMask {
    p: f32,
    scale: f32,
    seed: u64,
    base: u64,
    t: u64,
}

impl HeadMask {
    /// The mask of the first head of a `(B, NH, T, T)` matrix after checking `p`, or
    /// `None` without dropout (none given, or `p = 0`).
    fn first(op: &'static str, dropout: Option<Dropout>, t: usize) -> Result<Option<Self>> {
        let Some(d) = dropout else { return Ok(None) };
        let scale = keep_scale(op, d.p)?;
        Ok((d.p > 0.0).then_some(HeadMask {
            p: d.p,
            scale,
            seed: d.seed,
            base: d.offset,
            t: t as u64,
        }))
    }

    /// The mask of head `bh = b·NH + h`, given the first head's.
    fn head(self, bh: usize) -> Self {
        let base = self.base.wrapping_add(bh as u64 * self.t * self.t);
        HeadMask { base, ..self }
    }

    /// Multiplies entries `(i, kb..kb + row.len())` by the mask.
    fn apply(&self, row: &mut [f32], i: usize, kb: usize) {
        let start = self.base.wrapping_add(i as u64 * self.t + kb as u64);
        for (j, x) in row.iter_mut().enumerate() {
            *x = if kept(self.p, self.seed, start, j) {
                *x * self.scale
            } else {
                0.0
            };
        }
    }
}

/// Checks the shapes of `forward`/`backward` (also the CUDA twin's); returns `(C, HS)`,
/// or `None` if there is nothing to do (`B·T = 0`).
pub(crate) fn check(
    op: &'static str,
    (out, lse, qkv): (usize, usize, usize),
    b: usize,
    t: usize,
    nh: usize,
) -> Result<Option<(usize, usize)>> {
    if b * t == 0 {
        check_len(op, "out", out, 0)?;
        check_len(op, "lse", lse, 0)?;
        check_len(op, "qkv", qkv, 0)?;
        return Ok(None);
    }
    let c = rows_of(op, "qkv", qkv, 3 * b * t)?;
    let hs = head_size(op, c, nh)?;
    check_len(op, "out", out, b * t * c)?;
    check_len(op, "lse", lse, b * nh * t)?;
    Ok(Some((c, hs)))
}

/// `C / NH`, if `NH ≥ 1` divides `C`.
fn head_size(op: &'static str, c: usize, nh: usize) -> Result<usize> {
    if nh == 0 || !c.is_multiple_of(nh) {
        return Err(KernelError::Shape {
            op,
            msg: format!("C = {c} is not divisible into NH = {nh} heads"),
        });
    }
    Ok(c / nh)
}

/// One head's operands: query `i` is `q[i·q_rs..][..hs]`, key/value `j` is
/// `k[j·kv_rs..][..hs]` / `v[j·kv_rs..][..hs]`.
struct Head<'a> {
    q: &'a [f32],
    q_rs: usize,
    k: &'a [f32],
    v: &'a [f32],
    kv_rs: usize,
    hs: usize,
}

impl<'a> Head<'a> {
    /// Head `bh % NH` of sequence `bh / NH` of a packed `(B, T, 3C)` `qkv`.
    fn of_qkv(qkv: &'a [f32], bh: usize, (t, c, nh): (usize, usize, usize)) -> Self {
        let (bi, h, hs) = (bh / nh, bh % nh, c / nh);
        let x = &qkv[bi * t * 3 * c..(bi + 1) * t * 3 * c];
        let (q, k, v) = (&x[h * hs..], &x[c + h * hs..], &x[2 * c + h * hs..]);
        Head {
            q,
            q_rs: 3 * c,
            k,
            v,
            kv_rs: 3 * c,
            hs,
        }
    }

    /// Rows `j0..j0 + n` of the keys and of the values, in place.
    fn kv_rows(&self, j0: usize, n: usize) -> (MatRef<'_>, MatRef<'_>) {
        let k = MatRef::rows(&self.k[j0 * self.kv_rs..], (n, self.hs), self.kv_rs);
        let v = MatRef::rows(&self.v[j0 * self.kv_rs..], (n, self.hs), self.kv_rs);
        (k, v)
    }
}

/// How many of the keys `kb..kb + nk` a query at absolute position `pos` sees.
#[inline]
fn visible(pos: usize, kb: usize, nk: usize) -> usize {
    (pos + 1).saturating_sub(kb).min(nk)
}

/// Copies `rows` rows of `hs` values at stride `rs` in `src` into `dst` (contiguous),
/// times `scale`.
fn pack_rows(
    isa: Isa,
    dst: &mut [f32],
    src: &[f32],
    (rows, hs): (usize, usize),
    rs: usize,
    scale: f32,
) {
    for (i, row) in dst[..rows * hs].chunks_mut(hs).enumerate() {
        row.copy_from_slice(&src[i * rs..][..hs]);
        if scale != 1.0 {
            isa.scale(row, scale);
        }
    }
}

/// Copies keys `0..n` of `head` into `dst` as the `B` operand of `Q·Kᵀ`: each block of
/// `BLOCK` keys transposed (`HS × nk`) and contiguous, block `kb` at offset `kb·HS`. A
/// single `HS × n` matrix would have a row stride of `4n` bytes, often a multiple of 4
/// KiB, which maps a block's rows onto a few L1 sets.
fn pack_keys_t(isa: Isa, dst: &mut [f32], head: &Head, n: usize) {
    let hs = head.hs;
    for kb in (0..n).step_by(BLOCK) {
        let nk = BLOCK.min(n - kb);
        isa.transpose(
            MatMut::new(&mut dst[kb * hs..][..hs * nk], (hs, nk), nk),
            head.kv_rows(kb, nk).0,
        );
    }
}

/// Columns `0..nk` of block `kb` of keys packed by [`pack_keys_t`] for `n` keys.
fn keys_t_block(kt: &[f32], kb: usize, nk: usize, n: usize, hs: usize) -> MatRef<'_> {
    MatRef::new(&kt[kb * hs..], (hs, nk), BLOCK.min(n - kb), 1)
}

/// With at least this many queries, a head's operands are worth packing (contiguous,
/// `Kᵀ` by blocks, for the register-tiled `gemm`); below, `Q·Kᵀ` is made of dot products
/// read in place (decoding: one query per head).
const PACK_MIN_ROWS: usize = 8;

/// The shared forward inner routine: queries `0..Tq` of `head` at absolute positions
/// `pos0..pos0 + Tq` attend keys `0..=pos`. Writes `o` `(Tq, HS)` and `lse` `(Tq)`;
/// `mask` drops probabilities (training).
fn attend(
    isa: Isa,
    head: &Head,
    pos0: usize,
    mask: Option<HeadMask>,
    o: &mut [f32],
    lse: &mut [f32],
) {
    let (tq, hs) = (lse.len(), head.hs);
    let n_keys = pos0 + tq;
    let scale = 1.0 / (hs as f32).sqrt();
    // Packed once per head: Q·scale, the keys' blocks transposed, the values.
    let packed = tq >= PACK_MIN_ROWS;
    let mut buf = vec![0.0f32; if packed { (tq + 2 * n_keys) * hs } else { 0 }];
    let (qs, kv) = buf.split_at_mut(if packed { tq * hs } else { 0 });
    let (kt, vp) = kv.split_at_mut(if packed { n_keys * hs } else { 0 });
    if packed {
        pack_rows(isa, qs, head.q, (tq, hs), head.q_rs, scale);
        pack_keys_t(isa, kt, head, n_keys);
        pack_rows(isa, vp, head.v, (n_keys, hs), head.kv_rs, 1.0);
    }
    let (qs, kt, vp) = (&*qs, &*kt, &*vp);
    let mut s = vec![0.0f32; BLOCK * BLOCK];
    for qb in (0..tq).step_by(BLOCK) {
        let rows = BLOCK.min(tq - qb);
        let o = &mut o[qb * hs..(qb + rows) * hs];
        let (mut m, mut l) = ([f32::NEG_INFINITY; BLOCK], [0.0f32; BLOCK]);
        o.fill(0.0);
        let last = pos0 + qb + rows;
        for kb in (0..last).step_by(BLOCK) {
            let nk = BLOCK.min(last - kb);
            let s = &mut s[..rows * nk];
            let s_mat = MatMut::new(s, (rows, nk), nk);
            let v = if packed {
                let q = MatRef::rows(&qs[qb * hs..], (rows, hs), hs);
                isa.gemm(s_mat, q, keys_t_block(kt, kb, nk, n_keys, hs));
                MatRef::rows(&vp[kb * hs..], (nk, hs), hs)
            } else {
                let (k, v) = head.kv_rows(kb, nk);
                let q = MatRef::rows(&head.q[qb * head.q_rs..], (rows, hs), head.q_rs);
                isa.gemm_nt(s_mat, q, k, scale);
                v
            };
            for (i, row) in s.chunks_mut(nk).enumerate() {
                let (live, masked) = row.split_at_mut(visible(pos0 + qb + i, kb, nk));
                masked.fill(0.0);
                if live.is_empty() {
                    continue;
                }
                // Online softmax: rescale what was summed under the old max.
                let m_new = m[i].max(isa.max(live));
                let alpha = (m[i] - m_new).exp(); // 0 on the first block, where m = -inf
                l[i] = l[i] * alpha + isa.exp_shift(live, m_new);
                // Only P·V sees the mask; l sums the undropped probabilities.
                if let Some(mask) = &mask {
                    mask.apply(live, pos0 + qb + i, kb);
                }
                if alpha != 1.0 {
                    isa.scale(&mut o[i * hs..(i + 1) * hs], alpha);
                }
                m[i] = m_new;
            }
            isa.gemm_acc(
                MatMut::new(o, (rows, hs), hs),
                MatRef::rows(s, (rows, nk), nk),
                v,
            );
        }
        for (i, oi) in o.chunks_mut(hs).enumerate() {
            isa.scale(oi, 1.0 / l[i]);
            lse[qb + i] = m[i] + l[i].ln();
        }
    }
}

/// Causal self-attention of `qkv`, writing `out` and the log-sum-exp `lse`.
pub fn forward(
    isa: Isa,
    out: &mut [f32],
    lse: &mut [f32],
    qkv: &[f32],
    b: usize,
    t: usize,
    nh: usize,
) -> Result<()> {
    forward_train(isa, out, lse, qkv, b, t, nh, None)
}

/// [`forward`] with optional [`Dropout`] on the probabilities (training).
#[allow(clippy::too_many_arguments)] // the op's operands, as in llm.c
pub fn forward_train(
    isa: Isa,
    out: &mut [f32],
    lse: &mut [f32],
    qkv: &[f32],
    b: usize,
    t: usize,
    nh: usize,
    dropout: Option<Dropout>,
) -> Result<()> {
    let op = "attention::forward";
    let Some((c, hs)) = check(op, (out.len(), lse.len(), qkv.len()), b, t, nh)? else {
        return Ok(());
    };
    let mask = HeadMask::first(op, dropout, t)?;
    let heads: Vec<(Vec<f32>, Vec<f32>)> = (0..b * nh)
        .into_par_iter()
        .map(|bh| {
            let head = Head::of_qkv(qkv, bh, (t, c, nh));
            let (mut o, mut l) = (vec![0.0; t * hs], vec![0.0; t]);
            attend(isa, &head, 0, mask.map(|m| m.head(bh)), &mut o, &mut l);
            (o, l)
        })
        .collect();
    out.par_chunks_mut(t * c)
        .zip(lse.par_chunks_mut(nh * t))
        .enumerate()
        .for_each(|(bi, (out, lse))| {
            for (h, (o, l)) in heads[bi * nh..(bi + 1) * nh].iter().enumerate() {
                for (orow, out_row) in o.chunks(hs).zip(out.chunks_mut(c)) {
                    out_row[h * hs..(h + 1) * hs].copy_from_slice(orow);
                }
                lse[h * t..(h + 1) * t].copy_from_slice(l);
            }
        });
    Ok(())
}

/// Attention of `Tq = out.len() / c` new queries of one sequence against a KV cache:
/// query `i` (row `i` of `q`, at offset `i·q_stride`, first `C` values) sits at
/// absolute position `kv_len − Tq + i` and attends keys/values `0..=` that position,
/// rows of `k_cache`/`v_cache` (row stride `C`; the caches may be longer than
/// `kv_len`, e.g. allocated for the whole context). The inner routine is the one of
/// [`forward`].
#[allow(clippy::too_many_arguments)] // the operands of a cached decoding step
pub fn forward_cached(
    isa: Isa,
    out: &mut [f32],
    q: &[f32],
    q_stride: usize,
    k_cache: &[f32],
    v_cache: &[f32],
    kv_len: usize,
    c: usize,
    nh: usize,
) -> Result<()> {
    let op = "attention::forward_cached";
    let caches = (k_cache.len(), v_cache.len());
    let (tq, hs) = check_cached(op, (out.len(), q.len()), q_stride, caches, kv_len, c, nh)?;
    if tq == 0 {
        return Ok(());
    }
    let heads: Vec<Vec<f32>> = (0..nh)
        .into_par_iter()
        .map(|h| {
            let head = Head {
                q: &q[h * hs..],
                q_rs: q_stride,
                k: &k_cache[h * hs..],
                v: &v_cache[h * hs..],
                kv_rs: c,
                hs,
            };
            let (mut o, mut lse) = (vec![0.0; tq * hs], vec![0.0; tq]);
            attend(isa, &head, kv_len - tq, None, &mut o, &mut lse);
            o
        })
        .collect();
    for (h, o) in heads.iter().enumerate() {
        for (orow, out_row) in o.chunks(hs).zip(out.chunks_mut(c)) {
            out_row[h * hs..(h + 1) * hs].copy_from_slice(orow);
        }
    }
    Ok(())
}

/// Checks the shapes of `forward_cached` (also the CUDA twin's) from the lengths of
/// `out`, `q` and the caches; returns `(Tq, HS)`.
pub(crate) fn check_cached(
    op: &'static str,
    (out, q): (usize, usize),
    q_stride: usize,
    caches: (usize, usize),
    kv_len: usize,
    c: usize,
    nh: usize,
) -> Result<(usize, usize)> {
    let tq = rows_of(op, "out", out, c)?;
    let hs = head_size(op, c, nh)?;
    if tq == 0 {
        return Ok((0, hs));
    }
    let fail = |msg: String| Err(KernelError::Shape { op, msg });
    if q_stride < c || q < (tq - 1) * q_stride + c {
        return fail(format!(
            "`q` ({q} elements, stride {q_stride}) does not hold {tq} rows of C = {c}"
        ));
    }
    if tq > kv_len {
        return fail(format!(
            "{tq} queries but only kv_len = {kv_len} cached positions"
        ));
    }
    for (name, cache) in [("k_cache", caches.0), ("v_cache", caches.1)] {
        if cache < kv_len * c {
            return fail(format!(
                "`{name}` has {cache} elements, fewer than kv_len·C = {}",
                kv_len * c
            ));
        }
    }
    Ok((tq, hs))
}

/// One head's gradients `[dQ | dK | dV]`, each `(T, HS)`. `dout`/`out` are the head's
/// columns of `(T, C)` rows (stride `c`), `lse` its `(T)` log-sum-exps, `mask` the
/// forward's dropout mask.
fn head_backward(
    isa: Isa,
    head: &Head,
    (dout, out, c): (&[f32], &[f32], usize),
    lse: &[f32],
    mask: Option<HeadMask>,
) -> Vec<f32> {
    let (t, hs) = (lse.len(), head.hs);
    let scale = 1.0 / (hs as f32).sqrt();
    // D_i = dO_i · O_i = Σ_j P_ij dP_ij, the softmax backward's row constant.
    let d: Vec<f32> = (0..t)
        .map(|i| isa.dot(&dout[i * c..][..hs], &out[i * c..][..hs]))
        .collect();
    // Contiguous copies: Q·scale (so S = Qs·Kᵀ and dK = dSᵀ·Qs) and dO.
    let (mut qs, mut dop) = (vec![0.0f32; t * hs], vec![0.0f32; t * hs]);
    pack_rows(isa, &mut qs, head.q, (t, hs), head.q_rs, scale);
    pack_rows(isa, &mut dop, dout, (t, hs), c, 1.0);
    let mut grads = vec![0.0f32; 3 * t * hs];
    let (dq, dkv) = grads.split_at_mut(t * hs);
    let (dk, dv) = dkv.split_at_mut(t * hs);
    let mut kt = vec![0.0f32; hs * BLOCK];
    let mut vt = vec![0.0f32; hs * BLOCK];
    let mut ks = vec![0.0f32; BLOCK * hs];
    let mut p = vec![0.0f32; BLOCK * BLOCK];
    let mut ds = vec![0.0f32; BLOCK * BLOCK];
    for kb in (0..t).step_by(BLOCK) {
        let nk = BLOCK.min(t - kb);
        // This key block as Kᵀ, Vᵀ and K·scale (so that dQ = dS·Ks), all contiguous.
        let (k, v) = head.kv_rows(kb, nk);
        isa.transpose(MatMut::new(&mut kt[..hs * nk], (hs, nk), nk), k);
        isa.transpose(MatMut::new(&mut vt[..hs * nk], (hs, nk), nk), v);
        pack_rows(
            isa,
            &mut ks,
            &head.k[kb * head.kv_rs..],
            (nk, hs),
            head.kv_rs,
            scale,
        );
        let (kt, vt) = (
            MatRef::rows(&kt, (hs, nk), nk),
            MatRef::rows(&vt, (hs, nk), nk),
        );
        let ks = MatRef::rows(&ks, (nk, hs), hs);
        // Query blocks at or below the diagonal (blocks of queries and keys coincide).
        for qb in (kb..t).step_by(BLOCK) {
            let rows = BLOCK.min(t - qb);
            let q = MatRef::rows(&qs[qb * hs..], (rows, hs), hs);
            let dob = MatRef::rows(&dop[qb * hs..], (rows, hs), hs);
            let (p, ds) = (&mut p[..rows * nk], &mut ds[..rows * nk]);
            isa.gemm(MatMut::new(p, (rows, nk), nk), q, kt);
            for (i, row) in p.chunks_mut(nk).enumerate() {
                let (live, masked) = row.split_at_mut(visible(qb + i, kb, nk));
                isa.exp_shift(live, lse[qb + i]);
                masked.fill(0.0);
            }
            // dP = (dO·Vᵀ) ⊙ M, then dS = P ⊙ (dP − D) with the undropped P.
            isa.gemm(MatMut::new(ds, (rows, nk), nk), dob, vt);
            for (i, (dsi, pi)) in ds.chunks_mut(nk).zip(p.chunks_mut(nk)).enumerate() {
                if let Some(mask) = &mask {
                    mask.apply(dsi, qb + i, kb);
                }
                isa.softmax_vjp(dsi, pi, d[qb + i]);
                // From here on P holds P ⊙ M, the weights the forward applied to V.
                if let Some(mask) = &mask {
                    mask.apply(pi, qb + i, kb);
                }
            }
            let p_t = MatRef::rows(p, (rows, nk), nk).t();
            isa.gemm_acc(MatMut::new(&mut dv[kb * hs..], (nk, hs), hs), p_t, dob);
            let ds_m = MatRef::rows(ds, (rows, nk), nk);
            isa.gemm_acc(MatMut::new(&mut dq[qb * hs..], (rows, hs), hs), ds_m, ks);
            isa.gemm_acc(MatMut::new(&mut dk[kb * hs..], (nk, hs), hs), ds_m.t(), q);
        }
    }
    grads
}

/// Accumulates `dqkv` from `dout`, recomputing the probabilities from `qkv` and the
/// forward's `lse`; `out` is the forward's output (for `D = rowsum(dout ⊙ out)`).
#[allow(clippy::too_many_arguments)] // the op's operands, as in llm.c
pub fn backward(
    isa: Isa,
    dqkv: &mut [f32],
    dout: &[f32],
    qkv: &[f32],
    out: &[f32],
    lse: &[f32],
    b: usize,
    t: usize,
    nh: usize,
) -> Result<()> {
    backward_train(isa, dqkv, dout, qkv, out, lse, b, t, nh, None)
}

/// [`backward`] of [`forward_train`]: the same `dropout` regenerates the forward's mask.
#[allow(clippy::too_many_arguments)] // the op's operands, as in llm.c
pub fn backward_train(
    isa: Isa,
    dqkv: &mut [f32],
    dout: &[f32],
    qkv: &[f32],
    out: &[f32],
    lse: &[f32],
    b: usize,
    t: usize,
    nh: usize,
    dropout: Option<Dropout>,
) -> Result<()> {
    let op = "attention::backward";
    let Some((c, hs)) = check(op, (out.len(), lse.len(), qkv.len()), b, t, nh)? else {
        check_len(op, "dqkv", dqkv.len(), 0)?;
        return check_len(op, "dout", dout.len(), 0);
    };
    let mask = HeadMask::first(op, dropout, t)?;
    check_len(op, "dqkv", dqkv.len(), qkv.len())?;
    check_len(op, "dout", dout.len(), out.len())?;
    let per_head: Vec<Vec<f32>> = (0..b * nh)
        .into_par_iter()
        .map(|bh| {
            let (bi, h) = (bh / nh, bh % nh);
            let head = Head::of_qkv(qkv, bh, (t, c, nh));
            let rows = bi * t * c + h * hs..(bi + 1) * t * c;
            head_backward(
                isa,
                &head,
                (&dout[rows.clone()], &out[rows], c),
                &lse[bh * t..(bh + 1) * t],
                mask.map(|m| m.head(bh)),
            )
        })
        .collect();
    dqkv.par_chunks_mut(t * 3 * c)
        .enumerate()
        .for_each(|(bi, dx)| {
            for h in 0..nh {
                let grads = &per_head[bi * nh + h];
                for (part, g) in grads.chunks(t * hs).enumerate() {
                    for (i, gi) in g.chunks(hs).enumerate() {
                        isa.axpy(&mut dx[i * 3 * c + part * c + h * hs..][..hs], 1.0, gi);
                    }
                }
            }
        });
    Ok(())
}

/// The naive, materialised attention: the full `(T, T)` scores per (batch, head),
/// softmax, then `att·V`, generic over the float type (see [`super::real`]). The
/// peer of the flash kernels in tests and benches.
pub mod reference {
    use super::{Dropout, check};
    use crate::Result;
    use crate::cpu::dropout::{keep_scale, kept};
    use crate::cpu::real::Real;
    use crate::error::check_len;

    /// The dropout multiplier `M` of every entry of the `(B, NH, T, T)` matrix, as a
    /// function of `(bh, i, j)` (all ones without dropout).
    fn mask<F: Real>(
        op: &'static str,
        dropout: Option<Dropout>,
        t: usize,
    ) -> Result<impl Fn(usize, usize, usize) -> F> {
        let scale = match dropout {
            Some(d) => F::from_f32(keep_scale(op, d.p)?),
            None => F::ONE,
        };
        Ok(move |bh: usize, i: usize, j: usize| match dropout {
            Some(d) if d.p > 0.0 => {
                let index = (bh * t + i) * t + j;
                if kept(d.p, d.seed, d.offset, index) {
                    scale
                } else {
                    F::ZERO
                }
            }
            _ => F::ONE,
        })
    }

    /// The causal softmax probabilities `att (T, T)` (zero above the diagonal) of
    /// batch `bi`, head `h`, and each row's log-sum-exp.
    fn probabilities<F: Real>(
        qkv: &[F],
        (bi, h): (usize, usize),
        t: usize,
        (c, hs): (usize, usize),
    ) -> (Vec<F>, Vec<F>) {
        let scale = F::ONE / F::from_f64(hs as f64).sqrt();
        let at =
            |i: usize, part: usize, d: usize| qkv[(bi * t + i) * 3 * c + part * c + h * hs + d];
        let mut att = vec![F::ZERO; t * t];
        let mut lse = vec![F::ZERO; t];
        for i in 0..t {
            let row = &mut att[i * t..(i + 1) * t];
            let mut m = F::NEG_INFINITY;
            for (j, s) in row[..=i].iter_mut().enumerate() {
                let mut dot = F::ZERO;
                for d in 0..hs {
                    dot += at(i, 0, d) * at(j, 1, d);
                }
                *s = dot * scale;
                m = m.max(*s);
            }
            let mut sum = F::ZERO;
            for x in &mut row[..=i] {
                *x = (*x - m).exp();
                sum += *x;
            }
            for x in &mut row[..=i] {
                *x = *x / sum;
            }
            lse[i] = m + sum.ln();
        }
        (att, lse)
    }

    /// As [`super::forward`].
    pub fn forward<F: Real>(
        out: &mut [F],
        lse: &mut [F],
        qkv: &[F],
        b: usize,
        t: usize,
        nh: usize,
    ) -> Result<()> {
        forward_train(out, lse, qkv, b, t, nh, None)
    }

    /// As [`super::forward_train`]: `out = (att ⊙ M)·V`.
    pub fn forward_train<F: Real>(
        out: &mut [F],
        lse: &mut [F],
        qkv: &[F],
        b: usize,
        t: usize,
        nh: usize,
        dropout: Option<Dropout>,
    ) -> Result<()> {
        let op = "attention::reference::forward";
        let Some((c, hs)) = check(op, (out.len(), lse.len(), qkv.len()), b, t, nh)? else {
            return Ok(());
        };
        let m = mask::<F>(op, dropout, t)?;
        for bi in 0..b {
            for h in 0..nh {
                let (att, l) = probabilities(qkv, (bi, h), t, (c, hs));
                lse[(bi * nh + h) * t..][..t].copy_from_slice(&l);
                for i in 0..t {
                    for d in 0..hs {
                        let mut acc = F::ZERO;
                        for j in 0..=i {
                            let a = att[i * t + j] * m(bi * nh + h, i, j);
                            acc += a * qkv[(bi * t + j) * 3 * c + 2 * c + h * hs + d];
                        }
                        out[(bi * t + i) * c + h * hs + d] = acc;
                    }
                }
            }
        }
        Ok(())
    }

    /// As [`super::backward`], by the chain rule through the materialised `att`,
    /// recomputed from `qkv` (`out` and `lse` are checked but not used, which keeps this
    /// an independent check of the flash backward's use of them).
    #[allow(clippy::too_many_arguments)]
    pub fn backward<F: Real>(
        dqkv: &mut [F],
        dout: &[F],
        qkv: &[F],
        out: &[F],
        lse: &[F],
        b: usize,
        t: usize,
        nh: usize,
    ) -> Result<()> {
        backward_train(dqkv, dout, qkv, out, lse, b, t, nh, None)
    }

    /// As [`super::backward_train`].
    #[allow(clippy::too_many_arguments)]
    pub fn backward_train<F: Real>(
        dqkv: &mut [F],
        dout: &[F],
        qkv: &[F],
        out: &[F],
        lse: &[F],
        b: usize,
        t: usize,
        nh: usize,
        dropout: Option<Dropout>,
    ) -> Result<()> {
        let op = "attention::reference::backward";
        let Some((c, hs)) = check(op, (out.len(), lse.len(), qkv.len()), b, t, nh)? else {
            return Ok(());
        };
        check_len(op, "dqkv", dqkv.len(), qkv.len())?;
        check_len(op, "dout", dout.len(), out.len())?;
        let m = mask::<F>(op, dropout, t)?;
        let scale = F::ONE / F::from_f64(hs as f64).sqrt();
        let idx = |bi: usize, i: usize, part: usize, d: usize| (bi * t + i) * 3 * c + part * c + d;
        for bi in 0..b {
            for h in 0..nh {
                let (att, _) = probabilities(qkv, (bi, h), t, (c, hs));
                let o = h * hs;
                let dout_at = |i: usize, d: usize| dout[(bi * t + i) * c + o + d];
                for i in 0..t {
                    // datt_ij = (dout_i · v_j)·M_ij; dpreatt = att ⊙ (datt − Σ_k att_ik datt_ik).
                    let mut datt = vec![F::ZERO; i + 1];
                    for (j, dj) in datt.iter_mut().enumerate() {
                        for d in 0..hs {
                            *dj += dout_at(i, d) * qkv[idx(bi, j, 2, o + d)];
                        }
                        *dj *= m(bi * nh + h, i, j);
                    }
                    let mut dot = F::ZERO;
                    for j in 0..=i {
                        dot += att[i * t + j] * datt[j];
                    }
                    for j in 0..=i {
                        let a = att[i * t + j];
                        let dpre = a * (datt[j] - dot) * scale;
                        let a_dropped = a * m(bi * nh + h, i, j);
                        for d in 0..hs {
                            dqkv[idx(bi, i, 0, o + d)] += dpre * qkv[idx(bi, j, 1, o + d)];
                            dqkv[idx(bi, j, 1, o + d)] += dpre * qkv[idx(bi, i, 0, o + d)];
                            dqkv[idx(bi, j, 2, o + d)] += a_dropped * dout_at(i, d);
                        }
                    }
                }
            }
        }
        Ok(())
    }
}
