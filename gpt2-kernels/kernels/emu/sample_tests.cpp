// sample.cu (f32 and bf16 logits) against a line-for-line C++ port of the CPU sampler
// (gpt2-core/src/sample.rs): the same token for every row, over greedy, temperature,
// top-k, top-p, the repetition penalty and their mix, on random logits, bf16 logits (many
// ties), flat rows, rows with many -inf (never drawn), and rows of NaN or -inf. The rows' padding is NaN: read, it would fail.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "tests.h"

using u32 = unsigned;

#define SAMPLE(T, S)                                                                  \
    extern "C" void sample_rows_##S(u32*, const T*, u32, u32, const u32*, const u32*, \
                                    float, float, u32, float, const double*);
SAMPLE(float, f32)
SAMPLE(bf16_t, bf16)

namespace {

const u32 NAN_ID = 0xffffffffu, EMPTY_ID = 0xfffffffeu;

struct Params {
    float penalty, temperature;
    u32 top_k;
    float top_p;
};

// total_cmp as an integer order.
u32 key(float f) {
    u32 u;
    std::memcpy(&u, &f, 4);
    return (u >> 31) ? ~u : (u | 0x80000000u);
}

// Sampler::sample of gpt2-core/src/sample.rs (NaN and "filtered out" as the kernel's ids).
u32 cpu_sample(std::vector<float> l, const std::vector<u32>& history, const Params& p,
               double u) {
    const size_t n = l.size();
    for (float x : l)
        if (std::isnan(x)) return NAN_ID;
    if (p.penalty != 1.0f) {
        std::vector<bool> seen(n, false);
        for (u32 id : history)
            if (id < n && !seen[id]) {
                seen[id] = true;
                l[id] = l[id] < 0.0f ? l[id] * p.penalty : l[id] / p.penalty;
            }
    }
    auto argmax = [&] {
        size_t best = 0;
        for (size_t i = 0; i < n; i++)
            if (l[i] > l[best]) best = i;
        return best;
    };
    if (p.temperature == 0.0f) return (u32)argmax();
    if (p.temperature != 1.0f)
        for (auto& x : l) x /= p.temperature;
    if (p.top_k != 0 && p.top_k < n) {
        std::vector<float> vals = l;
        std::nth_element(vals.begin(), vals.begin() + (p.top_k - 1), vals.end(),
                         [](float a, float b) { return key(a) > key(b); });
        const float kth = vals[p.top_k - 1];
        for (auto& x : l)
            if (x < kth) x = -INFINITY;
    }
    if (p.top_p < 1.0f) {
        const float max = *std::max_element(l.begin(), l.end());
        double total = 0.0;
        for (float x : l) total += std::exp((double)(x - max));
        std::vector<size_t> idx(n);
        std::iota(idx.begin(), idx.end(), 0);
        std::sort(idx.begin(), idx.end(), [&](size_t a, size_t b) {
            return key(l[a]) != key(l[b]) ? key(l[a]) > key(l[b]) : a > b;
        });
        size_t keep = n;
        double cum = 0.0;
        for (size_t j = 0; j < n; j++) {
            if (cum >= p.top_p) {
                keep = j;
                break;
            }
            cum += std::exp((double)(l[idx[j]] - max)) / total;
        }
        for (size_t j = keep; j < n; j++) l[idx[j]] = -INFINITY;
    }
    const float max = l[argmax()];
    if (max == -INFINITY) return EMPTY_ID;
    double total = 0.0;
    for (float x : l) total += std::exp((double)(x - max));
    const double target = u * total;
    double cum = 0.0;
    size_t last = 0;
    for (size_t i = 0; i < n; i++) {
        if (l[i] == -INFINITY) continue;
        cum += std::exp((double)(l[i] - max));
        last = i;
        if (cum > target) return (u32)i;
    }
    return (u32)last;
}

enum class Kind { Normal, Flat, Nan, NegInf, SomeNegInf };

// Rows of v random logits (in T's precision) with `pad` NaN columns after each; checks
// the kernel's token of every row against cpu_sample. Returns the rows that differ.
template <typename T>
void check(const std::string& name, u32 rows, u32 v, const Params& p, Kind kind,
           std::mt19937& rng) {
    const u32 pad = 47, stride = v + pad;
    std::normal_distribution<float> normal(0.0f, 3.0f);
    std::uniform_real_distribution<double> uniform(0.0, 1.0);
    std::uniform_int_distribution<u32> id(0, v + 10);  // some ids ≥ v: ignored
    std::vector<T> logits((size_t)rows * stride, from_f<T>(NAN));
    std::vector<u32> seen, seen_start{0};
    std::vector<double> uniforms;
    std::vector<std::vector<float>> host(rows);
    std::vector<std::vector<u32>> histories(rows);
    for (u32 r = 0; r < rows; r++) {
        for (u32 j = 0; j < v; j++) {
            float x = kind == Kind::Flat     ? 0.5f
                      : kind == Kind::NegInf ? -INFINITY
                                             : normal(rng);
            if (kind == Kind::SomeNegInf && j % 3 != 1) x = -INFINITY;  // the last one too
            if (kind == Kind::Nan && j == v / 2 + r) x = NAN;
            logits[(size_t)r * stride + j] = from_f<T>(x);
            host[r].push_back(to_f(logits[(size_t)r * stride + j]));
        }
        for (u32 i = 0; i < 40 + 30 * r; i++) histories[r].push_back(id(rng));
        histories[r].push_back(histories[r][0]);  // a repeat: penalised once
        seen.insert(seen.end(), histories[r].begin(), histories[r].end());
        seen_start.push_back((u32)seen.size());
        uniforms.push_back(uniform(rng));
    }
    std::vector<u32> out(rows, 12345);
    launch({rows, 1, 1}, {512, 1, 1}, [&] {
        if constexpr (std::is_same_v<T, float>)
            sample_rows_f32(out.data(), logits.data(), v, stride, seen.data(), seen_start.data(),
                            p.penalty, p.temperature, p.top_k, p.top_p, uniforms.data());
        else
            sample_rows_bf16(out.data(), logits.data(), v, stride, seen.data(),
                             seen_start.data(), p.penalty, p.temperature, p.top_k, p.top_p,
                             uniforms.data());
    });
    double wrong = 0;
    for (u32 r = 0; r < rows; r++) {
        const u32 want = cpu_sample(host[r], histories[r], p, uniforms[r]);
        if (out[r] != want) {
            wrong++;
            std::printf("  row %u: kernel %u, cpu %u\n", r, out[r], want);
        }
    }
    report(name, wrong, 0);
}

}  // namespace

