// Emulation of ../hopper.cuh (same functions, no PTX), as the PTX ISA describes them:
// transaction barriers (phases complete when the arrivals and the expected bytes are in),
// TMA tile copies with 128-byte swizzle and zero fill, and wgmma reading its operands
// through matrix descriptors (canonical layouts of "Shared Memory Matrix Layout").
// The tensor map is this emulator's own encoding (EmuTensorMap), made by emulate.cpp the
// way src/cuda/matmul/tma.rs asks cuTensorMapEncodeTiled for it.
#pragma once
#include "common.cuh"

struct __align__(64) TensorMap {
    u64 opaque[16];
};
// bf16, 2-D, 128-byte swizzle, zero fill out of bounds.
struct EmuTensorMap {
    const bf16* base;
    u64 dims[2];      // elements: contiguous dimension first
    u64 row_stride;   // bytes
    u32 box[2];       // elements
};
static_assert(sizeof(EmuTensorMap) <= sizeof(TensorMap), "fits the opaque map");

inline void mbar_init(u64* bar, u32 count) { emu_mbar_init(bar, count); }
inline void mbar_fence_init() {}
inline void mbar_arrive_expect_tx(u64* bar, u32 bytes) { emu_mbar_arrive(bar, bytes); }
inline void mbar_arrive(u64* bar) { emu_mbar_arrive(bar, 0); }
inline void mbar_wait(u64* bar, u32 parity) {
    for (u64 spins = 0; !emu_mbar_phase_done(bar, parity); spins++) {
        if (spins > (1u << 24)) __trap();  // a phase that never completes
        emu_yield();
    }
}

// The 128-byte swizzle on shared-memory byte offsets: chunk bits [4, 7) ^= row bits [7, 10).
inline size_t emu_swizzle128(size_t off) { return off ^ (((off >> 7) & 7) << 4); }
inline unsigned char* emu_smem_base() {
    return dynamic_smem() - __cvta_generic_to_shared(dynamic_smem());
}

inline void tma_load_2d(void* dst, const TensorMap* map, u32 x, u32 y, u64* bar) {
    EmuTensorMap m;
    std::memcpy(&m, map, sizeof(m));
    const size_t d0 = __cvta_generic_to_shared(dst);
    if (d0 % 1024 != 0) __trap();  // 128-byte swizzle needs 1024-byte aligned boxes
    unsigned char* smem = emu_smem_base();
    for (u32 r = 0; r < m.box[1]; r++)
        for (u32 e = 0; e < m.box[0]; e++) {
            const u64 gx = u64(x) + e, gy = u64(y) + r;
            bf16 v = {0};
            if (gx < m.dims[0] && gy < m.dims[1])
                std::memcpy(&v, reinterpret_cast<const unsigned char*>(m.base) + gy * m.row_stride +
                                    gx * 2, 2);
            std::memcpy(smem + emu_swizzle128(d0 + (size_t(r) * m.box[0] + e) * 2), &v, 2);
        }
    emu_mbar_complete_tx(bar, m.box[0] * m.box[1] * 2);
}

inline void wgmma_fence() {}
inline void wgmma_commit() {}
template <int N>
inline void wgmma_wait() {}

// Element (x, k) of a 128-byte-swizzled operand, x along m or n: K-major
// ((8,m),(8,2k)):((64,SBO),(1,8)) or MN-major ((8,8,m),(8,k)):((1,8,LBO),(64,SBO)) in
// bf16 elements (SBO, LBO in bytes), then the swizzle on the byte address.
inline float emu_operand(u64 desc, bool mn_major, u32 x, u32 k) {
    if (desc >> 62 != 1 || (desc >> 49 & 7) != 0) __trap();  // 128B swizzle, base offset 0
    const size_t start = (desc & 0x3FFF) << 4, lbo = (desc >> 16 & 0x3FFF) << 4,
                 sbo = (desc >> 32 & 0x3FFF) << 4;
    const size_t byte = mn_major
                            ? (x % 8) * 2 + (x / 8 % 8) * 16 + (x / 64) * lbo + (k % 8) * 128 +
                                  (k / 8) * sbo
                            : (x % 8) * 128 + (x / 8) * sbo + (k % 8) * 2 + (k / 8) * 16;
    bf16 v;
    std::memcpy(&v, emu_smem_base() + emu_swizzle128(start + byte), 2);
    return __bfloat162float(v);
}

// Each thread computes its own accumulator elements (the D layout of hopper.cuh).
template <int TRANS_A, int TRANS_B>
inline void wgmma_m64n128k16(float (&d)[64], u64 desc_a, u64 desc_b, u32 accumulate) {
    const u32 x = threadIdx.x % 128, w = x / 32, l = x % 32;
    for (u32 i = 0; i < 16; i++)
        for (u32 e = 0; e < 4; e++) {
            const u32 row = 16 * w + l / 4 + (e / 2) * 8, col = 8 * i + 2 * (l % 4) + e % 2;
            float s = 0.0f;
            for (u32 k = 0; k < 16; k++)
                s += emu_operand(desc_a, TRANS_A, row, k) * emu_operand(desc_b, TRANS_B, col, k);
            d[4 * i + e] = accumulate ? d[4 * i + e] + s : s;
        }
}

inline void named_barrier(u32 id, u32 count) { emu_named_barrier(id, count); }

template <int N>
inline void setmaxnreg_dec() {}
template <int N>
inline void setmaxnreg_inc() {}
