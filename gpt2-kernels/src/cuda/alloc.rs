//! Device memory: [`GpuBuf`], a typed buffer on one GPU, and the caching allocator
//! behind it.
//!
//! Training allocates the same activation sizes every step. Freeing to the driver and
//! allocating again costs a driver call each time (and a device sync without the
//! stream-ordered allocator), so a dropped buffer goes back to a free list of its size
//! class instead, and the next allocation of that class takes it. Size classes are
//! multiples of a sixteenth of the next power of two (less than 1/8 of a request is
//! wasted), and at least [`MIN_BLOCK`] bytes.
//!
//! Reuse is safe because every buffer of a device is used on that device's one stream:
//! work enqueued on a recycled block runs after all the work enqueued on it before.
//!
//! Setting `GPT2_CUDA_POOL=off` turns the cache off: every buffer is allocated at its
//! exact size and freed on drop, so that compute-sanitizer's memcheck sees an access
//! past the end of a buffer (which a size class's slack would hide).

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use cudarc::driver::{CudaSlice, CudaStream, DevicePtr};
use half::{bf16, f16};

use super::CudaError;
use super::module::Arg;

/// The smallest block the allocator hands out, in bytes.
pub(crate) const MIN_BLOCK: usize = 512;

/// The size class of a request of `bytes`: the smallest multiple of 1/16 of the next
/// power of two that holds it, and at least [`MIN_BLOCK`].
pub(crate) fn size_class(bytes: usize) -> usize {
    if bytes <= MIN_BLOCK {
        return MIN_BLOCK;
    }
    let step = (bytes.next_power_of_two() / 16).max(MIN_BLOCK);
    bytes.div_ceil(step) * step
}

/// Element types a [`GpuBuf`] can hold: plain bits, copied to and from the host as is.
pub trait GpuElem: bytemuck::Pod + Send + Sync + sealed::Sealed + 'static {}
impl GpuElem for f32 {}
impl GpuElem for f64 {}
impl GpuElem for bf16 {}
impl GpuElem for f16 {}
impl GpuElem for u32 {}

/// The element types our kernels compute on: `f32`, and `bf16` with f32 arithmetic.
pub trait GpuFloat: GpuElem {
    /// Whether this is `bf16` (picks the kernel instantiation).
    const IS_BF16: bool;
}
impl GpuFloat for f32 {
    const IS_BF16: bool = false;
}
impl GpuFloat for bf16 {
    const IS_BF16: bool = true;
}

mod sealed {
    /// Seals [`super::GpuElem`] to the types above.
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
    impl Sealed for half::bf16 {}
    impl Sealed for half::f16 {}
    impl Sealed for u32 {}
}

/// How much device memory the allocator holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryStats {
    /// Bytes in live buffers (rounded up to their size classes).
    pub in_use: usize,
    /// Bytes held in free lists, ready for reuse.
    pub cached: usize,
    /// Allocations served from a free list.
    pub hits: u64,
    /// Allocations that went to the driver.
    pub misses: u64,
}

/// The caching allocator of one device.
#[derive(Debug)]
pub(crate) struct Pool {
    stream: Arc<CudaStream>,
    ordinal: usize,
    /// False with `GPT2_CUDA_POOL=off`: exact sizes, no reuse.
    caching: bool,
    /// A CUDA graph capture is recording this stream (`Gpu::capture`): no block may be
    /// taken (the allocation would become part of the graph) or given back (a recorded
    /// launch may still address it at every replay).
    pub(crate) capturing: AtomicBool,
    state: Mutex<PoolState>,
}

#[derive(Debug, Default)]
struct PoolState {
    free: HashMap<usize, Vec<CudaSlice<u8>>>,
    stats: MemoryStats,
}

impl Pool {
    pub(crate) fn new(stream: Arc<CudaStream>, ordinal: usize) -> Pool {
        Pool {
            stream,
            ordinal,
            caching: std::env::var_os("GPT2_CUDA_POOL").is_none_or(|v| v != "off"),
            capturing: AtomicBool::new(false),
            state: Mutex::default(),
        }
    }

