//! The device runtime: discovery that never panics, one context and one stream per
//! device ([`Gpu`]), the module cache, and the launcher every op goes through.
//!
//! Everything of a device runs on its one stream, in order. That is what makes the
//! caching allocator's reuse safe, and why cudarc's per-buffer event tracking (which
//! synchronises buffers across streams) is switched off.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use cudarc::driver::{CudaContext, CudaFunction, CudaModule, LaunchConfig, PushKernelArg};
use cudarc::nvrtc::Ptx;

use super::CudaError;
use super::alloc::{GpuBuf, GpuElem, MemoryStats, Pool};
use super::module::{Arg, Module, check_target};

/// Threads per block of every kernel (their `BLOCK`).
pub(crate) const BLOCK: u32 = 256;

/// Most blocks an elementwise (grid-stride) launch uses: enough to fill any current GPU.
const MAX_BLOCKS: u64 = 1 << 16;

/// Dynamic shared memory a kernel may use without raising its limit (48 KiB).
const DEFAULT_SMEM_LIMIT: u32 = 48 << 10;

/// One GPU: its context, its stream, its loaded modules and its caching allocator.
/// Get the shared handle of a device with [`Gpu::get`].
pub struct Gpu {
    ordinal: usize,
    name: String,
    cc: (u32, u32),
    sm_count: u32,
    pool: Arc<Pool>,
    modules: Mutex<HashMap<&'static str, Arc<CudaModule>>>,
    functions: Mutex<HashMap<&'static str, Function>>,
    ctx: Arc<CudaContext>,
}

/// A loaded kernel, the byte sizes of its parameters (from its PTX), and the dynamic
/// shared memory it has been allowed so far.
#[derive(Clone)]
struct Function {
    func: CudaFunction,
    params: Arc<[usize]>,
    smem_limit: Arc<AtomicU32>,
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Gpu(cuda:{} {} sm_{}{})",
            self.ordinal, self.name, self.cc.0, self.cc.1
        )
    }
}

/// Errors from discovery are [`CudaError::Unavailable`]: "no usable device", with why.
fn unavailable(what: &str, e: cudarc::driver::DriverError) -> CudaError {
    CudaError::Unavailable(format!("{what}: {e:?}"))
}

/// Checks that the NVIDIA driver library can be loaded. cudarc panics on the first driver
/// call when `libcuda` is missing; this check comes first and never does.
fn driver_present() -> Result<(), CudaError> {
    // SAFETY: only tries to `dlopen` the driver library by its usual names.
    if unsafe { cudarc::driver::sys::is_culib_present() } {
        Ok(())
    } else {
        Err(CudaError::Unavailable(
            "the NVIDIA driver library (libcuda.so) was not found".into(),
        ))
    }
}

impl Gpu {
    /// The number of CUDA devices; an error (never a panic) when there is no driver.
    pub fn device_count() -> Result<usize, CudaError> {
        driver_present()?;
        CudaContext::device_count()
            .map(|n| n.max(0) as usize)
            .map_err(|e| unavailable("cuInit / cuDeviceGetCount", e))
    }

    /// The shared handle of device `ordinal`, opened on first use. Returns
    /// [`CudaError::Unavailable`] when there is no driver, no device, or no such ordinal.
    pub fn get(ordinal: usize) -> Result<Arc<Gpu>, CudaError> {
        static DEVICES: Mutex<BTreeMap<usize, Arc<Gpu>>> = Mutex::new(BTreeMap::new());
        let mut devices = DEVICES.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(gpu) = devices.get(&ordinal) {
            return Ok(gpu.clone());
        }
        let gpu = Arc::new(Gpu::open(ordinal)?);
        devices.insert(ordinal, gpu.clone());
        Ok(gpu)
    }

