//! Where a tensor's bytes live: an owned typed buffer or a range of a memory-mapped file
//! (zero copy) on the CPU, or (with the `cuda` feature) a buffer on a GPU.

use std::sync::Arc;

use half::{bf16, f16};
use memmap2::Mmap;

use super::dtype::{DType, Element};
use crate::error::{Error, Result};

/// The device a tensor lives on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Device {
    /// Host memory.
    Cpu,
    /// CUDA device with this ordinal (needs the `cuda` feature and a GPU).
    Cuda(usize),
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

impl std::str::FromStr for Device {
    type Err = Error;

    /// Parses `cpu`, `cuda` (device 0) or `cuda:N`, as a `--device` flag takes them.
    fn from_str(s: &str) -> Result<Device> {
        match s.split_once(':') {
            None if s == "cpu" => Ok(Device::Cpu),
            None if s == "cuda" => Ok(Device::Cuda(0)),
            Some(("cuda", n)) if n.bytes().all(|b| b.is_ascii_digit()) => n
                .parse()
                .map(Device::Cuda)
                .map_err(|_| Error::Device(format!("device ordinal `{n}` is too large"))),
            _ => Err(Error::Device(format!(
                "unknown device `{s}`: expected `cpu`, `cuda` or `cuda:N`"
            ))),
        }
    }
}

/// An owned, typed element buffer.
#[derive(Debug, Clone)]
pub(crate) enum OwnedBuf {
    F32(Vec<f32>),
    BF16(Vec<bf16>),
    F16(Vec<f16>),
}

/// The bytes behind a tensor.
#[derive(Debug)]
pub(crate) enum Storage {
    /// Memory we own.
    Owned(OwnedBuf),
    /// A byte range of a read-only memory map, aligned for `dtype` (checked on creation).
    Mapped {
        map: Arc<Mmap>,
        start: usize,
        len: usize,
        dtype: DType,
    },
    /// A buffer on a GPU.
    #[cfg(feature = "cuda")]
    Cuda(cuda::CudaBuf),
}

impl OwnedBuf {
    pub(crate) fn zeros(dtype: DType, n: usize) -> OwnedBuf {
        match dtype {
            DType::F32 => OwnedBuf::F32(vec![0.0; n]),
            DType::BF16 => OwnedBuf::BF16(vec![bf16::ZERO; n]),
            DType::F16 => OwnedBuf::F16(vec![f16::ZERO; n]),
        }
    }

    /// Builds a buffer of `dtype` from f32 values (rounding to nearest even).
    pub(crate) fn from_f32_iter(dtype: DType, it: impl Iterator<Item = f32>) -> OwnedBuf {
        match dtype {
            DType::F32 => OwnedBuf::F32(it.collect()),
            DType::BF16 => OwnedBuf::BF16(it.map(bf16::from_f32).collect()),
            DType::F16 => OwnedBuf::F16(it.map(f16::from_f32).collect()),
        }
    }
}

/// Conversion between a typed `Vec` and [`OwnedBuf`], one impl per element type.
pub(crate) trait IntoOwned: Element {
    fn into_owned(v: Vec<Self>) -> OwnedBuf;
    fn owned_slice(b: &OwnedBuf) -> Option<&[Self]>;
    fn owned_slice_mut(b: &mut OwnedBuf) -> Option<&mut [Self]>;
    /// The same for device buffers.
    #[cfg(feature = "cuda")]
    fn into_cuda(b: gpt2_kernels::cuda::GpuBuf<Self>) -> cuda::CudaBuf
    where
        Self: gpt2_kernels::cuda::GpuElem;
    #[cfg(feature = "cuda")]
    fn cuda_buf(b: &cuda::CudaBuf) -> Option<&gpt2_kernels::cuda::GpuBuf<Self>>
    where
        Self: gpt2_kernels::cuda::GpuElem;
    #[cfg(feature = "cuda")]
    fn cuda_buf_mut(b: &mut cuda::CudaBuf) -> Option<&mut gpt2_kernels::cuda::GpuBuf<Self>>
    where
        Self: gpt2_kernels::cuda::GpuElem;
}

