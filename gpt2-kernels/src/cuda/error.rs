//! [`CudaError`]: what can go wrong on the GPU. Defined in every build (not only with the
//! `cuda` feature) so that [`crate::KernelError`] is the same type whichever features are
//! enabled; only the `cuda` feature ever produces one.

/// A failure of the CUDA runtime: no usable device, a driver call that failed, a PTX
/// module that does not load, or a launch whose operands do not fit the kernel.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CudaError {
    /// There is no device to run on: built without the `cuda` feature, no NVIDIA driver
    /// (`libcuda`), no GPU, or an ordinal past the last device. The message says which.
    #[error("no CUDA device: {0}")]
    Unavailable(String),
    /// A CUDA driver call returned an error (out of memory, a faulting kernel, ...).
    #[error("CUDA driver call `{call}` failed: {msg} (CUresult {code})")]
    Driver {
        /// The driver call, e.g. `"cuLaunchKernel"`.
        call: &'static str,
        /// The driver's `CUresult` code.
        code: u32,
        /// The driver's name and description of the error.
        msg: String,
    },
    /// A PTX module could not be used on this device (its target needs another compute
    /// capability, or the driver rejected it, e.g. a too-new PTX ISA version).
    #[error("PTX module `{module}`: {msg}")]
    Module {
        /// The module, e.g. `"layernorm"`.
        module: &'static str,
        /// What is wrong.
        msg: String,
    },
    /// The operands of a launch do not fit the kernel: a buffer on another device, or an
    /// argument list that does not match the kernel's PTX parameters.
    #[error("launching `{kernel}`: {msg}")]
    Launch {
        /// The kernel, e.g. `"layernorm_forward_f32"`.
        kernel: &'static str,
        /// What is wrong.
        msg: String,
    },
}

#[cfg(feature = "cuda")]
impl CudaError {
    /// A [`CudaError::Driver`] for a failed `call`.
    pub(crate) fn driver(call: &'static str, e: cudarc::driver::DriverError) -> CudaError {
        CudaError::Driver {
            call,
            code: e.0 as u32,
            msg: format!("{e:?}"),
        }
    }
}
