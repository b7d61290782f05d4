//! Our own tensor: a shape and strides over shared storage, with f32/bf16/f16 elements,
//! owned or memory-mapped (zero copy) on the CPU, or on a GPU (with the `cuda` feature:
//! [`Tensor::to_device`] copies between host and device).
//!
//! Views (`reshape`, `permute`, `transpose`, `narrow`) share storage and copy nothing;
//! `contiguous()` and `to_dtype()` copy only when they have to. Typed access to the data
//! (`as_slice::<f32>()`) needs a contiguous tensor of that element type, and says so in its
//! error otherwise. Operations on tensors ([`ops`]) check shapes and dtypes and dispatch to
//! gpt2-kernels.

mod dtype;
mod layout;
pub mod ops;
mod storage;

use std::borrow::Cow;
use std::sync::Arc;

use half::{bf16, f16};
use memmap2::Mmap;

pub use dtype::{DType, Element};
pub use layout::Layout;
pub use storage::Device;
use storage::{IntoOwned, OwnedBuf, Storage};

use crate::error::{Error, Result};

/// An n-dimensional array of f32, bf16 or f16 elements. Cloning a tensor is cheap: clones
/// share storage (copy-on-write through [`Tensor::as_slice_mut`]).
#[derive(Debug, Clone)]
pub struct Tensor {
    storage: Arc<Storage>,
    layout: Layout,
}

/// Element types a tensor can hold and hand out as slices (`f32`, `bf16`, `f16`).
pub trait TensorElement: Element + storage_private::Sealed {}
impl<T: Element + storage_private::Sealed> TensorElement for T {}

mod storage_private {
    /// Seals [`super::TensorElement`] to the three element types our storage knows.
    // The private bound is the point of a sealed trait.
    #[allow(private_bounds)]
    pub trait Sealed: super::storage::IntoOwned {}
    impl Sealed for f32 {}
    impl Sealed for half::bf16 {}
    impl Sealed for half::f16 {}
}

impl Tensor {
    /// A contiguous tensor that owns `data`, viewed with `shape`.
    pub fn from_vec<T: TensorElement>(data: Vec<T>, shape: &[usize]) -> Result<Tensor> {
        let numel: usize = shape.iter().product();
        if numel != data.len() {
            return Err(Error::Shape(format!(
                "{} elements cannot have shape {shape:?} ({numel} elements)",
                data.len()
            )));
        }
        Ok(Tensor {
            storage: Arc::new(Storage::Owned(T::into_owned(data))),
            layout: Layout::contiguous(shape),
        })
    }

    /// A contiguous tensor with a copy of `data`.
    pub fn from_slice<T: TensorElement>(data: &[T], shape: &[usize]) -> Result<Tensor> {
        Tensor::from_vec(data.to_vec(), shape)
    }

    /// A contiguous tensor of zeros.
    pub fn zeros(shape: &[usize], dtype: DType) -> Tensor {
        let layout = Layout::contiguous(shape);
        Tensor {
            storage: Arc::new(Storage::Owned(OwnedBuf::zeros(dtype, layout.numel()))),
            layout,
        }
    }

    /// A tensor over bytes `start .. start + numel·size` of a memory map, **without copying**
    /// when the range is aligned for `dtype` (it is copied otherwise). Little-endian data, as
    /// safetensors and llm.c store it.
    pub fn from_mmap(
        map: Arc<Mmap>,
        start: usize,
        dtype: DType,
        shape: &[usize],
    ) -> Result<Tensor> {
        let layout = Layout::contiguous(shape);
        let len = layout
            .numel()
            .checked_mul(dtype.size())
            .ok_or_else(|| Error::Shape(format!("shape {shape:?} is too large")))?;
        let end = start
            .checked_add(len)
            .filter(|&e| e <= map.len())
            .ok_or_else(|| {
                Error::Shape(format!(
                    "bytes {start}..{} of a {}-byte map",
                    start.saturating_add(len),
                    map.len()
                ))
            })?;
        let storage = match Storage::mapped(map.clone(), start, len, dtype) {
            Some(s) => s,
            None => {
                // Unaligned: copy the little-endian bytes into an owned buffer.
                let bytes = &map[start..end];
                Storage::Owned(match dtype {
                    DType::F32 => OwnedBuf::F32(
                        bytes
                            .chunks_exact(4)
                            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                            .collect(),
                    ),
                    DType::BF16 => OwnedBuf::BF16(
                        bytes
                            .chunks_exact(2)
                            .map(|b| bf16::from_le_bytes([b[0], b[1]]))
                            .collect(),
                    ),
                    DType::F16 => OwnedBuf::F16(
                        bytes
                            .chunks_exact(2)
                            .map(|b| f16::from_le_bytes([b[0], b[1]]))
                            .collect(),
                    ),
                })
            }
        };
        Ok(Tensor {
            storage: Arc::new(storage),
            layout,
        })
    }

