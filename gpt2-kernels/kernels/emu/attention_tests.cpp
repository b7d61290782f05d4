// Attention kernels (attention.cu in f32 and bf16, attention_flash.cu for each head size)
// against a double-precision reference on the same inputs, on sequence lengths that are
// not multiples of the blocks.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <cstdint>
#include <array>
#include <random>
#include <vector>

#include "tests.h"

using u32 = unsigned;
using u64 = unsigned long long;

#define ROWS(T, S)                                                                             \
    extern "C" void attention_forward_##S(T*, float*, const T*, const T*, const T*, u32, u32, \
                                          const u32*, u32, u32, u32, u32, u32, u64, u64, u64, \
                                          float);                                             \
    extern "C" void attention_cache_append_##S(T*, const T*, const u32*, u32, u32, u32);      \
    extern "C" void attention_backward_d_##S(float*, const T*, const T*, u32, u32, u32, u32);  \
    extern "C" void attention_backward_dq_##S(T*, const T*, const T*, const float*,           \
                                              const float*, u32, u32, float);                 \
    extern "C" void attention_backward_dkv_##S(T*, const T*, const T*, const float*,          \
                                               const float*, u32, u32, float);
ROWS(float, f32)
ROWS(bf16_t, bf16)
#define FLASH(HS)                                                                            \
    extern "C" void attention_flash_forward_hs##HS##_bf16(bf16_t*, float*, const bf16_t*, u32, \
                                                          float);                            \
    extern "C" void attention_flash_backward_dkdv_hs##HS##_bf16(                              \
        bf16_t*, const bf16_t*, const bf16_t*, const float*, const float*, u32, float);       \
    extern "C" void attention_flash_backward_dq_hs##HS##_bf16(                                \
        bf16_t*, const bf16_t*, const bf16_t*, const float*, const float*, u32, float);
FLASH(32)
FLASH(64)
FLASH(128)