    fn open(ordinal: usize) -> Result<Gpu, CudaError> {
        let count = Gpu::device_count()?;
        if ordinal >= count {
            return Err(CudaError::Unavailable(format!(
                "cuda:{ordinal} requested, the driver reports {count} device(s)"
            )));
        }
        let ctx = CudaContext::new(ordinal).map_err(|e| unavailable("cuCtx (primary)", e))?;
        // SAFETY: event tracking is off before any buffer exists, and every buffer and
        // launch of this context uses the one stream below, which orders them.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx
            .new_stream()
            .map_err(|e| CudaError::driver("cuStreamCreate", e))?;
        let name = ctx
            .name()
            .map_err(|e| CudaError::driver("cuDeviceGetName", e))?;
        let (major, minor) = ctx
            .compute_capability()
            .map_err(|e| CudaError::driver("cuDeviceGetAttribute", e))?;
        let sm_count = ctx
            .attribute(
                cudarc::driver::sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT,
            )
            .map_err(|e| CudaError::driver("cuDeviceGetAttribute", e))?;
        Ok(Gpu {
            ordinal,
            name,
            cc: (major.max(0) as u32, minor.max(0) as u32),
            sm_count: sm_count.max(1) as u32,
            pool: Arc::new(Pool::new(stream, ordinal)),
            modules: Mutex::default(),
            functions: Mutex::default(),
            ctx,
        })
    }

    /// The device ordinal.
    pub fn ordinal(&self) -> usize {
        self.ordinal
    }

    /// The device's name, e.g. `"NVIDIA H200"`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The compute capability `(major, minor)`, e.g. `(9, 0)` for Hopper.
    pub fn compute_capability(&self) -> (u32, u32) {
        self.cc
    }

    /// The number of streaming multiprocessors (132 on an H100 or H200 SXM).
    pub fn multiprocessor_count(&self) -> u32 {
        self.sm_count
    }

    /// Waits for all work enqueued on the device, returning the first error of any of it.
    pub fn synchronize(&self) -> crate::Result<()> {
        self.pool
            .stream()
            .synchronize()
            .map_err(|e| CudaError::driver("cuStreamSynchronize", e).into())
    }

    /// A buffer of `len` elements with unspecified contents (usually reused memory).
    pub fn alloc<T: GpuElem>(&self, len: usize) -> crate::Result<GpuBuf<T>> {
        GpuBuf::new(&self.pool, len)
    }

    /// A buffer of `len` elements whose bits are all zero.
    pub fn zeros<T: GpuElem>(&self, len: usize) -> crate::Result<GpuBuf<T>> {
        let mut buf = self.alloc(len)?;
        buf.fill_zero()?;
        Ok(buf)
    }

    /// A buffer with a copy of `host`.
    pub fn upload<T: GpuElem>(&self, host: &[T]) -> crate::Result<GpuBuf<T>> {
        let mut buf = self.alloc(host.len())?;
        buf.copy_from_host(host)?;
        Ok(buf)
    }

    /// What the caching allocator holds.
    pub fn memory_stats(&self) -> MemoryStats {
        self.pool.stats()
    }

    /// Returns the allocator's cached (free) blocks to the driver.
    pub fn release_cached(&self) {
        self.pool.release_cached();
    }

    /// Kernel `name` of `module`, loading the module on first use.
    fn function(&self, module: &'static Module, name: &'static str) -> Result<Function, CudaError> {
        let mut functions = self
            .functions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(f) = functions.get(name) {
            return Ok(f.clone());
        }
        let m = self.module(module)?;
        let params = module.params(name).ok_or_else(|| CudaError::Module {
            module: module.name,
            msg: format!("no kernel `{name}`"),
        })?;
        let func = m
            .load_function(name)
            .map_err(|e| CudaError::driver("cuModuleGetFunction", e))?;
        let f = Function {
            func,
            params: params.into(),
            smem_limit: Arc::new(AtomicU32::new(DEFAULT_SMEM_LIMIT)),
        };
        functions.insert(name, f.clone());
        Ok(f)
    }