    /// The sizes of each dimension.
    pub fn shape(&self) -> &[usize] {
        self.layout.shape()
    }

    /// The element step of each dimension.
    pub fn strides(&self) -> &[usize] {
        self.layout.strides()
    }

    /// The layout (shape, strides, offset).
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The number of dimensions.
    pub fn rank(&self) -> usize {
        self.layout.shape().len()
    }

    /// The number of elements.
    pub fn numel(&self) -> usize {
        self.layout.numel()
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.storage.dtype()
    }

    /// The device the data lives on.
    pub fn device(&self) -> Device {
        self.storage.device()
    }

    /// This tensor on `device`: `self` (shared, no copy) if it is already there, else a
    /// copy. To a GPU, the elements are copied in row-major order into a contiguous
    /// buffer; to the host, the whole device buffer is copied and the view kept.
    /// Without the `cuda` feature, without a driver or GPU, or for a device ordinal that
    /// does not exist, asking for [`Device::Cuda`] is an [`Error::Device`].
    pub fn to_device(&self, device: Device) -> Result<Tensor> {
        if device == self.device() {
            return Ok(self.clone());
        }
        match device {
            Device::Cpu => self.to_host(),
            Device::Cuda(ordinal) => self.to_cuda(ordinal),
        }
    }

    /// A tensor with the same view over a host copy of the storage (`self` on the CPU).
    fn to_host(&self) -> Result<Tensor> {
        match &*self.storage {
            #[cfg(feature = "cuda")]
            Storage::Cuda(b) => Ok(Tensor {
                storage: Arc::new(Storage::Owned(b.download()?)),
                layout: self.layout.clone(),
            }),
            _ => Ok(self.clone()),
        }
    }

    #[cfg(not(feature = "cuda"))]
    fn to_cuda(&self, ordinal: usize) -> Result<Tensor> {
        Err(Error::Device(format!(
            "cuda:{ordinal} requested, but gpt2-core was built without the `cuda` feature"
        )))
    }

    #[cfg(feature = "cuda")]
    fn to_cuda(&self, ordinal: usize) -> Result<Tensor> {
        use storage::cuda::CudaBuf;
        let gpu = storage::cuda::gpu(ordinal)?;
        let host = self.to_host()?.contiguous()?;
        let buf = match host.dtype() {
            DType::F32 => CudaBuf::F32(gpu.upload(host.as_slice::<f32>()?)?),
            DType::BF16 => CudaBuf::BF16(gpu.upload(host.as_slice::<bf16>()?)?),
            DType::F16 => CudaBuf::F16(gpu.upload(host.as_slice::<f16>()?)?),
        };
        Ok(Tensor {
            storage: Arc::new(Storage::Cuda(buf)),
            layout: Layout::contiguous(self.shape()),
        })
    }