namespace {

u32 cdiv(u32 a, u32 b) { return (a + b - 1) / b; }

// One problem (B, T, NH, HS) with its inputs rounded to T and the double reference.
template <typename T>
struct Problem {
    u32 b, t, nh, hs;
    std::vector<T> qkv, dout, out_in, dqkv;  // out_in: the reference output, as the backward's input
    std::vector<float> lse_in;
    std::vector<double> out, lse, dqkv_want;
    u32 c() const { return nh * hs; }
};

template <typename T>
Problem<T> make(u32 b, u32 t, u32 nh, u32 hs, std::mt19937& rng) {
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    Problem<T> p{b, t, nh, hs, {}, {}, {}, {}, {}, {}, {}, {}};
    const u32 c = p.c();
    auto fill = [&](std::vector<T>& v, size_t n, float scale) {
        v.resize(n);
        for (auto& x : v) x = from_f<T>(scale * u(rng));
    };
    fill(p.qkv, (size_t)b * t * 3 * c, 2.0f);  // scores of a few units: a peaked softmax
    fill(p.dout, (size_t)b * t * c, 1.0f);
    fill(p.dqkv, p.qkv.size(), 1.0f);  // the accumulator's start
    p.out.assign((size_t)b * t * c, 0.0);
    p.lse.assign((size_t)b * nh * t, 0.0);
    p.dqkv_want.resize(p.dqkv.size());
    for (size_t i = 0; i < p.dqkv.size(); i++) p.dqkv_want[i] = to_f(p.dqkv[i]);
    const double scale = 1.0 / std::sqrt(double(hs));
    auto x = [&](u32 bi, u32 i, u32 part, u32 h, u32 d) {
        return (double)to_f(p.qkv[((size_t)bi * t + i) * 3 * c + part * c + h * hs + d]);
    };
    for (u32 bi = 0; bi < b; bi++)
        for (u32 h = 0; h < nh; h++) {
            std::vector<double> P((size_t)t * t, 0.0);
            for (u32 i = 0; i < t; i++) {
                double mx = -INFINITY;
                for (u32 j = 0; j <= i; j++) {
                    double s = 0;
                    for (u32 d = 0; d < hs; d++) s += x(bi, i, 0, h, d) * x(bi, j, 1, h, d);
                    P[(size_t)i * t + j] = s * scale;
                    mx = std::max(mx, s * scale);
                }
                double sum = 0;
                for (u32 j = 0; j <= i; j++) sum += std::exp(P[(size_t)i * t + j] - mx);
                for (u32 j = 0; j <= i; j++) P[(size_t)i * t + j] = std::exp(P[(size_t)i * t + j] - mx) / sum;
                p.lse[((size_t)bi * nh + h) * t + i] = mx + std::log(sum);
                for (u32 d = 0; d < hs; d++) {
                    double o = 0;
                    for (u32 j = 0; j <= i; j++) o += P[(size_t)i * t + j] * x(bi, j, 2, h, d);
                    p.out[((size_t)bi * t + i) * c + h * hs + d] = o;
                }
            }
            auto dO = [&](u32 i, u32 d) { return (double)to_f(p.dout[((size_t)bi * t + i) * c + h * hs + d]); };
            auto at = [&](u32 i, u32 part, u32 d) { return ((size_t)bi * t + i) * 3 * c + part * c + h * hs + d; };
            for (u32 i = 0; i < t; i++) {
                std::vector<double> dp(i + 1, 0.0);
                double D = 0;
                for (u32 j = 0; j <= i; j++) {
                    for (u32 d = 0; d < hs; d++) dp[j] += dO(i, d) * x(bi, j, 2, h, d);
                    D += P[(size_t)i * t + j] * dp[j];
                }
                for (u32 j = 0; j <= i; j++) {
                    const double pij = P[(size_t)i * t + j], ds = pij * (dp[j] - D) * scale;
                    for (u32 d = 0; d < hs; d++) {
                        p.dqkv_want[at(i, 0, d)] += ds * x(bi, j, 1, h, d);
                        p.dqkv_want[at(j, 1, d)] += ds * x(bi, i, 0, h, d);
                        p.dqkv_want[at(j, 2, d)] += pij * dO(i, d);
                    }
                }
            }
        }
    p.out_in.resize(p.out.size());
    for (size_t i = 0; i < p.out.size(); i++) p.out_in[i] = from_f<T>((float)p.out[i]);
    p.lse_in.assign(p.lse.begin(), p.lse.end());
    return p;
}

template <typename V>
double rel_err(const std::vector<V>& got, const std::vector<double>& want) {
    double diff = 0.0, scale = 0.0;
    for (size_t i = 0; i < want.size(); i++) {
        const double g = to_f(got[i]);
        if (std::isnan(g)) return NAN;
        diff = std::max(diff, std::abs(g - want[i]));
        scale = std::max(scale, std::abs(want[i]));
    }
    return scale > 0 ? diff / scale : diff;
}

std::string label(const char* what, u32 b, u32 t, u32 nh, u32 hs) {
    char s[120];
    std::snprintf(s, sizeof s, "%s b=%u t=%u nh=%u hs=%u", what, b, t, nh, hs);
    return s;
}

// attention.cu: forward (as forward() and as a decode step), then the backward.
template <typename T>
void rows(Problem<T>& p, const char* name, double tol, auto fwd, auto append, auto bwd_d, auto bwd_dq,
          auto bwd_dkv) {
    const u32 c = p.c(), rs = 3 * c;
    const float scale = 1.0f / std::sqrt((float)p.hs);
    std::vector<T> out(p.out.size(), from_f<T>(NAN));
    std::vector<float> lse(p.lse.size(), NAN);
    launch({p.t, p.nh, p.b}, {256, 1, 1}, [&] {
        fwd(out.data(), lse.data(), p.qkv.data(), p.qkv.data() + c, p.qkv.data() + 2 * c, p.t, 0, nullptr, 0, p.hs, rs,
            rs, c, (u64)p.t * rs, (u64)p.t * rs, (u64)p.t * c, scale);
    });
    report(label((std::string(name) + " forward out").c_str(), p.b, p.t, p.nh, p.hs), rel_err(out, p.out), tol);
    report(label((std::string(name) + " forward lse").c_str(), p.b, p.t, p.nh, p.hs), rel_err(lse, p.lse), 1e-5);
    // Decode: the last 3 queries of sequence 0 against its keys as a cache (rows of C).
    const u32 tq = 3, c3 = 3 * c;
    std::vector<T> kc((size_t)p.t * c), vc((size_t)p.t * c);
    for (u32 j = 0; j < p.t; j++)
        for (u32 d = 0; d < c; d++) {
            kc[(size_t)j * c + d] = p.qkv[(size_t)j * c3 + c + d];
            vc[(size_t)j * c + d] = p.qkv[(size_t)j * c3 + 2 * c + d];
        }
    std::vector<T> dec((size_t)tq * c, from_f<T>(NAN));
    launch({tq, p.nh, 1}, {256, 1, 1}, [&] {
        fwd(dec.data(), nullptr, p.qkv.data() + (size_t)(p.t - tq) * c3, kc.data(), vc.data(), tq, p.t - tq,
            nullptr, 0, p.hs, c3, c, c, 0, 0, 0, scale);
    });
    std::vector<double> want(p.out.begin() + (size_t)(p.t - tq) * c, p.out.begin() + (size_t)p.t * c);
    report(label((std::string(name) + " decode (3 queries)").c_str(), 1, p.t, p.nh, p.hs), rel_err(dec, want), tol);
    // The same as a graph replay does it: the last query's row appended to a cache of whole
    // qkv rows at a position held on the device, then attention with pos0 read from there
    // (the pos0 argument is garbage).
    const u32 cap = p.t + 5;
    std::vector<T> cache((size_t)cap * c3, from_f<T>(NAN));
    std::copy(p.qkv.begin(), p.qkv.begin() + (size_t)(p.t - 1) * c3, cache.begin());
    const T* last = p.qkv.data() + (size_t)(p.t - 1) * c3;
    auto step = [&](u32 at, std::vector<T>& one) {
        launch({2, 1, 1}, {256, 1, 1}, [&] { append(cache.data(), last, &at, c3, 1, cap); });
        launch({1, p.nh, 1}, {256, 1, 1}, [&] {
            fwd(one.data(), nullptr, last, cache.data() + c, cache.data() + 2 * c, 1, 12345, &at, cap,
                p.hs, c3, c3, c, 0, 0, 0, scale);
        });
    };
    std::vector<T> one((size_t)c, from_f<T>(NAN));
    step(p.t - 1, one);
    std::vector<double> want1(p.out.begin() + (size_t)(p.t - 1) * c, p.out.begin() + (size_t)p.t * c);
    report(label((std::string(name) + " decode at a device position").c_str(), 1, p.t, p.nh, p.hs),
           rel_err(one, want1), tol);
    // A position past the cache: nothing written, NaN out (the sampler's error).
    const std::vector<T> before = cache;
    std::vector<T> past((size_t)c, from_f<T>(0.0f));
    step(cap, past);
    const bool untouched = std::memcmp(before.data(), cache.data(), before.size() * sizeof(T)) == 0;
    const bool all_nan = std::all_of(past.begin(), past.end(), [](T x) { return std::isnan(to_f(x)); });
    report(label((std::string(name) + " decode past the cache").c_str(), 1, p.t, p.nh, p.hs),
           untouched && all_nan ? 0.0 : 1.0, 0.0);

    std::vector<float> dvec(p.lse.size(), NAN);
    const u32 n_rows = p.b * p.nh * p.t;
    launch({cdiv(n_rows, 8), 1, 1}, {256, 1, 1}, [&] { bwd_d(dvec.data(), p.dout.data(), p.out_in.data(), n_rows, p.t, p.nh, p.hs); });
    std::vector<T> dqkv = p.dqkv;
    launch({p.t, p.nh, p.b}, {256, 1, 1}, [&] { bwd_dq(dqkv.data(), p.dout.data(), p.qkv.data(), p.lse_in.data(), dvec.data(), p.t, p.hs, scale); });
    launch({p.t, p.nh, p.b}, {256, 1, 1}, [&] { bwd_dkv(dqkv.data(), p.dout.data(), p.qkv.data(), p.lse_in.data(), dvec.data(), p.t, p.hs, scale); });
    report(label((std::string(name) + " backward dqkv").c_str(), p.b, p.t, p.nh, p.hs), rel_err(dqkv, p.dqkv_want), tol);
}

template <u32 HS>
void flash(Problem<bf16_t>& p, auto fwd, auto dkdv, auto dq) {
    const u32 bq = HS <= 64 ? 128 : 64;
    const float scale = 1.0f / std::sqrt((float)HS);
    std::vector<bf16_t> out(p.out.size(), from_f<bf16_t>(NAN));
    std::vector<float> lse(p.lse.size(), NAN);
    launch({cdiv(p.t, bq), p.nh, p.b}, {128, 1, 1}, [&] { fwd(out.data(), lse.data(), p.qkv.data(), p.t, scale); });
    report(label("attention_flash forward out", p.b, p.t, p.nh, HS), rel_err(out, p.out), 1e-2);
    report(label("attention_flash forward lse", p.b, p.t, p.nh, HS), rel_err(lse, p.lse), 1e-3);
    std::vector<float> dvec(p.lse.size(), NAN);
    const u32 n_rows = p.b * p.nh * p.t;
    launch({cdiv(n_rows, 8), 1, 1}, {256, 1, 1}, [&] { attention_backward_d_bf16(dvec.data(), p.dout.data(), p.out_in.data(), n_rows, p.t, p.nh, HS); });
    std::vector<bf16_t> dqkv = p.dqkv;
    launch({cdiv(p.t, 64), p.nh, p.b}, {128, 1, 1}, [&] { dkdv(dqkv.data(), p.dout.data(), p.qkv.data(), p.lse_in.data(), dvec.data(), p.t, scale); });
    launch({cdiv(p.t, 64), p.nh, p.b}, {128, 1, 1}, [&] { dq(dqkv.data(), p.dout.data(), p.qkv.data(), p.lse_in.data(), dvec.data(), p.t, scale); });
    report(label("attention_flash backward dqkv", p.b, p.t, p.nh, HS), rel_err(dqkv, p.dqkv_want), 1e-2);
}

}  // namespace

