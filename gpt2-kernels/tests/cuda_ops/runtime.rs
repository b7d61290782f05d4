//! The runtime itself: host ↔ device copies of every element type, the caching
//! allocator's reuse and accounting, and typed errors for bad arguments.

use gpt2_kernels::KernelError;
use gpt2_kernels::cpu::adamw::AdamWParams;
use gpt2_kernels::cuda::{self, CudaError, Gpu, GpuBuf, GpuElem};
use half::{bf16, f16};

use crate::common::*;

pub fn checks() -> Vec<Check> {
    vec![
        Check {
            name: "runtime::copies",
            run: copies,
        },
        Check {
            name: "runtime::allocator",
            run: allocator,
        },
        Check {
            name: "runtime::errors",
            run: errors,
        },
    ]
}

/// Upload, clone, download and zero a buffer of `T` for a few lengths.
fn round_trip<T: GpuElem + PartialEq + std::fmt::Debug>(
    gpu: &Gpu,
    make: impl Fn(usize) -> T,
) -> Res<()> {
    for n in [0, 1, 1000, 123_457] {
        let host: Vec<T> = (0..n).map(&make).collect();
        let buf = gpu.upload(&host)?;
        let copy = buf.try_clone()?;
        drop(buf); // the clone must not share memory with the original
        if copy.to_vec()? != host {
            return Err(format!(
                "{}: n={n}: upload, clone, download changed the data",
                std::any::type_name::<T>()
            )
            .into());
        }
        let mut z: GpuBuf<T> = copy;
        z.fill_zero()?;
        if z.to_vec()?.iter().any(|v| *v != T::zeroed()) {
            return Err(format!(
                "{}: n={n}: fill_zero left non-zero bits",
                std::any::type_name::<T>()
            )
            .into());
        }
    }
    Ok(())
}

fn copies(gpu: &Gpu) -> Res<String> {
    round_trip(gpu, |i| i as f32 * 0.5 - 7.0)?;
    round_trip(gpu, |i| i as f64 / 3.0)?;
    round_trip(gpu, |i| bf16::from_f32(i as f32 - 100.0))?;
    round_trip(gpu, |i| f16::from_f32(i as f32 / 64.0))?;
    round_trip(gpu, |i| (i as u32).wrapping_mul(2_654_435_761))?;
    let mut buf = gpu.alloc::<f32>(4)?;
    match buf.copy_from_host(&[1.0; 5]) {
        Err(KernelError::Length { .. }) => {}
        other => return Err(format!("copy of 5 elements into 4: {other:?}").into()),
    }
    buf.copy_from_host(&[1.0, 2.0, 3.0, 4.0])?;
    let mut host = [0.0f32; 4];
    buf.copy_to_host(&mut host)?;
    if host != [1.0, 2.0, 3.0, 4.0] {
        return Err(format!("copy_to_host: {host:?}").into());
    }
    Ok("f32, f64, bf16, f16, u32 round trips, clones, zeroing; length errors".into())
}

fn allocator(gpu: &Gpu) -> Res<String> {
    gpu.synchronize()?;
    let caching = std::env::var_os("GPT2_CUDA_POOL").is_none_or(|v| v != "off");
    // 1000 f32 = 4000 bytes: size class 4096 (exact 4000 with the cache off).
    let block = if caching { 4096 } else { 4000 };
    let a = gpu.alloc::<f32>(1000)?;
    let live = gpu.memory_stats();
    drop(a);
    let freed = gpu.memory_stats();
    let _b = gpu.alloc::<f32>(1000)?; // same size class: must come from the free list
    let again = gpu.memory_stats();
    if freed.in_use + block != live.in_use {
        return Err(format!("drop did not release {block} bytes: {live:?} -> {freed:?}").into());
    }
    let reused = again.hits == freed.hits + 1 && again.misses == freed.misses;
    if caching != reused || (!caching && freed.cached != 0) {
        return Err(format!("caching {caching}, but {freed:?} -> {again:?}").into());
    }
    gpu.release_cached();
    if gpu.memory_stats().cached != 0 {
        return Err("release_cached kept blocks".into());
    }
    Ok(format!("caching {caching}: reuse and accounting ok"))
}

/// Expects `r` to be an error matching `pred`, naming the case otherwise.
fn expect_err<T: std::fmt::Debug>(
    what: &str,
    r: gpt2_kernels::Result<T>,
    pred: fn(&KernelError) -> bool,
) -> Res<()> {
    match r {
        Err(e) if pred(&e) => Ok(()),
        other => Err(format!("{what}: expected a typed error, got {other:?}").into()),
    }
}

fn errors(gpu: &Gpu) -> Res<String> {
    let (a, mut b) = (gpu.zeros::<f32>(4)?, gpu.zeros::<f32>(5)?);
    expect_err(
        "gelu with unequal lengths",
        cuda::gelu::forward(gpu, &mut b, &a),
        |e| matches!(e, KernelError::Length { .. }),
    )?;
    let (wte, wpe) = (gpu.zeros::<f32>(3 * 2)?, gpu.zeros::<f32>(4 * 2)?);
    let mut out = gpu.zeros::<f32>(2 * 2)?;
    expect_err(
        "token id 3 of 3",
        cuda::embedding::forward(gpu, &mut out, &[0, 3], &[0, 1], &wte, &wpe, 2),
        |e| {
            matches!(
                e,
                KernelError::Index {
                    what: "token id",
                    index: 3,
                    row: 1,
                    bound: 3,
                    ..
                }
            )
        },
    )?;
    expect_err(
        "dropout p = 1",
        cuda::dropout::forward(gpu, &mut b.try_clone()?, &b, 1.0, 0, 0),
        |e| matches!(e, KernelError::Shape { .. }),
    )?;
    let mut losses = gpu.zeros::<f32>(2)?;
    let logits = gpu.zeros::<f32>(2 * 3)?;
    expect_err(
        "target 3 of v = 3",
        cuda::crossentropy::forward(gpu, &mut losses, &logits, &[0, 3], 3),
        |e| matches!(e, KernelError::Index { what: "target", .. }),
    )?;
    let (mut p, g, mut m, mut v) = (
        gpu.zeros::<f32>(4)?,
        gpu.zeros::<f32>(4)?,
        gpu.zeros::<f32>(4)?,
        gpu.zeros::<f32>(4)?,
    );
    expect_err(
        "AdamW step 0",
        cuda::adamw::step(
            gpu,
            &mut p,
            &g,
            &mut m,
            &mut v,
            &AdamWParams::default(),
            0,
            0.0,
        ),
        |e| matches!(e, KernelError::Shape { .. }),
    )?;
    let count = Gpu::device_count()?;
    match Gpu::get(count) {
        Err(CudaError::Unavailable(_)) => {}
        other => return Err(format!("Gpu::get({count}) with {count} devices: {other:?}").into()),
    }
    Ok("lengths, indices, probabilities, steps, ordinals: typed errors".into())
}