    /// `module`, loaded into the context on first use (after checking its `.target`).
    fn module(&self, module: &'static Module) -> Result<Arc<CudaModule>, CudaError> {
        let mut modules = self.modules.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(m) = modules.get(module.name) {
            return Ok(m.clone());
        }
        check_target(module, self.cc).map_err(|msg| CudaError::Module {
            module: module.name,
            msg,
        })?;
        let m = self
            .ctx
            .load_module(Ptx::from_src(module.ptx))
            .map_err(|e| CudaError::Module {
                module: module.name,
                msg: format!("the driver refused it: {e:?}"),
            })?;
        modules.insert(module.name, m.clone());
        Ok(m)
    }

    /// Launches kernel `name` of `module` on this device's stream. Refuses buffers of
    /// another device and argument lists that do not match the kernel's PTX parameters.
    pub(crate) fn launch(
        &self,
        module: &'static Module,
        name: &'static str,
        cfg: LaunchConfig,
        args: &[Arg],
    ) -> crate::Result<()> {
        let f = self.function(module, name)?;
        let sizes: Vec<usize> = args.iter().map(Arg::size).collect();
        if *sizes != *f.params {
            let msg = format!("argument sizes {sizes:?}, the PTX declares {:?}", f.params);
            return Err(CudaError::Launch { kernel: name, msg }.into());
        }
        if cfg.shared_mem_bytes > f.smem_limit.load(Ordering::Relaxed) {
            // Past 48 KiB a kernel's dynamic shared memory must be allowed explicitly.
            let attr = cudarc::driver::sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES;
            f.func
                .set_attribute(attr, cfg.shared_mem_bytes as i32)
                .map_err(|e| CudaError::driver("cuFuncSetAttribute", e))?;
            f.smem_limit
                .fetch_max(cfg.shared_mem_bytes, Ordering::Relaxed);
        }
        let stream = self.pool.stream();
        let mut launch = stream.launch_builder(&f.func);
        for (i, a) in args.iter().enumerate() {
            match a {
                Arg::Ptr { ordinal, .. } if *ordinal != self.ordinal => {
                    let msg = format!(
                        "argument {i} is a buffer on cuda:{ordinal}, the launch is on cuda:{}",
                        self.ordinal
                    );
                    return Err(CudaError::Launch { kernel: name, msg }.into());
                }
                Arg::Ptr { ptr, .. } => launch.arg(ptr),
                Arg::U32(x) => launch.arg(x),
                Arg::U64(x) => launch.arg(x),
                Arg::F32(x) => launch.arg(x),
                Arg::TensorMap(x) => launch.arg(x),
            };
        }
        // SAFETY: the arguments match the kernel's PTX parameters in number and size
        // (checked above), every pointer is a live buffer of this device (it is borrowed
        // by the caller for the call; the stream orders the kernel before any later reuse
        // of its memory), and each op checks that the sizes it passes fit its buffers.
        unsafe { launch.launch(cfg) }.map_err(|e| CudaError::driver("cuLaunchKernel", e))?;
        Ok(())
    }
}

/// Launches recorded once by [`Gpu::capture`] and replayed as one CUDA graph: the
/// driver runs them back to back without the host launching each (a decoding step is
/// ~150 small kernels, which would otherwise leave the GPU waiting on the host).
pub struct GpuGraph {
    graph: cudarc::driver::CudaGraph,
}

impl std::fmt::Debug for GpuGraph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GpuGraph")
    }
}

impl GpuGraph {
    /// Replays the recorded launches on the device's stream, after everything queued
    /// before (e.g. the copies that set this step's inputs).
    ///
    /// # Safety
    /// Every buffer the recorded launches use must still be alive where it was at
    /// capture (the graph holds raw device addresses), and must not be in use by another
    /// thread's work.
    pub unsafe fn launch(&self) -> crate::Result<()> {
        self.graph
            .launch()
            .map_err(|e| CudaError::driver("cuGraphLaunch", e).into())
    }
}

