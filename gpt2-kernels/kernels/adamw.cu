// AdamW on f32 master weights, as gpt2-kernels/src/cpu/adamw.rs (torch.optim.AdamW's
// order of operations; the per-step coefficients come from the host, computed in f64
// and rounded to f32 once, as on the CPU). Gradients are f32 or bf16; the step can also
// write a bf16 copy of the updated weights (for a bf16 forward pass).
//   step:           p *= decay; m += (1 - b1)(g - m); v = b2 v + (1 - b2) g^2;
//                   p -= step_size * m / (sqrt(v) / sqrt(bc2) + eps)
//   sum_of_squares: sum x^2 in f64: per-block partials, then one block adds them in order
//   scale:          x *= s
#include "common.cuh"

template <typename G>
__device__ void step(float* params, const G* grads, float* m, float* v, bf16* copy, u64 n,
                     float decay, float one_minus_beta1, float beta2, float one_minus_beta2,
                     float bias_correction2_sqrt, float step_size, float eps) {
    GRID_STRIDE(i, n) {
        const float g = load(&grads[i]);
        float p = params[i] * decay;
        const float mi = m[i] + one_minus_beta1 * (g - m[i]);
        const float vi = v[i] * beta2 + one_minus_beta2 * g * g;
        p -= step_size * mi / (sqrtf(vi) / bias_correction2_sqrt + eps);
        params[i] = p;
        m[i] = mi;
        v[i] = vi;
        if (copy) store(&copy[i], p);
    }
}

// partials[blockIdx.x] = this block's share of sum x^2 (grid-stride), in f64.
template <typename T>
__device__ void sum_of_squares(double* partials, const T* x, u64 n) {
    __shared__ double scratch[WARP];
    double acc = 0.0;
    GRID_STRIDE(i, n) {
        const double a = load(&x[i]);
        acc += a * a;
    }
    acc = block_sum(acc, scratch);
    if (threadIdx.x == 0) partials[blockIdx.x] = acc;
}

template <typename T>
__device__ void scale(T* x, float s, u64 n) {
    GRID_STRIDE(i, n) store(&x[i], load(&x[i]) * s);
}

// One block: total[0] = sum of partials[0..count), in a fixed order.
extern "C" __global__ void __launch_bounds__(BLOCK)
    adamw_sum_partials(double* total, const double* partials, u32 count) {
    __shared__ double scratch[WARP];
    double acc = 0.0;
    for (u32 j = threadIdx.x; j < count; j += blockDim.x) acc += partials[j];
    acc = block_sum(acc, scratch);
    if (threadIdx.x == 0) total[0] = acc;
}

#define INSTANTIATE(T, S)                                                                   \
    extern "C" __global__ void __launch_bounds__(BLOCK) adamw_step_##S(                     \
        float* params, const T* grads, float* m, float* v, bf16* copy, u64 n, float decay,  \
        float one_minus_beta1, float beta2, float one_minus_beta2,                          \
        float bias_correction2_sqrt, float step_size, float eps) {                          \
        step(params, grads, m, v, copy, n, decay, one_minus_beta1, beta2, one_minus_beta2,  \
             bias_correction2_sqrt, step_size, eps);                                        \
    }                                                                                       \
    extern "C" __global__ void __launch_bounds__(BLOCK)                                     \
        adamw_sum_of_squares_##S(double* partials, const T* x, u64 n) {                     \
        sum_of_squares(partials, x, n);                                                     \
    }                                                                                       \
    extern "C" __global__ void __launch_bounds__(BLOCK) adamw_scale_##S(T* x, float s, u64 n) { \
        scale(x, s, n);                                                                     \
    }
INSTANTIATE(float, f32)
INSTANTIATE(bf16, bf16)
