// Runs our CUDA kernels on CPU threads (one std::thread per CUDA thread, blocks one after
// another) and checks them against double-precision references on the same inputs: index
// math, tiling, swizzles, pipelines and edge handling, on shapes that are not multiples of
// any tile. The tensor-core instructions are emulated from the PTX ISA's descriptions
// (mma.cuh, hopper.cuh of this folder); what this cannot check is whether the hardware
// agrees with those descriptions (the GPU tests do). Usage: emulate.sh [filter].
#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "cuda_bf16.h"
#include "tests.h"

using u32 = unsigned;
using u64 = unsigned long long;

thread_local dim3 threadIdx, blockIdx;
dim3 blockDim, gridDim;

// ---- shared memory windows -------------------------------------------------------------
static std::vector<std::pair<unsigned char*, size_t>>& arenas() {
    static std::vector<std::pair<unsigned char*, size_t>> a;
    return a;
}
int emu_register_arena(unsigned char* base, size_t bytes) {
    arenas().push_back({base, bytes});
    return 0;
}
size_t __cvta_generic_to_shared(const void* p) {
    auto* c = static_cast<const unsigned char*>(p);
    for (auto& [base, bytes] : arenas())
        if (c >= base && c < base + bytes) return size_t(c - base);
    return size_t(reinterpret_cast<uintptr_t>(p) & 0xffffffffu);
}

// ---- blocks, barriers, warps -----------------------------------------------------------
struct BlockState {
    std::unique_ptr<std::barrier<>> block;
    std::vector<std::unique_ptr<std::barrier<>>> warps;
    unsigned char slots[32][32][64];  // [warp][lane]: allgather contributions
    std::mutex named_mutex;
    std::map<unsigned, std::unique_ptr<std::barrier<>>> named;  // bar.sync id, count
};
static BlockState* g_block;

void emu_named_barrier(unsigned id, unsigned count) {
    std::barrier<>* bar;
    {
        std::lock_guard<std::mutex> g(g_block->named_mutex);
        auto& b = g_block->named[id];
        if (!b) b = std::make_unique<std::barrier<>>(count);
        bar = b.get();
    }
    bar->arrive_and_wait();
}

void __syncthreads() { g_block->block->arrive_and_wait(); }
void __syncwarp(unsigned) { g_block->warps[threadIdx.x / 32]->arrive_and_wait(); }
void emu_warp_allgather(const void* mine, void* all, size_t bytes) {
    const unsigned w = threadIdx.x / 32, l = threadIdx.x % 32;
    if (bytes > 64) __trap();
    std::memcpy(g_block->slots[w][l], mine, bytes);
    __syncwarp();
    for (unsigned i = 0; i < 32; i++)
        std::memcpy(static_cast<unsigned char*>(all) + i * bytes, g_block->slots[w][i], bytes);
    __syncwarp();
}
void __trap() {
    std::fprintf(stderr, "__trap() in block (%u,%u) thread %u\n", blockIdx.x, blockIdx.y,
                 threadIdx.x);
    std::abort();
}
void emu_yield() { std::this_thread::yield(); }

void launch(dim3 grid, dim3 block, const std::function<void()>& kernel) {
    gridDim = grid;
    blockDim = block;
    const unsigned n = block.x;  // our kernels use 1-D blocks of whole warps
    if (block.y != 1 || block.z != 1 || n % 32 != 0) __trap();
    for (unsigned z = 0; z < grid.z; z++)
        for (unsigned y = 0; y < grid.y; y++)
            for (unsigned x = 0; x < grid.x; x++) {
                BlockState st;
                st.block = std::make_unique<std::barrier<>>(n);
                for (unsigned w = 0; w < n / 32; w++)
                    st.warps.push_back(std::make_unique<std::barrier<>>(32));
                g_block = &st;
                std::vector<std::thread> threads;
                for (unsigned t = 0; t < n; t++)
                    threads.emplace_back([&, t] {
                        blockIdx = {x, y, z};
                        threadIdx = {t, 0, 0};
                        kernel();
                        // An exited thread no longer holds back its warp or block.
                        st.warps[t / 32]->arrive_and_drop();
                        st.block->arrive_and_drop();
                    });
                for (auto& th : threads) th.join();
            }
}

// ---- transaction barriers --------------------------------------------------------------
struct Bar {
    unsigned count, pending, phase;
    long long tx;
};
static std::mutex bar_mutex;
static std::map<u64*, Bar> bars;
static void maybe_complete(Bar& b) {
    if (b.pending == 0 && b.tx == 0) {
        b.phase++;
        b.pending = b.count;
    }
}
void emu_mbar_init(u64* bar, u32 count) {
    std::lock_guard<std::mutex> g(bar_mutex);
    bars[bar] = {count, count, 0, 0};
}
void emu_mbar_arrive(u64* bar, u32 expect_tx) {
    std::lock_guard<std::mutex> g(bar_mutex);
    Bar& b = bars.at(bar);
    if (b.pending == 0) __trap();
    b.tx += expect_tx;
    b.pending--;
    maybe_complete(b);
}
void emu_mbar_complete_tx(u64* bar, u32 bytes) {
    std::lock_guard<std::mutex> g(bar_mutex);
    Bar& b = bars.at(bar);
    b.tx -= bytes;
    maybe_complete(b);
}
bool emu_mbar_phase_done(u64* bar, u32 parity) {
    std::lock_guard<std::mutex> g(bar_mutex);
    return (bars.at(bar).phase & 1) != parity;
}

// ---- checks ------------------------------------------------------------------------------
static int failures = 0;
void report(const std::string& name, double err, double tol) {
    const bool ok = err <= tol;  // false for NaN
    if (!ok) failures++;
    std::printf("%s %-60s err %.2e (tol %.0e)\n", ok ? "PASS" : "FAIL", name.c_str(), err, tol);
    std::fflush(stdout);
}

int main(int argc, char** argv) {
    const std::string filter = argc > 1 ? argv[1] : "";
    run_tests(filter);
    std::printf("%s: %d failure(s)\n", failures ? "FAILED" : "ok", failures);
    return failures ? 1 : 0;
}
