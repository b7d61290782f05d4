//! Token + position embedding: `out[n] = wte[tokens[n]] + wpe[positions[n]]`.
//!
//! Shapes: `out`, `dout` `(N, C)`; `tokens`, `positions` `(N)`; `wte` `(V, C)`; `wpe`
//! `(maxT, C)`. The backward scatters rows of `dout` into the rows of `dwte`/`dwpe` that
//! they came from. To stay deterministic without atomics, each table row is owned by
//! one task, which adds its contributions in increasing `n` (a counting sort groups
//! them first).

use rayon::prelude::*;

use super::rows_of;
use super::simd::Isa;
use crate::error::check_len;
use crate::{KernelError, Result};

/// Checks the shapes and every index; returns `(V, maxT)`.
pub(crate) fn check(
    op: &'static str,
    out_len: usize,
    tokens: &[u32],
    positions: &[u32],
    (wte_len, wpe_len): (usize, usize),
    c: usize,
) -> Result<(usize, usize)> {
    let n = tokens.len();
    let v = rows_of(op, "wte", wte_len, c)?;
    let max_t = rows_of(op, "wpe", wpe_len, c)?;
    check_len(op, "positions", positions.len(), n)?;
    check_len(op, "out", out_len, n * c)?;
    for (what, ids, bound) in [("token id", tokens, v), ("position", positions, max_t)] {
        if let Some(row) = ids.iter().position(|&i| i as usize >= bound) {
            return Err(KernelError::Index {
                op,
                what,
                index: ids[row] as usize,
                row,
                bound,
            });
        }
    }
    Ok((v, max_t))
}

/// `out[n] = wte[tokens[n]] + wpe[positions[n]]`.
pub fn forward(
    isa: Isa,
    out: &mut [f32],
    tokens: &[u32],
    positions: &[u32],
    wte: &[f32],
    wpe: &[f32],
    c: usize,
) -> Result<()> {
    check(
        "embedding::forward",
        out.len(),
        tokens,
        positions,
        (wte.len(), wpe.len()),
        c,
    )?;
    out.par_chunks_mut(c)
        .zip(tokens.par_iter().zip(positions))
        .with_min_len(16)
        .for_each(|(o, (&tok, &pos))| {
            let (tok, pos) = (tok as usize, pos as usize);
            isa.add(o, &wte[tok * c..][..c], &wpe[pos * c..][..c]);
        });
    Ok(())
}

/// `dwte[tokens[n]] += dout[n]`, `dwpe[positions[n]] += dout[n]`; deterministic.
pub fn backward(
    isa: Isa,
    dwte: &mut [f32],
    dwpe: &mut [f32],
    dout: &[f32],
    tokens: &[u32],
    positions: &[u32],
    c: usize,
) -> Result<()> {
    check(
        "embedding::backward",
        dout.len(),
        tokens,
        positions,
        (dwte.len(), dwpe.len()),
        c,
    )?;
    scatter_add(isa, dwte, dout, tokens, c);
    scatter_add(isa, dwpe, dout, positions, c);
    Ok(())
}

/// `table[ids[n]] += dout[n]` for every `n`, each table row owned by one task.
fn scatter_add(isa: Isa, table: &mut [f32], dout: &[f32], ids: &[u32], c: usize) {
    // Counting sort of n by id: rows_of_id[start[r]..start[r + 1]] are the n with
    // ids[n] == r, in increasing order.
    let n_ids = table.len() / c;
    let mut start = vec![0usize; n_ids + 1];
    for &id in ids {
        start[id as usize + 1] += 1;
    }
    for r in 0..n_ids {
        start[r + 1] += start[r];
    }
    let mut next = start.clone();
    let mut rows_of_id = vec![0usize; ids.len()];
    for (n, &id) in ids.iter().enumerate() {
        rows_of_id[next[id as usize]] = n;
        next[id as usize] += 1;
    }
    table
        .par_chunks_mut(c)
        .enumerate()
        .with_min_len(64)
        .for_each(|(r, row)| {
            for &n in &rows_of_id[start[r]..start[r + 1]] {
                isa.axpy(row, 1.0, &dout[n * c..][..c]);
            }
        });
}

/// Naive embedding, generic over the float type (see [`super::real`]).
pub mod reference {
    use super::check;
    use crate::Result;
    use crate::cpu::real::Real;

    /// As [`super::forward`].
    pub fn forward<F: Real>(
        out: &mut [F],
        tokens: &[u32],
        positions: &[u32],
        wte: &[F],
        wpe: &[F],
        c: usize,
    ) -> Result<()> {
        check(
            "embedding::reference::forward",
            out.len(),
            tokens,
            positions,
            (wte.len(), wpe.len()),
            c,
        )?;
        for n in 0..tokens.len() {
            let (tok, pos) = (tokens[n] as usize, positions[n] as usize);
            for j in 0..c {
                out[n * c + j] = wte[tok * c + j] + wpe[pos * c + j];
            }
        }
        Ok(())
    }

    /// As [`super::backward`].
    pub fn backward<F: Real>(
        dwte: &mut [F],
        dwpe: &mut [F],
        dout: &[F],
        tokens: &[u32],
        positions: &[u32],
        c: usize,
    ) -> Result<()> {
        check(
            "embedding::reference::backward",
            dout.len(),
            tokens,
            positions,
            (dwte.len(), dwpe.len()),
            c,
        )?;
        for n in 0..tokens.len() {
            let (tok, pos) = (tokens[n] as usize, positions[n] as usize);
            for j in 0..c {
                dwte[tok * c + j] += dout[n * c + j];
                dwpe[pos * c + j] += dout[n * c + j];
            }
        }
        Ok(())
    }
}