    /// `self` if its data is on the host, else a host copy. The conversions
    /// (`to_vec_f32`, `contiguous`, `to_dtype`) of a GPU tensor go through here.
    fn host(&self) -> Result<Cow<'_, Tensor>> {
        Ok(match self.device() {
            Device::Cpu => Cow::Borrowed(self),
            _ => Cow::Owned(self.to_host()?),
        })
    }

    /// Whether the view is row-major and gap-free.
    pub fn is_contiguous(&self) -> bool {
        self.layout.is_contiguous()
    }

    /// Whether the data is read in place from a memory-mapped file (zero copy).
    pub fn is_mapped(&self) -> bool {
        matches!(*self.storage, Storage::Mapped { .. })
    }

    fn with_layout(&self, layout: Layout) -> Tensor {
        Tensor {
            storage: self.storage.clone(),
            layout,
        }
    }

    /// The same elements with another shape (no copy; the tensor must be contiguous).
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        Ok(self.with_layout(self.layout.reshape(shape)?))
    }

    /// Reorders the dimensions (no copy).
    pub fn permute(&self, dims: &[usize]) -> Result<Tensor> {
        Ok(self.with_layout(self.layout.permute(dims)?))
    }

    /// Swaps two dimensions (no copy).
    pub fn transpose(&self, a: usize, b: usize) -> Result<Tensor> {
        Ok(self.with_layout(self.layout.transpose(a, b)?))
    }

    /// Keeps `len` entries of dimension `dim` from `start` (no copy).
    pub fn narrow(&self, dim: usize, start: usize, len: usize) -> Result<Tensor> {
        Ok(self.with_layout(self.layout.narrow(dim, start, len)?))
    }

    /// A contiguous tensor with the same elements, on the same device: `self` if it
    /// already is, else a copy (through the host for a GPU tensor, which fails with
    /// [`Error::Device`] if the device does).
    pub fn contiguous(&self) -> Result<Tensor> {
        if self.is_contiguous() {
            return Ok(self.clone());
        }
        self.copy_as(self.dtype())
    }

    /// The elements converted to `dtype` (rounding to nearest even), as a contiguous tensor
    /// on the same device (through the host for a GPU tensor). Returns `self` unchanged
    /// when it already has that type and is contiguous.
    pub fn to_dtype(&self, dtype: DType) -> Result<Tensor> {
        if dtype == self.dtype() {
            return self.contiguous();
        }
        self.copy_as(dtype)
    }

    /// A fresh contiguous copy in `dtype`, on the same device.
    fn copy_as(&self, dtype: DType) -> Result<Tensor> {
        let host = self.host()?;
        let buf = match (host.dtype(), dtype) {
            (DType::F32, DType::F32) => OwnedBuf::F32(host.gather::<f32>()),
            (DType::BF16, DType::BF16) => OwnedBuf::BF16(host.gather::<bf16>()),
            (DType::F16, DType::F16) => OwnedBuf::F16(host.gather::<f16>()),
            _ => OwnedBuf::from_f32_iter(dtype, host.to_vec_f32()?.into_iter()),
        };
        Tensor {
            storage: Arc::new(Storage::Owned(buf)),
            layout: Layout::contiguous(self.shape()),
        }
        .to_device(self.device())
    }

    /// The elements in row-major order, in their own type `T` (which must be the dtype);
    /// the tensor must be on the host.
    fn gather<T: IntoOwned>(&self) -> Vec<T> {
        match self.storage.as_slice::<T>() {
            Ok(s) if self.is_contiguous() => {
                s[self.layout.offset()..self.layout.offset() + self.numel()].to_vec()
            }
            Ok(s) => self.layout.indices().map(|i| s[i]).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// The elements in row-major order, widened to f32 (works for any layout and dtype;
    /// a GPU tensor is copied to the host first).
    pub fn to_vec_f32(&self) -> Result<Vec<f32>> {
        let host = self.host()?;
        Ok(match host.dtype() {
            DType::F32 => host.gather::<f32>(),
            DType::BF16 => host.gather::<bf16>().into_iter().map(f32::from).collect(),
            DType::F16 => host.gather::<f16>().into_iter().map(f32::from).collect(),
        })
    }

    /// An [`Error::Device`] unless the tensor is on the host.
    fn check_host(&self, what: &str) -> Result<()> {
        match self.device() {
            Device::Cpu => Ok(()),
            device => Err(Error::Device(format!(
                "{what} needs the data on the host, it is on {device}: call to_device(Device::Cpu)"
            ))),
        }
    }

    /// Element at a multi-index, widened to f32 (host tensors only).
    pub fn get(&self, index: &[usize]) -> Result<f32> {
        self.check_host("get")?;
        if index.len() != self.rank() || index.iter().zip(self.shape()).any(|(&i, &n)| i >= n) {
            return Err(Error::Shape(format!(
                "index {index:?} out of range for shape {:?}",
                self.shape()
            )));
        }
        let pos = self.layout.offset()
            + index
                .iter()
                .zip(self.strides())
                .map(|(i, s)| i * s)
                .sum::<usize>();
        Ok(self.storage.get_f32(pos))
    }

    /// The data of a contiguous tensor of element type `T`, without copying.
    pub fn as_slice<T: TensorElement>(&self) -> Result<&[T]> {
        self.check_host("slice access")?;
        if !self.is_contiguous() {
            return Err(Error::Shape(format!(
                "slice access needs a contiguous tensor; this view has shape {:?} and strides {:?} (call contiguous())",
                self.shape(),
                self.strides()
            )));
        }
        let all = self.storage.as_slice::<T>()?;
        Ok(&all[self.layout.offset()..self.layout.offset() + self.numel()])
    }

    /// Mutable data of element type `T`. Copy-on-write: if the storage is shared with another
    /// tensor, memory-mapped, or the view is not the whole contiguous buffer, the elements are
    /// first copied into storage this tensor owns alone. Host tensors only.
    pub fn as_slice_mut<T: TensorElement>(&mut self) -> Result<&mut [T]> {
        self.check_host("mutable slice access")?;
        if self.dtype() != T::DTYPE {
            return Err(Error::DType {
                context: "mutable access to tensor data".into(),
                expected: T::DTYPE,
                found: self.dtype(),
            });
        }
        let whole =
            self.is_contiguous() && self.layout.offset() == 0 && self.numel() == self.storage.len();
        if !whole || Arc::get_mut(&mut self.storage).is_none() || self.is_mapped() {
            *self = self.copy_as(T::DTYPE)?;
        }
        match Arc::get_mut(&mut self.storage) {
            Some(Storage::Owned(buf)) => T::owned_slice_mut(buf)
                .ok_or_else(|| Error::Shape("tensor storage changed type".into())),
            _ => Err(Error::Shape(
                "tensor storage is not uniquely owned after copy".into(),
            )),
        }
    }
}

#[cfg(feature = "cuda")]
pub(crate) use storage::cuda::gpu as cuda_device;

/// Device buffers behind GPU tensors, for the CUDA ops (`gpt2_kernels::cuda`).
#[cfg(feature = "cuda")]
impl Tensor {
    /// A tensor over a whole device buffer, viewed with `shape`.
    pub fn from_gpu_buf<T>(buf: gpt2_kernels::cuda::GpuBuf<T>, shape: &[usize]) -> Result<Tensor>
    where
        T: TensorElement + gpt2_kernels::cuda::GpuElem,
    {
        let layout = Layout::contiguous(shape);
        if layout.numel() != buf.len() {
            return Err(Error::Shape(format!(
                "a device buffer of {} elements cannot have shape {shape:?}",
                buf.len()
            )));
        }
        Ok(Tensor {
            storage: Arc::new(Storage::Cuda(T::into_cuda(buf))),
            layout,
        })
    }

    /// Checks that this is a whole device buffer of element type `T`.
    fn check_whole_gpu_buf<T: TensorElement>(&self) -> Result<()> {
        if self.dtype() != T::DTYPE {
            return Err(Error::DType {
                context: "device buffer access".into(),
                expected: T::DTYPE,
                found: self.dtype(),
            });
        }
        if self.device() == Device::Cpu {
            return Err(Error::Device(
                "device buffer access needs a GPU tensor: call to_device(Device::Cuda(_))".into(),
            ));
        }
        let whole =
            self.is_contiguous() && self.layout.offset() == 0 && self.numel() == self.storage.len();
        if !whole {
            return Err(Error::Shape(format!(
                "device buffer access needs a view of the whole buffer; this one has shape {:?}, \
                 strides {:?}, offset {}",
                self.shape(),
                self.strides(),
                self.layout.offset()
            )));
        }
        Ok(())
    }

    /// The device buffer of a GPU tensor that views all of it, row-major.
    pub fn as_gpu_buf<T>(&self) -> Result<&gpt2_kernels::cuda::GpuBuf<T>>
    where
        T: TensorElement + gpt2_kernels::cuda::GpuElem,
    {
        self.check_whole_gpu_buf::<T>()?;
        match &*self.storage {
            Storage::Cuda(b) => T::cuda_buf(b),
            _ => None,
        }
        .ok_or_else(|| Error::Device("tensor storage changed device".into()))
    }

    /// The device buffer, mutably. Copy-on-write: if the storage is shared with another
    /// tensor, the buffer is first copied (on the device) into storage this one owns.
    pub fn as_gpu_buf_mut<T>(&mut self) -> Result<&mut gpt2_kernels::cuda::GpuBuf<T>>
    where
        T: TensorElement + gpt2_kernels::cuda::GpuElem,
    {
        self.check_whole_gpu_buf::<T>()?;
        if Arc::get_mut(&mut self.storage).is_none() {
            let copy = match &*self.storage {
                Storage::Cuda(b) => b.try_clone()?,
                _ => return Err(Error::Device("tensor storage changed device".into())),
            };
            self.storage = Arc::new(Storage::Cuda(copy));
        }
        match Arc::get_mut(&mut self.storage) {
            Some(Storage::Cuda(b)) => T::cuda_buf_mut(b),
            _ => None,
        }
        .ok_or_else(|| Error::Device("tensor storage is not uniquely owned after copy".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn iota(shape: &[usize]) -> Tensor {
        let n: usize = shape.iter().product();
        Tensor::from_vec((0..n).map(|i| i as f32).collect::<Vec<f32>>(), shape).unwrap()
    }

    #[test]
    fn views_share_storage_and_contiguous_copies() {
        let t = iota(&[2, 3, 4]);
        let p = t.permute(&[2, 0, 1]).unwrap();
        assert_eq!(p.shape(), &[4, 2, 3]);
        assert!(!p.is_contiguous());
        assert!(Arc::ptr_eq(&t.storage, &p.storage));
        assert_eq!(p.get(&[3, 1, 2]).unwrap(), t.get(&[1, 2, 3]).unwrap());
        let c = p.contiguous().unwrap();
        assert!(c.is_contiguous());
        assert_eq!(c.as_slice::<f32>().unwrap()[..4], [0.0, 4.0, 8.0, 12.0]);
        assert!(p.as_slice::<f32>().is_err());
    }

    #[test]
    fn narrow_then_reshape_is_a_window() {
        let t = iota(&[4, 3]);
        let rows = t.narrow(0, 1, 2).unwrap().reshape(&[6]).unwrap();
        assert_eq!(
            rows.as_slice::<f32>().unwrap(),
            &[3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
        );
        let col = t.narrow(1, 1, 1).unwrap();
        assert_eq!(col.to_vec_f32().unwrap(), vec![1.0, 4.0, 7.0, 10.0]);
    }

    #[test]
    fn dtype_round_trips_and_errors() {
        let t = Tensor::from_vec(vec![1.0f32, -2.5, 3.0e-3, 65504.0], &[4]).unwrap();
        let b = t.to_dtype(DType::BF16).unwrap();
        assert_eq!(b.dtype(), DType::BF16);
        assert_eq!(b.as_slice::<bf16>().unwrap()[1], bf16::from_f32(-2.5));
        assert!(b.as_slice::<f32>().is_err());
        let h = t.to_dtype(DType::F16).unwrap();
        assert_eq!(h.to_vec_f32().unwrap()[3], 65504.0);
        assert!(Tensor::from_vec(vec![1.0f32; 5], &[2, 3]).is_err());
    }

    #[test]
    fn as_slice_mut_copies_on_write() {
        let a = iota(&[3]);
        let mut b = a.clone();
        b.as_slice_mut::<f32>().unwrap()[0] = 42.0;
        assert_eq!(a.to_vec_f32().unwrap(), vec![0.0, 1.0, 2.0]);
        assert_eq!(b.to_vec_f32().unwrap(), vec![42.0, 1.0, 2.0]);
        assert!(b.as_slice_mut::<bf16>().is_err());
    }

    #[test]
    fn mmap_is_zero_copy_when_aligned_and_copied_otherwise() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        let vals: Vec<f32> = vec![1.5, -2.0, 3.25];
        let mut bytes = vec![0u8; 1];
        bytes.extend(vals.iter().flat_map(|v| v.to_le_bytes()));
        bytes.extend([0, 0, 0]);
        f.write_all(&bytes).unwrap();
        // SAFETY: the temp file is private to this test and not modified while mapped.
        let map = Arc::new(unsafe { Mmap::map(f.as_file()) }.unwrap());
        let unaligned = Tensor::from_mmap(map.clone(), 1, DType::F32, &[3]).unwrap();
        assert!(!unaligned.is_mapped());
        assert_eq!(unaligned.to_vec_f32().unwrap(), vals);
        let aligned = Tensor::from_mmap(map.clone(), 4, DType::F32, &[2]).unwrap();
        assert!(aligned.is_mapped());
        assert!(Tensor::from_mmap(map, 8, DType::F32, &[3]).is_err());
    }

    #[test]
    fn devices_parse_and_print() {
        for d in [Device::Cpu, Device::Cuda(0), Device::Cuda(3)] {
            assert_eq!(d.to_string().parse::<Device>().unwrap(), d);
        }
        assert_eq!("cuda".parse::<Device>().unwrap(), Device::Cuda(0));
        for bad in [
            "gpu",
            "cuda:",
            "cuda:x",
            "cuda:-1",
            "CPU",
            "cuda:99999999999999999999",
        ] {
            assert!(
                matches!(bad.parse::<Device>(), Err(Error::Device(_))),
                "{bad}"
            );
        }
    }

    /// Holds on every machine: no build has a device `usize::MAX` (and builds without the
    /// `cuda` feature or a driver have none at all), and the tensor stays usable.
    #[test]
    fn an_unavailable_device_is_a_device_error() {
        let t = iota(&[2, 3]);
        match t.to_device(Device::Cuda(usize::MAX)) {
            Err(Error::Device(msg)) => assert!(msg.contains("cuda:"), "{msg}"),
            other => panic!("expected Error::Device, got {other:?}"),
        }
        assert_eq!(
            t.to_device(Device::Cpu).unwrap().to_vec_f32().unwrap(),
            t.to_vec_f32().unwrap()
        );
        assert_eq!(t.device(), Device::Cpu);
    }
}
