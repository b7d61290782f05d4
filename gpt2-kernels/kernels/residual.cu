// Residual add, as gpt2-kernels/src/cpu/residual.rs:
//   forward:  out = a + b
//   backward: da += dout, db += dout
#include "common.cuh"

template <typename T>
__device__ void forward(T* out, const T* a, const T* b, u64 n) {
    GRID_STRIDE(i, n) store(&out[i], load(&a[i]) + load(&b[i]));
}

template <typename T>
__device__ void backward(T* da, T* db, const T* dout, u64 n) {
    GRID_STRIDE(i, n) {
        const float g = load(&dout[i]);
        store(&da[i], load(&da[i]) + g);
        store(&db[i], load(&db[i]) + g);
    }
}

#define INSTANTIATE(T, S)                                                                   \
    extern "C" __global__ void __launch_bounds__(BLOCK)                                     \
        residual_forward_##S(T* out, const T* a, const T* b, u64 n) {                       \
        forward(out, a, b, n);                                                              \
    }                                                                                       \
    extern "C" __global__ void __launch_bounds__(BLOCK)                                     \
        residual_backward_##S(T* da, T* db, const T* dout, u64 n) {                         \
        backward(da, db, dout, n);                                                          \
    }
INSTANTIATE(float, f32)
INSTANTIATE(bf16, bf16)
