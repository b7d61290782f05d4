// Element type conversions, as gpt2-kernels/src/cpu/cast.rs: f32 -> bf16 rounds to
// nearest even (NaNs stay NaN), bf16 -> f32 is exact.
#include "common.cuh"

extern "C" __global__ void __launch_bounds__(BLOCK)
    cast_f32_to_bf16(bf16* out, const float* inp, u64 n) {
    GRID_STRIDE(i, n) store(&out[i], inp[i]);
}

extern "C" __global__ void __launch_bounds__(BLOCK)
    cast_bf16_to_f32(float* out, const bf16* inp, u64 n) {
    GRID_STRIDE(i, n) out[i] = load(&inp[i]);
}
