//! GPU tests of `Tensor`'s CUDA storage: host ↔ device copies of every dtype, views,
//! the conversions that go through the host, device-buffer access for the CUDA ops, and
//! errors for host access to device data. A plain program (`harness = false`) like
//! gpt2-kernels' `cuda_ops`: one line per check, or `SKIP` lines without a GPU.

mod common;

use std::process::ExitCode;

use common::{Check, fail};

use gpt2_core::{DType, Device, Error, Result, Tensor};
use gpt2_kernels::cuda::Gpu;
use half::bf16;

fn iota(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::from_vec(
        (0..n).map(|i| i as f32 * 0.25 - 3.0).collect::<Vec<f32>>(),
        shape,
    )
    .unwrap()
}

const GPU: Device = Device::Cuda(0);

fn round_trips() -> Result<()> {
    let t = iota(&[3, 5, 7]);
    for dtype in [DType::F32, DType::BF16, DType::F16] {
        let host = t.to_dtype(dtype)?;
        let dev = host.to_device(GPU)?;
        if dev.device() != GPU || dev.dtype() != dtype || dev.shape() != host.shape() {
            return fail(format!(
                "{dtype}: device {}, dtype {}, shape {:?}",
                dev.device(),
                dev.dtype(),
                dev.shape()
            ));
        }
        let back = dev.to_device(Device::Cpu)?;
        if back.device() != Device::Cpu || back.to_vec_f32()? != host.to_vec_f32()? {
            return fail(format!("{dtype}: values changed on the round trip"));
        }
        if dev.to_vec_f32()? != host.to_vec_f32()? {
            return fail(format!("{dtype}: to_vec_f32 of the device tensor differs"));
        }
    }
    Ok(())
}

fn views() -> Result<()> {
    let t = iota(&[4, 6]);
    // A non-contiguous host view goes up contiguous, in row-major order of the view.
    let p = t.permute(&[1, 0])?;
    let dev = p.to_device(GPU)?;
    if !dev.is_contiguous() || dev.to_vec_f32()? != p.to_vec_f32()? {
        return fail("permuted view uploaded wrongly".into());
    }
    // Views of a device tensor: a window, a transpose, made contiguous on the device.
    let d = t.to_device(GPU)?;
    let w = d.narrow(0, 1, 2)?.transpose(0, 1)?;
    let c = w.contiguous()?;
    if c.device() != GPU
        || !c.is_contiguous()
        || c.to_vec_f32()? != t.narrow(0, 1, 2)?.transpose(0, 1)?.to_vec_f32()?
    {
        return fail("contiguous() of a device view".into());
    }
    if w.to_device(Device::Cpu)?.to_vec_f32()? != c.to_vec_f32()? {
        return fail("to_device(Cpu) of a device view".into());
    }
    let b = d.to_dtype(DType::BF16)?;
    if b.device() != GPU || b.to_vec_f32()? != t.to_dtype(DType::BF16)?.to_vec_f32()? {
        return fail("to_dtype on the device".into());
    }
    Ok(())
}

fn host_access_errors() -> Result<()> {
    let mut d = iota(&[2, 2]).to_device(GPU)?;
    let errs = [
        d.as_slice::<f32>().map(|_| ()),
        d.get(&[0, 0]).map(|_| ()),
        d.as_slice_mut::<f32>().map(|_| ()),
        iota(&[2]).as_gpu_buf::<f32>().map(|_| ()),
    ];
    for (i, e) in errs.into_iter().enumerate() {
        if !matches!(e, Err(Error::Device(_))) {
            return fail(format!("case {i}: expected Error::Device, got {e:?}"));
        }
    }
    if !matches!(d.as_gpu_buf::<bf16>(), Err(Error::DType { .. })) {
        return fail("as_gpu_buf with the wrong dtype".into());
    }
    if !matches!(d.narrow(0, 0, 1)?.as_gpu_buf::<f32>(), Err(Error::Shape(_))) {
        return fail("as_gpu_buf of a window".into());
    }
    Ok(())
}

/// A CUDA op on tensors' device buffers, and copy-on-write of shared device storage.
fn kernels_on_device_buffers() -> Result<()> {
    let gpu = Gpu::get(0).map_err(gpt2_kernels::KernelError::from)?;
    let a = iota(&[8, 16]).to_device(GPU)?;
    let b = a.clone();
    let mut out = Tensor::from_gpu_buf(gpu.zeros::<f32>(8 * 16)?, &[8, 16])?;
    gpt2_kernels::cuda::residual::forward(
        &gpu,
        out.as_gpu_buf_mut::<f32>()?,
        a.as_gpu_buf()?,
        b.as_gpu_buf()?,
    )?;
    let want: Vec<f32> = iota(&[8, 16]).to_vec_f32()?.iter().map(|x| x + x).collect();
    if out.to_vec_f32()? != want {
        return fail("residual on tensors' device buffers".into());
    }
    // `b` shares `a`'s buffer: writing through `b` must copy first and leave `a` alone.
    let mut b = b;
    b.as_gpu_buf_mut::<f32>()?.fill_zero()?;
    if a.to_vec_f32()? != iota(&[8, 16]).to_vec_f32()? || b.to_vec_f32()?.iter().any(|&x| x != 0.0)
    {
        return fail("as_gpu_buf_mut did not copy shared storage".into());
    }
    Ok(())
}

fn main() -> ExitCode {
    let checks: [Check; 4] = [
        ("tensor::round_trips", round_trips),
        ("tensor::views", views),
        ("tensor::host_access_errors", host_access_errors),
        (
            "tensor::kernels_on_device_buffers",
            kernels_on_device_buffers,
        ),
    ];
    common::run("cuda_tensor", &checks)
}