void run_attention_tests(const std::string& filter) {
    std::mt19937 rng(9);
    auto want = [&](const char* name) { return filter.empty() || std::string(name).find(filter) != std::string::npos; };
    if (want("attention_rows")) {
        for (auto [b, t, nh, hs] : {std::array<u32, 4>{2, 37, 2, 48}, {1, 70, 1, 64}}) {
            auto pf = make<float>(b, t, nh, hs, rng);
            rows(pf, "attention_rows f32", 1e-5, attention_forward_f32, attention_cache_append_f32, attention_backward_d_f32,
                 attention_backward_dq_f32, attention_backward_dkv_f32);
            auto pb = make<bf16_t>(b, t, nh, hs, rng);
            rows(pb, "attention_rows bf16", 1e-2, attention_forward_bf16, attention_cache_append_bf16, attention_backward_d_bf16,
                 attention_backward_dq_bf16, attention_backward_dkv_bf16);
        }
    }
    if (want("attention_flash")) {
        for (u32 t : {1u, 100u, 200u}) {
            auto p32 = make<bf16_t>(1, t, 2, 32, rng);
            flash<32>(p32, attention_flash_forward_hs32_bf16, attention_flash_backward_dkdv_hs32_bf16, attention_flash_backward_dq_hs32_bf16);
            auto p64 = make<bf16_t>(2, t, 1, 64, rng);
            flash<64>(p64, attention_flash_forward_hs64_bf16, attention_flash_backward_dkdv_hs64_bf16, attention_flash_backward_dq_hs64_bf16);
            auto p128 = make<bf16_t>(1, t, 2, 128, rng);
            flash<128>(p128, attention_flash_forward_hs128_bf16, attention_flash_backward_dkdv_hs128_bf16, attention_flash_backward_dq_hs128_bf16);
        }
    }
}