impl Gpu {
    /// Records the launches `record` makes into a [`GpuGraph`] instead of running them.
    /// `record` must only launch kernels and copy between existing device buffers, with
    /// every module already loaded (run the same work once before). Allocating a buffer
    /// during the capture is an error of ours; uploading, downloading or synchronising
    /// one of the driver's, returned here; a buffer dropped during the capture is never
    /// reused (the graph may address it). The stream leaves capture mode whatever
    /// happens. One thread at a time: the device's one stream is being recorded.
    pub fn capture<E: From<crate::KernelError>>(
        &self,
        record: impl FnOnce() -> Result<(), E>,
    ) -> Result<GpuGraph, E> {
        use cudarc::driver::sys::{CUgraphInstantiate_flags, CUstreamCaptureMode};
        let fail = |e: CudaError| E::from(e.into());
        let stream = self.pool.stream();
        stream
            .begin_capture(CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)
            .map_err(|e| fail(CudaError::driver("cuStreamBeginCapture", e)))?;
        self.pool.capturing.store(true, Ordering::Release);
        let recorded = record();
        self.pool.capturing.store(false, Ordering::Release);
        let ended = stream.end_capture(CUgraphInstantiate_flags(0));
        recorded?;
        let graph = ended
            .map_err(|e| fail(CudaError::driver("cuStreamEndCapture", e)))?
            .ok_or_else(|| {
                fail(CudaError::Launch {
                    kernel: "graph capture",
                    msg: "the driver returned no graph (the capture was invalidated)".into(),
                })
            })?;
        Ok(GpuGraph { graph })
    }

    /// Launches an elementwise kernel `(buffers..., u64 n)` over `n` elements (nothing
    /// to do when `n == 0`).
    pub(crate) fn launch_elementwise(
        &self,
        module: &'static Module,
        name: &'static str,
        buffers: &[Arg],
        n: usize,
    ) -> crate::Result<()> {
        if n == 0 {
            return Ok(());
        }
        let args: Vec<Arg> = buffers
            .iter()
            .copied()
            .chain([Arg::U64(n as u64)])
            .collect();
        self.launch(module, name, elementwise(n), &args)
    }
}

/// A 1-D grid-stride launch over `n` elements.
pub(crate) fn elementwise(n: usize) -> LaunchConfig {
    let blocks = (n as u64).div_ceil(u64::from(BLOCK)).clamp(1, MAX_BLOCKS);
    LaunchConfig {
        grid_dim: (blocks as u32, 1, 1),
        block_dim: (BLOCK, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// A launch of `blocks` blocks (e.g. one per row).
pub(crate) fn blocks(blocks: u32) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (BLOCK, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// `x` as a kernel's `unsigned int` size, or a `Shape` error naming `what`.
pub(crate) fn dim(op: &'static str, what: &str, x: usize) -> crate::Result<u32> {
    u32::try_from(x).map_err(|_| crate::KernelError::Shape {
        op,
        msg: format!("{what} = {x} does not fit the kernel's 32-bit size"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs on any machine: without a driver both calls return `Unavailable` (this is the
    /// path CI takes), with one there is still no device `usize::MAX`.
    #[test]
    fn discovery_returns_errors_instead_of_panicking() {
        match Gpu::device_count() {
            Ok(_) | Err(CudaError::Unavailable(_)) => {}
            Err(e) => panic!("device_count: {e}"),
        }
        match Gpu::get(usize::MAX) {
            Err(CudaError::Unavailable(msg)) => assert!(!msg.is_empty()),
            other => panic!("Gpu::get(usize::MAX): {other:?}"),
        }
    }

    #[test]
    fn launch_shapes_cover_the_work() {
        assert_eq!(elementwise(1).grid_dim, (1, 1, 1));
        assert_eq!(elementwise(257).grid_dim, (2, 1, 1));
        // Past 2^16 blocks the grid stops growing and the kernels' loops stride.
        assert_eq!(elementwise(1 << 30).grid_dim, (1 << 16, 1, 1));
        assert!(dim("op", "x", 1 << 32).is_err());
        assert_eq!(dim("op", "x", 7).unwrap(), 7);
    }
}