macro_rules! into_owned {
    ($t:ty, $v:ident) => {
        impl IntoOwned for $t {
            fn into_owned(v: Vec<Self>) -> OwnedBuf {
                OwnedBuf::$v(v)
            }
            fn owned_slice(b: &OwnedBuf) -> Option<&[Self]> {
                if let OwnedBuf::$v(v) = b {
                    Some(v)
                } else {
                    None
                }
            }
            fn owned_slice_mut(b: &mut OwnedBuf) -> Option<&mut [Self]> {
                if let OwnedBuf::$v(v) = b {
                    Some(v)
                } else {
                    None
                }
            }
            #[cfg(feature = "cuda")]
            fn into_cuda(b: gpt2_kernels::cuda::GpuBuf<Self>) -> cuda::CudaBuf {
                cuda::CudaBuf::$v(b)
            }
            #[cfg(feature = "cuda")]
            fn cuda_buf(b: &cuda::CudaBuf) -> Option<&gpt2_kernels::cuda::GpuBuf<Self>> {
                if let cuda::CudaBuf::$v(v) = b {
                    Some(v)
                } else {
                    None
                }
            }
            #[cfg(feature = "cuda")]
            fn cuda_buf_mut(
                b: &mut cuda::CudaBuf,
            ) -> Option<&mut gpt2_kernels::cuda::GpuBuf<Self>> {
                if let cuda::CudaBuf::$v(v) = b {
                    Some(v)
                } else {
                    None
                }
            }
        }
    };
}
into_owned!(f32, F32);
into_owned!(bf16, BF16);
into_owned!(f16, F16);

impl Storage {
    pub(crate) fn dtype(&self) -> DType {
        match self {
            Storage::Owned(OwnedBuf::F32(_)) => DType::F32,
            Storage::Owned(OwnedBuf::BF16(_)) => DType::BF16,
            Storage::Owned(OwnedBuf::F16(_)) => DType::F16,
            Storage::Mapped { dtype, .. } => *dtype,
            #[cfg(feature = "cuda")]
            Storage::Cuda(b) => b.dtype(),
        }
    }

    pub(crate) fn device(&self) -> Device {
        match self {
            Storage::Owned(_) | Storage::Mapped { .. } => Device::Cpu,
            #[cfg(feature = "cuda")]
            Storage::Cuda(b) => Device::Cuda(b.ordinal()),
        }
    }

    /// Number of elements.
    pub(crate) fn len(&self) -> usize {
        match self {
            Storage::Owned(OwnedBuf::F32(v)) => v.len(),
            Storage::Owned(OwnedBuf::BF16(v)) => v.len(),
            Storage::Owned(OwnedBuf::F16(v)) => v.len(),
            Storage::Mapped { len, dtype, .. } => len / dtype.size(),
            #[cfg(feature = "cuda")]
            Storage::Cuda(b) => b.len(),
        }
    }

    /// A memory-mapped range, if `start` is aligned for `dtype`; `None` means the caller
    /// must copy (safetensors does not promise aligned data offsets).
    pub(crate) fn mapped(
        map: Arc<Mmap>,
        start: usize,
        len: usize,
        dtype: DType,
    ) -> Option<Storage> {
        let bytes = map.get(start..start.checked_add(len)?)?;
        let aligned = match dtype {
            DType::F32 => bytemuck::try_cast_slice::<u8, f32>(bytes).is_ok(),
            DType::BF16 | DType::F16 => bytemuck::try_cast_slice::<u8, u16>(bytes).is_ok(),
        };
        aligned.then_some(Storage::Mapped {
            map,
            start,
            len,
            dtype,
        })
    }

