// Matmul, step 1 of the ladder: shared-memory tiling, one output per thread.
//
// C (m, n) = A (m, k) · B (k, n), then the epilogue of matmul.cuh. A and B are strided
// views, as gpt2-kernels/src/cpu/matmul.rs's MatRef: element (i, p) of A is
// a[i * a_rs + p * a_cs], element (p, j) of B is b[p * b_rs + j * b_cs], so one kernel
// serves every layout GPT-2 needs (forward with (K, N) or (N, K) weights, dX, dW).
//
// A block of TILE x TILE threads owns a TILE x TILE tile of C. For each slice of TILE
// values of k, every thread loads one element of A and one of B into shared memory, and
// then each thread reads a row of the A tile and a column of the B tile from there: every
// element loaded from global memory is used TILE times instead of once. That is the whole
// idea; the steps after this one keep more of the tile in registers (v2) and use the
// tensor cores (v3, v4).
#include "matmul.cuh"

#define TILE 16

template <typename T>
__device__ void tiled(Epilogue<T> ep, const T* a, const T* b, u32 m, u32 n, u32 k, u32 a_rs,
                      u32 a_cs, u32 b_rs, u32 b_cs) {
    __shared__ float as[TILE][TILE];      // as[ty][q] = A(i0 + ty, p0 + q)
    __shared__ float bs[TILE][TILE + 1];  // bs[q][tx] = B(p0 + q, j0 + tx)
    const u32 tx = threadIdx.x % TILE, ty = threadIdx.x / TILE;
    const u32 i = blockIdx.y * TILE + ty, j = blockIdx.x * TILE + tx;
    float acc = 0.0f;
    for (u32 p0 = 0; p0 < k; p0 += TILE) {
        // Zeros past the edges, so the inner loop needs no bounds checks.
        const u32 pa = p0 + tx, pb = p0 + ty;
        as[ty][tx] = i < m && pa < k ? load(&a[(u64)i * a_rs + (u64)pa * a_cs]) : 0.0f;
        bs[ty][tx] = pb < k && j < n ? load(&b[(u64)pb * b_rs + (u64)j * b_cs]) : 0.0f;
        __syncthreads();
#pragma unroll
        for (u32 q = 0; q < TILE; q++) acc += as[ty][q] * bs[q][tx];
        __syncthreads();  // before the next slice overwrites the tiles
    }
    if (i < m && j < n) ep.apply(i, j, acc);
}

// Grid (ceil(n / TILE), ceil(m / TILE)), TILE * TILE threads.
#define INSTANTIATE(T, S)                                                                  \
    extern "C" __global__ void __launch_bounds__(TILE * TILE)                               \
        matmul_v1_##S(T* c, T* pre, const T* a, const T* b, const T* bias, u32 m, u32 n,   \
                      u32 k, u32 a_rs, u32 a_cs, u32 b_rs, u32 b_cs, u32 ldc, u32 flags) { \
        tiled(Epilogue<T>{c, pre, bias, ldc, flags}, a, b, m, n, k, a_rs, a_cs, b_rs, b_cs); \
    }
INSTANTIATE(float, f32)
INSTANTIATE(bf16, bf16)