    pub(crate) fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    fn state(&self) -> std::sync::MutexGuard<'_, PoolState> {
        // The state is plain counters and lists: still consistent after a panic elsewhere.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A block of at least `bytes` bytes (uninitialised).
    fn take(&self, bytes: usize) -> Result<CudaSlice<u8>, CudaError> {
        if self.capturing.load(Ordering::Acquire) {
            return Err(CudaError::Launch {
                kernel: "graph capture",
                msg: format!(
                    "an allocation of {bytes} bytes while recording a graph: allocate before capturing"
                ),
            });
        }
        let class = if self.caching {
            size_class(bytes)
        } else {
            bytes
        };
        let mut st = self.state();
        if let Some(block) = st.free.get_mut(&class).and_then(Vec::pop) {
            st.stats.hits += 1;
            st.stats.cached -= class;
            st.stats.in_use += class;
            return Ok(block);
        }
        // SAFETY: device bytes of any value are valid `u8`s; nothing reads the block
        // before a kernel or a copy writes it (or the reader accepts unspecified values).
        let block = match unsafe { self.stream.alloc::<u8>(class) } {
            Ok(b) => b,
            Err(_) if st.stats.cached > 0 => {
                // Out of memory with blocks cached: give them back and try once more.
                st.free.clear();
                st.stats.cached = 0;
                // SAFETY: as above.
                unsafe { self.stream.alloc::<u8>(class) }
                    .map_err(|e| CudaError::driver("cuMemAllocAsync", e))?
            }
            Err(e) => return Err(CudaError::driver("cuMemAllocAsync", e)),
        };
        st.stats.misses += 1;
        st.stats.in_use += class;
        Ok(block)
    }

    fn give_back(&self, block: CudaSlice<u8>) {
        if self.capturing.load(Ordering::Acquire) {
            // The graph being recorded may address it: never reuse or free it.
            std::mem::forget(block);
            return;
        }
        let class = block.len();
        let mut st = self.state();
        st.stats.in_use -= class;
        if self.caching {
            st.stats.cached += class;
            st.free.entry(class).or_default().push(block);
        }
    }

    pub(crate) fn stats(&self) -> MemoryStats {
        self.state().stats
    }

    /// Returns every cached block to the driver.
    pub(crate) fn release_cached(&self) {
        let mut st = self.state();
        st.free.clear();
        st.stats.cached = 0;
    }
}

/// `len` elements of `T` on one GPU, from its caching allocator. Dropping the buffer
/// returns its memory to the allocator. Made by [`super::Gpu::alloc`],
/// [`super::Gpu::zeros`] and [`super::Gpu::upload`].
pub struct GpuBuf<T: GpuElem> {
    /// `None` when `len == 0`.
    block: Option<CudaSlice<u8>>,
    len: usize,
    pool: Arc<Pool>,
    _elem: PhantomData<T>,
}

impl<T: GpuElem> std::fmt::Debug for GpuBuf<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuBuf")
            .field("elem", &std::any::type_name::<T>())
            .field("len", &self.len)
            .field("device", &self.pool.ordinal)
            .finish()
    }
}

impl<T: GpuElem> GpuBuf<T> {
    /// `len` elements with unspecified contents.
    pub(crate) fn new(pool: &Arc<Pool>, len: usize) -> crate::Result<GpuBuf<T>> {
        let bytes = len
            .checked_mul(size_of::<T>())
            .ok_or_else(|| crate::KernelError::Shape {
                op: "GpuBuf::new",
                msg: format!("{len} elements of {} bytes overflow usize", size_of::<T>()),
            })?;
        let block = if len == 0 {
            None
        } else {
            Some(pool.take(bytes)?)
        };
        Ok(GpuBuf {
            block,
            len,
            pool: pool.clone(),
            _elem: PhantomData,
        })
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The ordinal of the device the buffer is on.
    pub fn ordinal(&self) -> usize {
        self.pool.ordinal
    }

    /// The device address, as a kernel argument.
    pub(crate) fn arg(&self) -> Arg {
        let ptr = match &self.block {
            Some(b) => b.device_ptr(self.pool.stream()).0,
            None => 0,
        };
        Arg::Ptr {
            ptr,
            ordinal: self.pool.ordinal,
        }
    }

    /// This buffer's bytes (the first `len · size_of::<T>()` of its block).
    fn bytes(&self) -> Option<cudarc::driver::CudaView<'_, u8>> {
        let n = self.len * size_of::<T>();
        self.block.as_ref().map(|b| b.slice(..n))
    }

    /// Copies `host` into the buffer (the lengths must be equal).
    pub fn copy_from_host(&mut self, host: &[T]) -> crate::Result<()> {
        crate::error::check_len("GpuBuf::copy_from_host", "host", host.len(), self.len)?;
        let n = self.len * size_of::<T>();
        if let Some(b) = self.block.as_mut() {
            self.pool
                .stream()
                .memcpy_htod(bytemuck::cast_slice::<T, u8>(host), &mut b.slice_mut(..n))
                .map_err(|e| CudaError::driver("cuMemcpyHtoDAsync", e))?;
        }
        Ok(())
    }

