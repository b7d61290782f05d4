//! Operations on tensors: check shapes, dtypes and devices, then call gpt2-kernels.
