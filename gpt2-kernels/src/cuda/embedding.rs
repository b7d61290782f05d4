//! Token + position embedding on the GPU; the twin of [`crate::cpu::embedding`].
//! `tokens` and `positions` stay on the host: they are checked there and uploaded.
//!
//! Shapes: `out`, `dout` `(N, C)`; `tokens`, `positions` `(N)`; `wte` `(V, C)`; `wpe`
//! `(maxT, C)`. The forward runs one block per row.
//!
//! The backward scatters rows of `dout` into table rows. To stay deterministic without
//! atomics, the host groups the rows by id (a stable sort) and one block
//! column owns each table row, adding its rows in increasing `n` — the CPU's order.

use cudarc::driver::LaunchConfig;

use super::module::{Arg, Kernels, Module, kernels, ptx_module};
use super::runtime::{BLOCK, blocks, dim};
use super::{Gpu, GpuBuf, GpuFloat};
use crate::cpu::embedding as cpu;
use crate::error::check_len;
use crate::{KernelError, Result};

static MODULE: Module = ptx_module!("embedding");
const FORWARD: Kernels = kernels!("embedding_forward");
const BACKWARD: Kernels = kernels!("embedding_backward");

/// Checks the shapes and every index as the CPU twin does, and that the sizes fit the
/// kernels' 32-bit sizes.
fn check(
    op: &'static str,
    out_len: usize,
    (tokens, positions): (&[u32], &[u32]),
    tables: (usize, usize),
    c: usize,
) -> Result<()> {
    cpu::check(op, out_len, tokens, positions, tables, c)?;
    dim(op, "N", tokens.len())?;
    dim(op, "C", c)?;
    Ok(())
}

/// `out[n] = wte[tokens[n]] + wpe[positions[n]]`.
pub fn forward<T: GpuFloat>(
    gpu: &Gpu,
    out: &mut GpuBuf<T>,
    tokens: &[u32],
    positions: &[u32],
    wte: &GpuBuf<T>,
    wpe: &GpuBuf<T>,
    c: usize,
) -> Result<()> {
    let op = "cuda::embedding::forward";
    check(
        op,
        out.len(),
        (tokens, positions),
        (wte.len(), wpe.len()),
        c,
    )?;
    if out.is_empty() {
        return Ok(());
    }
    let (tokens, positions) = (gpu.upload(tokens)?, gpu.upload(positions)?);
    forward_at(gpu, out, &tokens, &positions, wte, wpe, c)
}

/// [`forward`] with the ids already on the device (a decoding step replayed from a CUDA
/// graph writes them there before each replay). An id past its table gives a row of NaN
/// (the device cannot return an error; the sampler refuses NaN logits).
pub fn forward_at<T: GpuFloat>(
    gpu: &Gpu,
    out: &mut GpuBuf<T>,
    tokens: &GpuBuf<u32>,
    positions: &GpuBuf<u32>,
    wte: &GpuBuf<T>,
    wpe: &GpuBuf<T>,
    c: usize,
) -> Result<()> {
    let op = "cuda::embedding::forward_at";
    check_len(op, "positions", positions.len(), tokens.len())?;
    check_len(op, "out", out.len(), tokens.len() * c)?;
    if c == 0 || !wte.len().is_multiple_of(c) || !wpe.len().is_multiple_of(c) {
        return Err(KernelError::Shape {
            op,
            msg: format!(
                "tables of {} and {} elements are not rows of C = {c}",
                wte.len(),
                wpe.len()
            ),
        });
    }
    if out.is_empty() {
        return Ok(());
    }
    let args = [
        out.arg(),
        tokens.arg(),
        positions.arg(),
        wte.arg(),
        wpe.arg(),
        Arg::U32(dim(op, "C", c)?),
        Arg::U32(dim(op, "vocabulary", wte.len() / c)?),
        Arg::U32(dim(op, "positions", wpe.len() / c)?),
    ];
    let rows = blocks(dim(op, "N", tokens.len())?);
    gpu.launch(&MODULE, FORWARD.of::<T>(), rows, &args)
}

/// `dwte[tokens[n]] += dout[n]`, `dwpe[positions[n]] += dout[n]`; deterministic.
#[allow(clippy::too_many_arguments)] // the op's operands, as the CPU twin
pub fn backward<T: GpuFloat>(
    gpu: &Gpu,
    dwte: &mut GpuBuf<T>,
    dwpe: &mut GpuBuf<T>,
    dout: &GpuBuf<T>,
    tokens: &[u32],
    positions: &[u32],
    c: usize,
) -> Result<()> {
    let op = "cuda::embedding::backward";
    check(
        op,
        dout.len(),
        (tokens, positions),
        (dwte.len(), dwpe.len()),
        c,
    )?;
    if dout.is_empty() {
        return Ok(());
    }
    scatter_add(gpu, dwte, dout, tokens, c)?;
    scatter_add(gpu, dwpe, dout, positions, c)
}

/// `table[ids[n]] += dout[n]` for every `n`.
fn scatter_add<T: GpuFloat>(
    gpu: &Gpu,
    table: &mut GpuBuf<T>,
    dout: &GpuBuf<T>,
    ids: &[u32],
    c: usize,
) -> Result<()> {
    let (layout, n_groups) = groups(ids);
    let layout = gpu.upload(&layout)?;
    let args = [
        table.arg(),
        dout.arg(),
        layout.arg(),
        Arg::U32(n_groups),
        Arg::U32(c as u32),
    ];
    let cfg = LaunchConfig {
        grid_dim: (n_groups, (c as u32).div_ceil(BLOCK), 1),
        block_dim: (BLOCK, 1, 1),
        shared_mem_bytes: 0,
    };
    gpu.launch(&MODULE, BACKWARD.of::<T>(), cfg, &args)
}

/// The rows `n` grouped by `ids[n]`, as the backward kernel reads them:
/// `[starts (G + 1) | ids (G) | rows (N)]` for the `G` distinct ids in increasing order,
/// group `g`'s rows being `rows[starts[g]..starts[g + 1]]` in increasing `n`. Returns the
/// layout and `G`. (`N` fits `u32`: checked by the caller.)
fn groups(ids: &[u32]) -> (Vec<u32>, u32) {
    let mut rows: Vec<u32> = (0..ids.len() as u32).collect();
    rows.sort_by_key(|&n| ids[n as usize]); // stable: increasing n within an id
    let mut starts = vec![];
    let mut distinct = vec![];
    for (k, &n) in rows.iter().enumerate() {
        let id = ids[n as usize];
        if distinct.last() != Some(&id) {
            starts.push(k as u32);
            distinct.push(id);
        }
    }
    let n_groups = distinct.len() as u32;
    starts.push(rows.len() as u32);
    starts.extend(distinct);
    starts.extend(rows);
    (starts, n_groups)
}

#[cfg(test)]
mod tests {
    #[test]
    fn ptx_declares_every_kernel() {
        super::MODULE.assert_declares(&[super::FORWARD, super::BACKWARD]);
    }

    #[test]
    fn groups_list_each_ids_rows_in_order() {
        let (layout, g) = super::groups(&[5, 2, 5, 7, 2, 5]);
        assert_eq!(g, 3);
        // starts | ids | rows
        assert_eq!(layout, [0, 2, 5, 6, /* */ 2, 5, 7, /* */ 1, 4, 0, 2, 5, 3]);
        assert_eq!(super::groups(&[]), (vec![0], 0));
    }
}
