// Emulation of ../mma.cuh (same functions, same semantics, no PTX): cp.async copies are
// queued per thread and done at the wait that covers their group (the latest moment the
// hardware may finish them, so a missing wait reads stale data); ldmatrix and mma.sync
// gather the warp's registers and apply the PTX ISA's fragment layouts.
#pragma once
#include <vector>

#include "common.cuh"

struct EmuCopy {
    void* dst;
    const void* src;
    bool valid;
    u32 bytes;
};
inline thread_local std::vector<EmuCopy> emu_open_group;
inline thread_local std::vector<std::vector<EmuCopy>> emu_groups;

inline void cp_async16(void* dst, const void* src, bool valid) {
    emu_open_group.push_back({dst, src, valid, 16});
}
inline void cp_async4(void* dst, const void* src, bool valid) {
    emu_open_group.push_back({dst, src, valid, 4});
}
inline void cp_async_commit() {
    emu_groups.push_back(emu_open_group);
    emu_open_group.clear();
}
template <int N>
inline void cp_async_wait() {
    while (emu_groups.size() > size_t(N)) {
        for (const EmuCopy& c : emu_groups.front()) {
            if (c.valid) std::memcpy(c.dst, c.src, c.bytes);
            else std::memset(c.dst, 0, c.bytes);
        }
        emu_groups.erase(emu_groups.begin());
    }
}

inline uint32_t emu_pair(bf16 lo, bf16 hi) { return uint32_t(lo.bits) | uint32_t(hi.bits) << 16; }

// Lane l addresses row l % 8 of matrix l / 8; it receives (row g, columns 2t, 2t + 1) of
// each matrix, or with .trans (rows 2t, 2t + 1, column g).
inline void emu_ldmatrix(u32 (&r)[4], const bf16* p, bool trans) {
    const bf16* rows[32];
    emu_warp_allgather(&p, rows, sizeof(p));
    const u32 lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    for (u32 j = 0; j < 4; j++) {
        r[j] = trans ? emu_pair(rows[8 * j + 2 * t][g], rows[8 * j + 2 * t + 1][g])
                     : emu_pair(rows[8 * j + g][2 * t], rows[8 * j + g][2 * t + 1]);
    }
}
inline void ldmatrix_x4(u32 (&r)[4], const bf16* p) { emu_ldmatrix(r, p, false); }
inline void ldmatrix_x4_trans(u32 (&r)[4], const bf16* p) { emu_ldmatrix(r, p, true); }

inline float emu_lo(u32 x) { return __bfloat162float({uint16_t(x & 0xffff)}); }
inline float emu_hi(u32 x) { return __bfloat162float({uint16_t(x >> 16)}); }

// d += A (16 x 16) B (16 x 8), A and B rebuilt from the warp's fragments.
inline void mma_bf16(float (&d)[4], const u32 (&a)[4], u32 b0, u32 b1) {
    struct Frag {
        u32 a[4], b[2];
    } mine = {{a[0], a[1], a[2], a[3]}, {b0, b1}}, all[32];
    emu_warp_allgather(&mine, all, sizeof(Frag));
    float A[16][16], B[16][8];
    for (u32 l = 0; l < 32; l++) {
        const u32 g = l / 4, t = l % 4;
        const Frag& f = all[l];
        A[g][2 * t] = emu_lo(f.a[0]), A[g][2 * t + 1] = emu_hi(f.a[0]);
        A[g + 8][2 * t] = emu_lo(f.a[1]), A[g + 8][2 * t + 1] = emu_hi(f.a[1]);
        A[g][2 * t + 8] = emu_lo(f.a[2]), A[g][2 * t + 9] = emu_hi(f.a[2]);
        A[g + 8][2 * t + 8] = emu_lo(f.a[3]), A[g + 8][2 * t + 9] = emu_hi(f.a[3]);
        B[2 * t][g] = emu_lo(f.b[0]), B[2 * t + 1][g] = emu_hi(f.b[0]);
        B[2 * t + 8][g] = emu_lo(f.b[1]), B[2 * t + 9][g] = emu_hi(f.b[1]);
    }
    const u32 lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    for (u32 e = 0; e < 4; e++) {
        const u32 row = g + (e / 2) * 8, col = 2 * t + e % 2;
        float s = 0.0f;
        for (u32 k = 0; k < 16; k++) s += A[row][k] * B[k][col];
        d[e] += s;
    }
}
