//! Where a tensor's bytes live: an owned typed buffer, or a range of a memory-mapped file
//! (zero copy), on the CPU. CUDA storage joins here behind the `cuda` feature.

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

/// An owned, typed element buffer (`pub` only so that the sealing trait can name it; the
/// module is private).
#[derive(Debug, Clone)]
pub enum OwnedBuf {
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

/// Conversion between a typed `Vec` and [`OwnedBuf`], one impl per element type. `pub` in
/// a private module: it seals `TensorElement`.
pub trait IntoOwned: Element {
    fn into_owned(v: Vec<Self>) -> OwnedBuf;
    fn owned_slice(b: &OwnedBuf) -> Option<&[Self]>;
    fn owned_slice_mut(b: &mut OwnedBuf) -> Option<&mut [Self]>;
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
        }
    }

    /// Number of elements.
    pub(crate) fn len(&self) -> usize {
        match self {
            Storage::Owned(OwnedBuf::F32(v)) => v.len(),
            Storage::Owned(OwnedBuf::BF16(v)) => v.len(),
            Storage::Owned(OwnedBuf::F16(v)) => v.len(),
            Storage::Mapped { len, dtype, .. } => len / dtype.size(),
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