    /// All elements as a typed slice; `Err` if `T` is not the storage's type.
    pub(crate) fn as_slice<T: IntoOwned>(&self) -> Result<&[T]> {
        let found = self.dtype();
        let wrong = || Error::DType {
            context: "typed access to tensor data".into(),
            expected: T::DTYPE,
            found,
        };
        match self {
            Storage::Owned(b) => T::owned_slice(b).ok_or_else(wrong),
            Storage::Mapped {
                map,
                start,
                len,
                dtype,
            } => {
                if *dtype != T::DTYPE {
                    return Err(wrong());
                }
                // Alignment and bounds were checked when the storage was made.
                bytemuck::try_cast_slice(&map[*start..*start + *len])
                    .map_err(|e| Error::Shape(format!("mapped tensor data: {e}")))
            }
            #[cfg(feature = "cuda")]
            Storage::Cuda(b) => Err(Error::Device(format!(
                "host access to data on cuda:{}: call to_device(Device::Cpu) first",
                b.ordinal()
            ))),
        }
    }

    /// Element `i` widened to f32.
    pub(crate) fn get_f32(&self, i: usize) -> f32 {
        match self.dtype() {
            DType::F32 => self.as_slice::<f32>().map(|s| s[i]),
            DType::BF16 => self.as_slice::<bf16>().map(|s| s[i].to_f32()),
            DType::F16 => self.as_slice::<f16>().map(|s| s[i].to_f32()),
        }
        .unwrap_or(f32::NAN)
    }
}

/// GPU storage: a device buffer per element type, and the host ↔ device copies.
#[cfg(feature = "cuda")]
pub(crate) mod cuda {
    use std::sync::Arc;

    use gpt2_kernels::cuda::{CudaError, Gpu, GpuBuf};
    use half::{bf16, f16};

    use super::{DType, OwnedBuf};
    use crate::error::{Error, Result};

    /// A typed buffer on one GPU.
    #[derive(Debug)]
    pub(crate) enum CudaBuf {
        F32(GpuBuf<f32>),
        BF16(GpuBuf<bf16>),
        F16(GpuBuf<f16>),
    }

    /// The shared handle of device `ordinal`; "no such device" is an [`Error::Device`].
    pub(crate) fn gpu(ordinal: usize) -> Result<Arc<Gpu>> {
        Gpu::get(ordinal).map_err(|e| match e {
            CudaError::Unavailable(why) => Error::Device(format!("cuda:{ordinal}: {why}")),
            other => Error::Kernel(other.into()),
        })
    }

    impl CudaBuf {
        pub(crate) fn dtype(&self) -> DType {
            match self {
                CudaBuf::F32(_) => DType::F32,
                CudaBuf::BF16(_) => DType::BF16,
                CudaBuf::F16(_) => DType::F16,
            }
        }

        pub(crate) fn len(&self) -> usize {
            match self {
                CudaBuf::F32(b) => b.len(),
                CudaBuf::BF16(b) => b.len(),
                CudaBuf::F16(b) => b.len(),
            }
        }

        pub(crate) fn ordinal(&self) -> usize {
            match self {
                CudaBuf::F32(b) => b.ordinal(),
                CudaBuf::BF16(b) => b.ordinal(),
                CudaBuf::F16(b) => b.ordinal(),
            }
        }

        /// All elements, copied to the host.
        pub(crate) fn download(&self) -> Result<OwnedBuf> {
            Ok(match self {
                CudaBuf::F32(b) => OwnedBuf::F32(b.to_vec()?),
                CudaBuf::BF16(b) => OwnedBuf::BF16(b.to_vec()?),
                CudaBuf::F16(b) => OwnedBuf::F16(b.to_vec()?),
            })
        }

        /// A copy on the same device.
        pub(crate) fn try_clone(&self) -> Result<CudaBuf> {
            Ok(match self {
                CudaBuf::F32(b) => CudaBuf::F32(b.try_clone()?),
                CudaBuf::BF16(b) => CudaBuf::BF16(b.try_clone()?),
                CudaBuf::F16(b) => CudaBuf::F16(b.try_clone()?),
            })
        }
    }
}
