//! Tests of every CPU kernel except matmul (which has its own), through the public API:
//! each kernel against its naive reference (in `f64` where rounding matters) on
//! awkward sizes, on every instruction set the CPU has; each backward against central
//! finite differences of an `f64` forward; bitwise determinism over pools of 1, 2 and
//! 3 threads; and typed errors for bad arguments.

mod common;

mod adamw;
mod attention;
mod cast;
mod crossentropy;
mod dropout;
mod embedding;
mod gelu;
mod layernorm;
mod residual;
mod softmax;
mod torch_golden;