void run_sample_tests(const std::string& filter) {
    auto want = [&](const std::string& name) {
        return filter.empty() || name.find(filter) != std::string::npos;
    };
    std::mt19937 rng(42);
    const Params greedy{1.0f, 0.0f, 0, 1.0f}, plain{1.0f, 1.0f, 0, 1.0f},
        temp{1.0f, 0.7f, 0, 1.0f}, top_k{1.0f, 1.0f, 50, 1.0f}, top_p{1.0f, 1.0f, 0, 0.9f},
        mix{1.3f, 0.8f, 40, 0.95f}, penalised_greedy{1.5f, 0.0f, 0, 1.0f},
        top_p_small{1.0f, 1.0f, 0, 0.2f};
    struct Case {
        const char* name;
        Params p;
        Kind kind;
        u32 v;
    };
    const Case cases[] = {
        {"greedy", greedy, Kind::Normal, 50257},
        {"greedy penalty", penalised_greedy, Kind::Normal, 50257},
        {"plain", plain, Kind::Normal, 50257},
        {"temperature", temp, Kind::Normal, 3000},
        {"top_k", top_k, Kind::Normal, 50257},
        {"top_p", top_p, Kind::Normal, 50257},
        {"top_p small", top_p_small, Kind::Normal, 3000},
        {"mix", mix, Kind::Normal, 50257},
        {"flat top_p (ties)", top_p, Kind::Flat, 3000},
        {"flat top_k (ties)", top_k, Kind::Flat, 3000},
        {"flat mix", mix, Kind::Flat, 3000},
        {"nan", mix, Kind::Nan, 3000},
        {"all -inf", plain, Kind::NegInf, 3000},
        {"all -inf greedy", greedy, Kind::NegInf, 3000},
        {"two thirds -inf", plain, Kind::SomeNegInf, 3000},
        {"two thirds -inf top_p", top_p, Kind::SomeNegInf, 3000},
    };
    for (const Case& c : cases) {
        for (int bf = 0; bf < 2; bf++) {
            const std::string name = std::string("sample ") + (bf ? "bf16 " : "f32 ") + c.name +
                                     " v=" + std::to_string(c.v);
            if (!want(name)) continue;
            if (bf)
                check<bf16_t>(name, 3, c.v, c.p, c.kind, rng);
            else
                check<float>(name, 3, c.v, c.p, c.kind, rng);
        }
    }
}
