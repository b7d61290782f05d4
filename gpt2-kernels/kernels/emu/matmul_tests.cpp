// The matmul ladder (v1..v4) against a double-precision reference on the same inputs, in
// the three layouts GPT-2 uses and with every epilogue (bias, GELU + pre-activation,
// accumulation), on shapes that are not multiples of the tiles.
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "tests.h"

using u32 = unsigned;
using u64 = unsigned long long;
struct alignas(64) TensorMapArg {
    u64 opaque[16];
};
struct EmuTensorMap {  // as emu/hopper.cuh
    const bf16_t* base;
    u64 dims[2];
    u64 row_stride;
    u32 box[2];
};

#define V12(T, S)                                                                          \
    extern "C" void matmul_v1_##S(T*, T*, const T*, const T*, const T*, u32, u32, u32, u32, \
                                  u32, u32, u32, u32, u32);                                \
    extern "C" void matmul_v2_##S(T*, T*, const T*, const T*, const T*, u32, u32, u32, u32, \
                                  u32, u32, u32, u32, u32);
V12(float, f32)
V12(bf16_t, bf16)
#define V3(L)                                                                          \
    extern "C" void matmul_v3_##L##_bf16(bf16_t*, bf16_t*, const bf16_t*, const bf16_t*, \
                                         const bf16_t*, u32, u32, u32, u32, u32, u32, u32);
V3(nn)
V3(nt)
V3(tn)
#define V4(L, BN)                                                                    \
    extern "C" void matmul_v4_##L##_bn##BN##_bf16(TensorMapArg, TensorMapArg, bf16_t*, \
                                                  bf16_t*, const bf16_t*, u32, u32, u32, \
                                                  u32, u32);
V4(nn, 128)
V4(nt, 128)
V4(tn, 128)
V4(nn, 256)
V4(nt, 256)
V4(tn, 256)

namespace {

enum Flags : u32 { ACCUMULATE = 1, GELU = 2 };

// One problem: C (m, n) = A (m, k) B (k, n); at: A stored (k, m); bt: B stored (n, k).
struct Case {
    u32 m, n, k;
    bool at, bt;
    u32 flags;
    bool bias;
};

double gelu(double x) {
    return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
}

template <typename T>
struct Problem {
    Case cs;
    std::vector<T> a, b, bias, c, pre;
    std::vector<double> want, want_pre;
    u32 lda() const { return cs.at ? cs.m : cs.k; }
    u32 ldb() const { return cs.bt ? cs.k : cs.n; }
    double A(u32 i, u32 p) const { return to_f(cs.at ? a[(u64)p * cs.m + i] : a[(u64)i * cs.k + p]); }
    double B(u32 p, u32 j) const { return to_f(cs.bt ? b[(u64)j * cs.k + p] : b[(u64)p * cs.n + j]); }
};

template <typename T>
Problem<T> make(const Case& cs, std::mt19937& rng) {
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    Problem<T> p{cs, {}, {}, {}, {}, {}, {}, {}};
    auto fill = [&](std::vector<T>& v, size_t n) {
        v.resize(n);
        for (auto& x : v) x = from_f<T>(u(rng));
    };
    fill(p.a, (size_t)cs.m * cs.k);
    fill(p.b, (size_t)cs.k * cs.n);
    fill(p.bias, cs.n);
    fill(p.c, (size_t)cs.m * cs.n);  // the accumulator's start, or poison below
    p.pre.assign((size_t)cs.m * cs.n, from_f<T>(NAN));
    if (!(cs.flags & ACCUMULATE))
        for (auto& x : p.c) x = from_f<T>(NAN);  // every output must be written
    p.want.resize((size_t)cs.m * cs.n);
    p.want_pre.resize(p.want.size());
    for (u32 i = 0; i < cs.m; i++)
        for (u32 j = 0; j < cs.n; j++) {
            double v = 0.0;
            for (u32 q = 0; q < cs.k; q++) v += p.A(i, q) * p.B(q, j);
            if (cs.flags & ACCUMULATE) v += to_f(p.c[(u64)i * cs.n + j]);
            if (cs.bias) v += to_f(p.bias[j]);
            p.want_pre[(u64)i * cs.n + j] = v;
            p.want[(u64)i * cs.n + j] = (cs.flags & GELU) ? gelu(v) : v;
        }
    return p;
}

template <typename T>
double rel_err(const std::vector<T>& got, const std::vector<double>& want) {
    double diff = 0.0, scale = 0.0;
    for (size_t i = 0; i < want.size(); i++) {
        const double g = to_f(got[i]);
        if (std::isnan(g)) return NAN;
        diff = std::max(diff, std::abs(g - want[i]));
        scale = std::max(scale, std::abs(want[i]));
    }
    return scale > 0 ? diff / scale : diff;
}

template <typename T>
void check(const std::string& name, Problem<T>& p, double tol) {
    char what[160];
    std::snprintf(what, sizeof what, "%s %s%s m=%u n=%u k=%u flags=%u bias=%d", name.c_str(),
                  p.cs.at ? "t" : "n", p.cs.bt ? "t" : "n", p.cs.m, p.cs.n, p.cs.k, p.cs.flags,
                  p.cs.bias);
    report(what, rel_err(p.c, p.want), tol);
    if (p.cs.flags & GELU) report(std::string(what) + " pre", rel_err(p.pre, p.want_pre), tol);
}

u32 cdiv(u32 a, u32 b) { return (a + b - 1) / b; }

template <typename T>
void run_v12(int version, Problem<T>& p) {
    const Case& cs = p.cs;
    const u32 a_rs = cs.at ? 1 : cs.k, a_cs = cs.at ? cs.m : 1;
    const u32 b_rs = cs.bt ? 1 : cs.n, b_cs = cs.bt ? cs.k : 1;
    T* pre = (cs.flags & GELU) ? p.pre.data() : nullptr;
    const T* bias = cs.bias ? p.bias.data() : nullptr;
    auto args = [&](auto kernel) {
        kernel(p.c.data(), pre, p.a.data(), p.b.data(), bias, cs.m, cs.n, cs.k, a_rs, a_cs, b_rs,
               b_cs, cs.n, cs.flags);
    };
    if (version == 1) {
        launch({cdiv(cs.n, 16), cdiv(cs.m, 16), 1}, {256, 1, 1}, [&] {
            if constexpr (sizeof(T) == 4) args(matmul_v1_f32);
            else args(matmul_v1_bf16);
        });
    } else {
        launch({cdiv(cs.m, 128) * cdiv(cs.n, 128), 1, 1}, {256, 1, 1}, [&] {
            if constexpr (sizeof(T) == 4) args(matmul_v2_f32);
            else args(matmul_v2_bf16);
        });
    }
}

void run_v3(Problem<bf16_t>& p) {
    const Case& cs = p.cs;
    auto* kernel = cs.at ? matmul_v3_tn_bf16 : cs.bt ? matmul_v3_nt_bf16 : matmul_v3_nn_bf16;
    launch({cdiv(cs.m, 128) * cdiv(cs.n, 128), 1, 1}, {256, 1, 1}, [&] {
        kernel(p.c.data(), (cs.flags & GELU) ? p.pre.data() : nullptr, p.a.data(), p.b.data(),
               cs.bias ? p.bias.data() : nullptr, cs.m, cs.n, cs.k, p.lda(), p.ldb(), cs.n,
               cs.flags);
    });
}

// The tensor maps src/cuda/matmul/tma.rs encodes: boxes of 64 along the contiguous
// dimension; K-major operands take all 128 (A) or BN (B) rows in one box.
TensorMapArg tmap(const bf16_t* base, u64 inner, u64 outer, u32 box_outer) {
    EmuTensorMap m{base, {inner, outer}, inner * 2, {64, box_outer}};
    TensorMapArg t{};
    std::memcpy(&t, &m, sizeof m);
    return t;
}

void run_v4(Problem<bf16_t>& p, u32 bn) {
    const Case& cs = p.cs;
    const TensorMapArg ta = cs.at ? tmap(p.a.data(), cs.m, cs.k, 64) : tmap(p.a.data(), cs.k, cs.m, 128);
    const TensorMapArg tb = cs.bt ? tmap(p.b.data(), cs.k, cs.n, bn) : tmap(p.b.data(), cs.n, cs.k, 64);
    auto* kernel = bn == 128 ? (cs.at ? matmul_v4_tn_bn128_bf16
                                      : cs.bt ? matmul_v4_nt_bn128_bf16 : matmul_v4_nn_bn128_bf16)
                             : (cs.at ? matmul_v4_tn_bn256_bf16
                                      : cs.bt ? matmul_v4_nt_bn256_bf16 : matmul_v4_nn_bn256_bf16);
    launch({cdiv(cs.m, 128) * cdiv(cs.n, bn), 1, 1}, {384, 1, 1}, [&] {
        kernel(ta, tb, p.c.data(), (cs.flags & GELU) ? p.pre.data() : nullptr,
               cs.bias ? p.bias.data() : nullptr, cs.m, cs.n, cs.k, cs.n, cs.flags);
    });
}

}  // namespace