    /// Copies the buffer into `host` (the lengths must be equal). Waits for the copy,
    /// and so for all the work enqueued before it on the device's stream.
    pub fn copy_to_host(&self, host: &mut [T]) -> crate::Result<()> {
        crate::error::check_len("GpuBuf::copy_to_host", "host", host.len(), self.len)?;
        if let Some(src) = self.bytes() {
            let stream = self.pool.stream();
            stream
                .memcpy_dtoh(&src, bytemuck::cast_slice_mut::<T, u8>(host))
                .map_err(|e| CudaError::driver("cuMemcpyDtoHAsync", e))?;
            // A copy to pageable memory returns when done; the sync makes that explicit
            // and surfaces any error of earlier kernels here.
            stream
                .synchronize()
                .map_err(|e| CudaError::driver("cuStreamSynchronize", e))?;
        }
        Ok(())
    }

    /// The buffer's elements, copied to the host.
    pub fn to_vec(&self) -> crate::Result<Vec<T>> {
        let mut v = vec![T::zeroed(); self.len];
        self.copy_to_host(&mut v)?;
        Ok(v)
    }

    /// Sets every element's bits to zero.
    pub fn fill_zero(&mut self) -> crate::Result<()> {
        let n = self.len * size_of::<T>();
        if let Some(b) = self.block.as_mut() {
            self.pool
                .stream()
                .memset_zeros(&mut b.slice_mut(..n))
                .map_err(|e| CudaError::driver("cuMemsetD8Async", e))?;
        }
        Ok(())
    }

    /// Copies `len` elements of `src` starting at element `from` into this buffer
    /// starting at element `at` (a device-to-device copy on the device's stream; both
    /// buffers must be on the same device, the ranges inside them).
    pub fn copy_range_from(
        &mut self,
        at: usize,
        src: &GpuBuf<T>,
        from: usize,
        len: usize,
    ) -> crate::Result<()> {
        let op = "GpuBuf::copy_range_from";
        let fits = |start: usize, total: usize| start.checked_add(len).is_some_and(|e| e <= total);
        if !fits(at, self.len) || !fits(from, src.len) {
            return Err(crate::KernelError::Shape {
                op,
                msg: format!(
                    "{len} elements from {from} of {} into {at} of {}: out of range",
                    src.len, self.len
                ),
            });
        }
        if src.ordinal() != self.ordinal() {
            return Err(crate::KernelError::Shape {
                op,
                msg: format!(
                    "source on cuda:{}, destination on cuda:{}",
                    src.ordinal(),
                    self.ordinal()
                ),
            });
        }
        let (sz, n) = (size_of::<T>(), len * size_of::<T>());
        if let (Some(s), Some(d), true) = (src.block.as_ref(), self.block.as_mut(), n > 0) {
            let s = s.slice(from * sz..from * sz + n);
            self.pool
                .stream()
                .memcpy_dtod(&s, &mut d.slice_mut(at * sz..at * sz + n))
                .map_err(|e| CudaError::driver("cuMemcpyDtoDAsync", e))?;
        }
        Ok(())
    }

    /// A new buffer on the same device with the same elements (a device-to-device copy).
    pub fn try_clone(&self) -> crate::Result<GpuBuf<T>> {
        let mut out = GpuBuf::new(&self.pool, self.len)?;
        if let (Some(src), Some(dst)) = (self.bytes(), out.block.as_mut()) {
            let n = src.len();
            self.pool
                .stream()
                .memcpy_dtod(&src, &mut dst.slice_mut(..n))
                .map_err(|e| CudaError::driver("cuMemcpyDtoDAsync", e))?;
        }
        Ok(out)
    }
}

impl<T: GpuElem> Drop for GpuBuf<T> {
    fn drop(&mut self) {
        if let Some(block) = self.block.take() {
            self.pool.give_back(block);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_classes_hold_the_request_and_waste_less_than_an_eighth() {
        assert_eq!(size_class(0), MIN_BLOCK);
        assert_eq!(size_class(MIN_BLOCK), MIN_BLOCK);
        assert_eq!(size_class(MIN_BLOCK + 1), 2 * MIN_BLOCK);
        assert_eq!(size_class(1 << 20), 1 << 20);
        assert_eq!(size_class((1 << 20) + 1), (1 << 20) + (1 << 17));
        for bytes in (1..5000).map(|i| i * 997 + 13) {
            let c = size_class(bytes);
            assert!(c >= bytes, "{bytes} -> {c}");
            assert!(c - bytes < (bytes / 8).max(MIN_BLOCK), "{bytes} -> {c}");
            assert_eq!(c % MIN_BLOCK, 0);
            assert_eq!(size_class(c), c, "a class is its own class");
        }
    }
}
