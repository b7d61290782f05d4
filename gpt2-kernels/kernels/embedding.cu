// Token + position embedding, as gpt2-kernels/src/cpu/embedding.rs.
//   forward:  out[n] = wte[tokens[n]] + wpe[positions[n]]        out (N, C)
//   backward: table[id] += sum of dout[n] over the n with ids[n] == id, in increasing n
// The backward runs once per table (wte by tokens, wpe by positions). The host groups
// the rows by id (a counting sort, as the CPU does) so that each table row is owned by
// one thread per column: no atomics, the same sum order on every run.
#include "common.cuh"

// One block per row n. Ids past the tables (v rows of wte, max_t of wpe) give a row of
// NaN instead of an out-of-bounds read: the host checks ids it holds, but a graph replay
// reads them from the device.
template <typename T>
__device__ void forward(T* out, const u32* tokens, const u32* positions, const T* wte,
                        const T* wpe, u32 c, u32 v, u32 max_t) {
    const u64 n = blockIdx.x;
    if (tokens[n] >= v || positions[n] >= max_t) {
        for (u32 j = threadIdx.x; j < c; j += blockDim.x) store(&out[n * c + j], NAN);
        return;
    }
    const T* te = wte + (u64)tokens[n] * c;
    const T* pe = wpe + (u64)positions[n] * c;
    for (u32 j = threadIdx.x; j < c; j += blockDim.x) store(&out[n * c + j], load(&te[j]) + load(&pe[j]));
}

// groups: [starts (G + 1) | ids (G) | rows (N)]: group g adds dout rows
// rows[starts[g] .. starts[g + 1]] into table row ids[g]. Grid (G, ceil(C / BLOCK)).
template <typename T>
__device__ void backward(T* table, const T* dout, const u32* groups, u32 n_groups, u32 c) {
    const u32 g = blockIdx.x;
    const u32 j = blockIdx.y * blockDim.x + threadIdx.x;
    if (g >= n_groups || j >= c) return;
    const u32* starts = groups;
    const u32* ids = groups + n_groups + 1;
    const u32* rows = ids + n_groups;
    T* dst = &table[(u64)ids[g] * c + j];
    float acc = load(dst);
    for (u32 k = starts[g]; k < starts[g + 1]; k++) acc += load(&dout[(u64)rows[k] * c + j]);
    store(dst, acc);
}

#define INSTANTIATE(T, S)                                                                    \
    extern "C" __global__ void __launch_bounds__(BLOCK)                                      \
        embedding_forward_##S(T* out, const u32* tokens, const u32* positions, const T* wte, \
                              const T* wpe, u32 c, u32 v, u32 max_t) {                       \
        forward(out, tokens, positions, wte, wpe, c, v, max_t);                              \
    }                                                                                        \
    extern "C" __global__ void __launch_bounds__(BLOCK)                                      \
        embedding_backward_##S(T* table, const T* dout, const u32* groups, u32 n_groups,    \
                               u32 c) {                                                      \
        backward(table, dout, groups, n_groups, c);                                          \
    }
INSTANTIATE(float, f32)
INSTANTIATE(bf16, bf16)