void run_matmul_tests(const std::string& filter) {
    std::mt19937 rng(8);
    auto want = [&](const char* name) { return filter.empty() || std::string(name).find(filter) != std::string::npos; };
    // Any shape for the CUDA-core versions.
    const Case any[] = {
        {37, 45, 29, false, false, 0, false},  {130, 200, 17, false, true, GELU, true},
        {1, 5, 300, true, false, ACCUMULATE, false}, {129, 131, 40, true, false, 0, true},
        {64, 257, 33, false, true, ACCUMULATE, true},
    };
    for (const Case& cs : any) {
        for (int v = 1; v <= 2; v++) {
            const std::string name = "matmul_v" + std::to_string(v);
            if (!want(name.c_str())) continue;
            auto pf = make<float>(cs, rng);
            run_v12(v, pf);
            check(name + " f32", pf, 1e-5);
            auto pb = make<bf16_t>(cs, rng);
            run_v12(v, pb);
            check(name + " bf16", pb, 1e-2);
        }
    }
    // The tensor-core versions: contiguous extents multiples of 8, edges anywhere else.
    const Case tc[] = {
        {200, 136, 264, false, false, 0, false}, {200, 136, 264, false, true, 0, false},
        {200, 136, 264, true, false, 0, false},  {77, 8, 8, false, false, GELU, true},
        {130, 256, 72, false, true, ACCUMULATE, true}, {128, 128, 32, true, false, ACCUMULATE, false},
        {136, 261, 96, false, true, GELU, true},  {8, 24, 1000, true, false, 0, true},
    };
    for (const Case& cs : tc) {
        if (want("matmul_v3")) {
            auto p = make<bf16_t>(cs, rng);
            run_v3(p);
            check("matmul_v3", p, 1e-2);
        }
        for (u32 bn : {128u, 256u}) {
            const std::string name = "matmul_v4 bn" + std::to_string(bn);
            if (!want(name.c_str())) continue;
            auto p = make<bf16_t>(cs, rng);
            run_v4(p, bn);
            check(name, p, 1e-2);
        }
    }
}

