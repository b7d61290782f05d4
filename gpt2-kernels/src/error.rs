//! The one error type of gpt2-kernels.

/// What went wrong in a kernel call. Kernels never panic on bad arguments: they check
/// slice lengths and index ranges first and return one of these.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KernelError {
    /// A slice does not have the length that the sizes passed to the kernel imply.
    #[error("{op}: `{name}` has {got} elements, expected {expected}")]
    Length {
        /// The kernel, e.g. `"layernorm::forward"`.
        op: &'static str,
        /// The argument, e.g. `"inp"`.
        name: &'static str,
        /// Its length.
        got: usize,
        /// The length the sizes imply.
        expected: usize,
    },
    /// An index stored in the data (a token id, a position, a target) is out of range.
    #[error("{op}: {what} {index} at row {row} is out of range (must be < {bound})")]
    Index {
        /// The kernel.
        op: &'static str,
        /// What the index is, e.g. `"token id"`.
        what: &'static str,
        /// The offending value.
        index: usize,
        /// Where it was found.
        row: usize,
        /// The exclusive upper bound.
        bound: usize,
    },
    /// The sizes themselves are inconsistent (e.g. `C` not divisible by `NH`).
    #[error("{op}: {msg}")]
    Shape {
        /// The kernel.
        op: &'static str,
        /// What is inconsistent.
        msg: String,
    },
    /// The values cannot be used (e.g. a logits row with a NaN, or with every token
    /// filtered out).
    #[error("{op}: {msg}")]
    Value {
        /// The kernel.
        op: &'static str,
        /// What is wrong with the values.
        msg: String,
    },
    /// The GPU failed, or there is none (see [`crate::cuda::CudaError`]).
    #[error(transparent)]
    Cuda(#[from] crate::cuda::CudaError),
}

/// `Result` with [`KernelError`].
pub type Result<T> = std::result::Result<T, KernelError>;

/// Checks that `got == expected`, naming the op and argument in the error.
#[inline]
pub(crate) fn check_len(
    op: &'static str,
    name: &'static str,
    got: usize,
    expected: usize,
) -> Result<()> {
    if got == expected {
        Ok(())
    } else {
        Err(KernelError::Length {
            op,
            name,
            got,
            expected,
        })
    }
}
