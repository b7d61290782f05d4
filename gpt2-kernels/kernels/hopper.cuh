// The Hopper (sm_90a) instructions of matmul_v4_wgmma.sm90a.cu, one PTX instruction
// (of ISA 8.0) per function: the bulk tensor copy engine (TMA: cp.async.bulk.tensor),
// transaction barriers (mbarrier with expect_tx), warpgroup matrix multiply-accumulate
// (wgmma.mma_async) and register reallocation between warpgroups (setmaxnreg). How the
// copies lay out shared memory and how wgmma reads it is in matmul_v4_wgmma.sm90a.cu.
#pragma once
#include "common.cuh"

// A CUtensorMap (cuda.h), passed by value as a __grid_constant__ kernel parameter.
struct __align__(64) TensorMap {
    u64 opaque[16];
};

// ---- mbarrier: a phase completes when `count` arrivals and the expected bytes are in --
__device__ __forceinline__ void mbar_init(u64* bar, u32 count) {
    asm volatile("mbarrier.init.shared.b64 [%0], %1;\n" ::"r"(smem_addr(bar)), "r"(count));
}
// Makes the barriers' initialisation visible to the copy engine (the async proxy).
__device__ __forceinline__ void mbar_fence_init() {
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}
// One arrival that also announces `bytes` of TMA transactions for the current phase.
__device__ __forceinline__ void mbar_arrive_expect_tx(u64* bar, u32 bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared.b64 _, [%0], %1;\n" ::"r"(smem_addr(bar)),
                 "r"(bytes)
                 : "memory");
}
__device__ __forceinline__ void mbar_arrive(u64* bar) {
    asm volatile("mbarrier.arrive.shared.b64 _, [%0];\n" ::"r"(smem_addr(bar)) : "memory");
}
// Waits until the phase of parity `parity` has completed. A phase that never completes
// is a bug (a wrong byte count, a lost arrival): after about two seconds the kernel traps,
// which the host sees as a launch error, instead of hanging the device.
__device__ __forceinline__ void mbar_wait(u64* bar, u32 parity) {
    u32 done = 0;
    u64 start = 0;
    for (;;) {
        asm volatile(
            "{\n.reg .pred p;\n"
            "mbarrier.try_wait.parity.shared.b64 p, [%1], %2;\n"
            "selp.u32 %0, 1, 0, p;\n}\n"
            : "=r"(done)
            : "r"(smem_addr(bar)), "r"(parity)
            : "memory");
        if (done) return;
        u64 now;
        asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now));
        if (start == 0) start = now;
        else if (now - start > 2000000000ull) __trap();
    }
}

// ---- TMA: one box of a 2-D tensor into shared memory, completing on `bar` ------------
// (x, y): the box's first element, x along the contiguous dimension.
__device__ __forceinline__ void tma_load_2d(void* dst, const TensorMap* map, u32 x, u32 y,
                                            u64* bar) {
    asm volatile(
        "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes"
        " [%0], [%1, {%2, %3}], [%4];\n" ::"r"(smem_addr(dst)),
        "l"(reinterpret_cast<u64>(map)), "r"(x), "r"(y), "r"(smem_addr(bar))
        : "memory");
}

// ---- wgmma ---------------------------------------------------------------------------
// Orders this thread's register writes (accumulators) before the next wgmma.
__device__ __forceinline__ void wgmma_fence() {
    asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
}
__device__ __forceinline__ void wgmma_commit() {
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}
template <int N>
__device__ __forceinline__ void wgmma_wait() {
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}

// d (64 x 128, f32) = A (64 x 16) · B (16 x 128) [+ d if accumulate], bf16 operands in
// shared memory. TRANS_A / TRANS_B: the operand is MN-major (transposed) in shared memory.
// Accumulator layout (PTX ISA, "wgmma .m64nNk16 register fragment layout for D"): thread
// x of the warpgroup, warp w = x / 32, lane l: d[4 i + 0, 1] = D[16 w + l / 4][8 i + 2 (l % 4)
// + 0, 1], d[4 i + 2, 3] = the same columns of row 16 w + l / 4 + 8.
#define WGMMA_D8(i)                                                                            \
    "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3]), "+f"(d[i + 4]), "+f"(d[i + 5]), \
        "+f"(d[i + 6]), "+f"(d[i + 7])
template <int TRANS_A, int TRANS_B>
__device__ __forceinline__ void wgmma_m64n128k16(float (&d)[64], u64 desc_a, u64 desc_b,
                                                 u32 accumulate) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
        "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
        "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
        "%64, %65, p, 1, 1, %67, %68;\n}\n"
        : WGMMA_D8(0), WGMMA_D8(8), WGMMA_D8(16), WGMMA_D8(24), WGMMA_D8(32), WGMMA_D8(40),
          WGMMA_D8(48), WGMMA_D8(56)
        : "l"(desc_a), "l"(desc_b), "r"(accumulate), "n"(TRANS_A), "n"(TRANS_B));
}

// Barrier `id` (1 to 15; 0 is __syncthreads) among `count` threads, whole warps: for a
// subset of the block, e.g. the consumer warpgroups once the producer has exited.
__device__ __forceinline__ void named_barrier(u32 id, u32 count) {
    asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(count) : "memory");
}

// ---- register reallocation between warpgroups -----------------------------------------
// Needs a register cap at entry (__launch_bounds__(threads, 1)); every warp of the
// warpgroup executes it.
template <int N>
__device__ __forceinline__ void setmaxnreg_dec() {
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(N));
}
template <int N>
__device__ __forceinline__ void setmaxnreg_inc() {
    asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(N));
}
