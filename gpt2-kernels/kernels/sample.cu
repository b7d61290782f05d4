// Choosing the next token on the device, as gpt2-core/src/sample.rs does on the CPU:
// repetition penalty, temperature, top-k, top-p, then an inverse-CDF draw with a uniform
// number from the host's random stream (or the argmax when the temperature is 0). One block
// of SAMPLE_BLOCK threads per row. Nothing is sorted:
//
// - top-k is a radix select of the k-th largest logit: 8 passes of 4 bits over a key that
//   orders floats as integers (the CPU's total_cmp), each pass counting, per digit, the
//   elements whose higher digits match what is chosen so far;
// - top-p is the same select with each element weighted by its probability mass instead
//   of 1: it finds the token at which the running mass, most likely first, reaches p.
//   Tokens with the same logit are ordered as on the CPU (higher index first) by a second
//   select over the indices, run only when such ties straddle the boundary;
// - the draw scans per-thread chunk sums (f64) and walks the one chunk holding the target.
//   -inf logits are never drawn, as on the CPU.
//
// Histograms live in each thread's registers and are added across the block in a fixed
// order: no atomics in any sum, the same answer on every run. Masses are f64 as on the
// CPU but added in another order, so a draw or a top-p boundary can differ from the CPU's
// only when it falls within rounding (~1e-15 relative) of a token's edge.
//
// Row r: logits x[r*stride, r*stride + v) (the candidates; the padding after them is never
// read), its seen ids seen[seen_start[r], seen_start[r+1]) for the repetition penalty (ids
// ≥ v and repeats are harmless), its uniform number uniforms[r] in [0, 1). out[r] = the
// token, or SAMPLE_NAN / SAMPLE_EMPTY (a NaN in the row / every token filtered out).
#include "common.cuh"

#define SAMPLE_BLOCK 512
#define SAMPLE_MAX_V (1u << 17)  // the penalty's bitmap of seen ids: 16 KiB of shared memory
#define SAMPLE_NAN 0xffffffffu
#define SAMPLE_EMPTY 0xfffffffeu
#define RADIX 4                 // bits per select pass
#define BINS (1 << RADIX)

// ---- keys ---------------------------------------------------------------------------
// Orders floats as unsigned integers (-inf < ... < -0 < +0 < ... < inf), as total_cmp.
__device__ __forceinline__ u32 order_key(float f) {
    const u32 u = __float_as_uint(f);
    return (u >> 31) ? ~u : (u | 0x80000000u);
}
__device__ __forceinline__ float key_value(u32 k) {
    return __uint_as_float((k >> 31) ? (k & 0x7fffffffu) : ~k);
}

// ---- one row's logits after the penalty and the temperature ---------------------------
template <typename T>
struct Row {
    const T* x;
    u32 v;
    float penalty, temperature;
    const u32* seen_bits;  // bit j set: token j was seen (read only when penalty != 1)

    // apply_repetition_penalty: divide a seen token's logit if positive, multiply if not.
    __device__ float penalized(u32 j) const {
        float l = load(&x[j]);
        if (penalty != 1.0f && ((seen_bits[j >> 5] >> (j & 31)) & 1u))
            l = l < 0.0f ? l * penalty : l / penalty;
        return l;
    }
    // apply_temperature (temperature > 0).
    __device__ float scaled(u32 j) const {
        const float l = penalized(j);
        return temperature != 1.0f ? l / temperature : l;
    }
};

// ---- block-wide helpers ---------------------------------------------------------------
template <typename A>
__device__ __forceinline__ A warp_add(A x) {
    for (int o = WARP / 2; o > 0; o /= 2) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}

// The largest logit, the lowest index on ties (torch.argmax); i == none while empty.
struct Best {
    float x;
    u32 i;
};
__device__ __forceinline__ Best better(Best a, Best b) {
    return (b.x > a.x || (b.x == a.x && b.i < a.i)) ? b : a;
}
__device__ Best block_best(Best b, Best* scratch) {
    const u32 lane = threadIdx.x % WARP, warp = threadIdx.x / WARP;
    for (int o = WARP / 2; o > 0; o /= 2) {
        const Best other = {__shfl_xor_sync(0xffffffffu, b.x, o),
                            __shfl_xor_sync(0xffffffffu, b.i, o)};
        b = better(b, other);
    }
    __syncthreads();
    if (lane == 0) scratch[warp] = b;
    __syncthreads();
    b = scratch[0];
    for (u32 w = 1; w < blockDim.x / WARP; w++) b = better(b, scratch[w]);
    return b;
}

// Sum (u32) over the block, in a fixed order; everyone gets it.
__device__ u32 block_count(u32 n, u32* scratch) {
    const u32 lane = threadIdx.x % WARP, warp = threadIdx.x / WARP;
    n = warp_add(n);
    __syncthreads();
    if (lane == 0) scratch[warp] = n;
    __syncthreads();
    n = 0;
    for (u32 w = 0; w < blockDim.x / WARP; w++) n += scratch[w];
    return n;
}

// Inclusive prefix sums of x over the threads, in a fixed order. incl[t] = thread t's.
__device__ void block_scan(double x, double* incl, double* warp_tot) {
    const u32 lane = threadIdx.x % WARP, warp = threadIdx.x / WARP;
    __syncthreads();  // warp_tot may still be read by a previous reduction
    for (int o = 1; o < WARP; o *= 2) {
        const double y = __shfl_up_sync(0xffffffffu, x, o);
        if (lane >= (u32)o) x += y;
    }
    if (lane == WARP - 1) warp_tot[warp] = x;
    __syncthreads();
    double before = 0.0;
    for (u32 w = 0; w < warp; w++) before += warp_tot[w];
    incl[threadIdx.x] = before + x;
    __syncthreads();
}

// ---- radix select ---------------------------------------------------------------------
// Shared state of one select with weights of type A (u32 counts or f64 masses).
template <typename A>
struct Select {
    A part[SAMPLE_BLOCK / WARP][BINS];  // per-warp histograms
    A hist[BINS];
    u32 prefix;
    A above;
    A target;  // the absolute target, once the first pass has resolved a relative one
};

// Over the elements j < v that `item` admits (item.key(j, &key) is true), in descending
// key order, the key K at which the running weight (item.weight(j)) first reaches
// `target` (times the admitted total when `relative`):
//     weight(key > K) < target <= weight(key >= K);
// when rounding leaves the total short of the target, the lowest key with weight. Returns
// K and sets *above = weight(key > K) (and s.target); every thread gets the same answers.
template <typename A, typename Item>
__device__ u32 radix_select(Select<A>& s, const Item& item, u32 v, A target, bool relative,
                            A* above) {
    const u32 lane = threadIdx.x % WARP, warp = threadIdx.x / WARP;
    u32 prefix = 0;
    A run_above = 0;
    for (int shift = 32 - RADIX; shift >= 0; shift -= RADIX) {
        const u32 hi = shift == 32 - RADIX ? 0u : ~0u << (shift + RADIX);
        A bins[BINS];
#pragma unroll
        for (int b = 0; b < BINS; b++) bins[b] = 0;
        for (u32 j = threadIdx.x; j < v; j += blockDim.x) {
            u32 key;
            if (!item.key(j, &key) || (key & hi) != prefix) continue;
            const u32 d = (key >> shift) & (BINS - 1);
            const A w = item.weight(j);
#pragma unroll
            for (int b = 0; b < BINS; b++) bins[b] += d == (u32)b ? w : A(0);
        }
#pragma unroll
        for (int b = 0; b < BINS; b++) {
            const A t = warp_add(bins[b]);
            if (lane == 0) s.part[warp][b] = t;
        }
        __syncthreads();
        if (threadIdx.x < BINS) {
            A t = 0;
            for (u32 w = 0; w < blockDim.x / WARP; w++) t += s.part[w][threadIdx.x];
            s.hist[threadIdx.x] = t;
        }
        __syncthreads();
        if (threadIdx.x == 0) {
            if (relative && shift == 32 - RADIX) {
                A total = 0;
                for (int b = 0; b < BINS; b++) total += s.hist[b];
                target = target * total;
            }
            s.target = target;
            int chosen = -1, lowest = -1;
            A run = run_above;
            for (int b = BINS - 1; b >= 0; b--) {
                if (s.hist[b] == A(0)) continue;
                lowest = b;
                if (run + s.hist[b] >= target) {
                    chosen = b;
                    break;
                }
                run += s.hist[b];
            }
            if (chosen < 0 && lowest >= 0) {
                chosen = lowest;
                run -= s.hist[lowest];
            }
            s.prefix = prefix | (u32)max(chosen, 0) << shift;
            s.above = run;
        }
        __syncthreads();
        prefix = s.prefix;
        run_above = s.above;
    }
    *above = run_above;
    return prefix;
}

// The elements of each select.
template <typename T>
struct ByLogit {  // every candidate, by logit, weight 1 (top-k)
    const Row<T>& row;
    __device__ bool key(u32 j, u32* k) const {
        *k = order_key(row.scaled(j));
        return true;
    }
    __device__ u32 weight(u32) const { return 1; }
};
template <typename T>
struct ByMass {  // the top-k survivors, by logit, weighted exp(logit - max) (top-p)
    const Row<T>& row;
    float kth, max;
    __device__ bool key(u32 j, u32* k) const {
        const float l = row.scaled(j);
        *k = order_key(l);
        return l >= kth;
    }
    __device__ double weight(u32 j) const { return exp((double)(row.scaled(j) - max)); }
};
template <typename T>
struct TiesByIndex {  // the top-k survivors whose logit has key `tie`, by index (top-p ties)
    const Row<T>& row;
    float kth;
    u32 tie;
    __device__ bool key(u32 j, u32* k) const {
        const float l = row.scaled(j);
        *k = j;
        return l >= kth && order_key(l) == tie;
    }
    __device__ u32 weight(u32) const { return 1; }
};

// ---- the kernel -----------------------------------------------------------------------
template <typename T>
__device__ void sample_row(u32* out, const T* logits, u32 v, u32 stride, const u32* seen,
                           const u32* seen_start, float penalty, float temperature, u32 top_k,
                           float top_p, const double* uniforms) {
    __shared__ u32 seen_bits[SAMPLE_MAX_V / 32];
    __shared__ Select<u32> count_sel;
    __shared__ Select<double> mass_sel;
    __shared__ double incl[SAMPLE_BLOCK];
    __shared__ double warp_tot[WARP];
    __shared__ Best best_scratch[WARP];
    __shared__ u32 count_scratch[WARP];
    __shared__ float max_scratch[WARP];

    const u32 r = blockIdx.x;
    const Row<T> row = {logits + (u64)r * stride, v, penalty, temperature, seen_bits};
    if (penalty != 1.0f) {
        for (u32 w = threadIdx.x; w < (v + 31) / 32; w += blockDim.x) seen_bits[w] = 0;
        __syncthreads();
        for (u32 i = seen_start[r] + threadIdx.x; i < seen_start[r + 1]; i += blockDim.x) {
            const u32 id = seen[i];
            if (id < v) atomicOr(&seen_bits[id >> 5], 1u << (id & 31));  // an OR: any order
        }
        __syncthreads();
    }
    // A NaN anywhere makes the row an error, as Sampler::sample.
    u32 nan = 0;
    for (u32 j = threadIdx.x; j < v; j += blockDim.x) nan |= isnan(load(&row.x[j])) ? 1u : 0u;
    if (block_count(nan, count_scratch) != 0) {
        if (threadIdx.x == 0) out[r] = SAMPLE_NAN;
        return;
    }
    if (temperature == 0.0f) {  // greedy: the argmax after the penalty
        Best b = {-INFINITY, v};
        for (u32 j = threadIdx.x; j < v; j += blockDim.x) b = better(b, {row.penalized(j), j});
        b = block_best(b, best_scratch);
        if (threadIdx.x == 0) out[r] = b.i < v ? b.i : 0;
        return;
    }
    float m = -INFINITY;
    for (u32 j = threadIdx.x; j < v; j += blockDim.x) m = fmaxf(m, row.scaled(j));
    m = block_max(m, max_scratch);
    if (m == -INFINITY) {
        if (threadIdx.x == 0) out[r] = SAMPLE_EMPTY;
        return;
    }
    // top-k: keep logits ≥ the k-th largest (its ties too).
    float kth = -INFINITY;
    if (top_k > 0 && top_k < v) {
        u32 unused;
        kth = key_value(radix_select(count_sel, ByLogit<T>{row}, v, top_k, false, &unused));
    }
    // top-p: keep, most likely first, each token whose predecessors' mass is below p.
    // Survivors: key > p_key, or key == p_key and index ≥ p_index.
    u32 p_key = 0, p_index = 0;
    if (top_p < 1.0f) {
        double above;
        const ByMass<T> by_mass = {row, kth, m};
        p_key = radix_select(mass_sel, by_mass, v, (double)top_p, true, &above);
        // Tokens tied at the boundary logit: on the CPU they come by descending index, each
        // kept while the mass before it is below p. Keep the n highest indices.
        u32 ties = 0;
        for (u32 j = threadIdx.x; j < v; j += blockDim.x) {
            u32 k;
            ties += by_mass.key(j, &k) && k == p_key ? 1u : 0u;
        }
        ties = block_count(ties, count_scratch);
        if (ties > 1) {
            const double target = mass_sel.target;
            const double each = exp((double)(key_value(p_key) - m));
            const double need = ceil((target - above) / each);
            const u32 keep = need >= (double)ties ? ties : (u32)max(need, 1.0);
            if (keep < ties) {
                u32 unused;
                const TiesByIndex<T> tied = {row, kth, p_key};
                p_index = radix_select(count_sel, tied, v, keep, false, &unused);
            }
        }
    }
    // A candidate: not -inf (never drawn, as on the CPU), and kept by top-k and top-p.
    const auto survives = [&](u32 j, float l) {
        const u32 k = order_key(l);
        return l > -INFINITY && l >= kth &&
               (top_p >= 1.0f || k > p_key || (k == p_key && j >= p_index));
    };
    // The draw: thread t owns the indices [t·chunk, (t+1)·chunk) and their mass. The
    // target's owner is the last thread with mass whose chunk starts at or below it (the
    // first thread with mass starts at exactly 0, so there is one); it walks its chunk as
    // the CPU walks the row, ending on its last candidate if rounding keeps the running
    // sum at or below the target.
    const u32 chunk = (v + blockDim.x - 1) / blockDim.x;
    const u32 lo = min(v, threadIdx.x * chunk), hi = min(v, lo + chunk);
    double mass = 0.0;
    for (u32 j = lo; j < hi; j++) {
        const float l = row.scaled(j);
        if (survives(j, l)) mass += exp((double)(l - m));
    }
    block_scan(mass, incl, warp_tot);
    const double target = uniforms[r] * incl[blockDim.x - 1];
    const double before = threadIdx.x ? incl[threadIdx.x - 1] : 0.0;
    const bool may_own = mass > 0.0 && before <= target;
    // The highest such thread: the lowest `blockDim.x - 1 - t` among them.
    Best owner = {may_own ? 0.0f : -INFINITY, may_own ? blockDim.x - 1 - threadIdx.x : blockDim.x};
    owner = block_best(owner, best_scratch);
    if (owner.i >= blockDim.x) {  // no mass at all: cannot happen after the max check
        if (threadIdx.x == 0) out[r] = SAMPLE_EMPTY;
        return;
    }
    if (threadIdx.x == blockDim.x - 1 - owner.i) {
        double cum = before;
        u32 pick = SAMPLE_EMPTY;
        for (u32 j = lo; j < hi; j++) {
            const float l = row.scaled(j);
            if (!survives(j, l)) continue;
            pick = j;
            cum += exp((double)(l - m));
            if (cum > target) break;
        }
        out[r] = pick;
    }
}

#define INSTANTIATE(T, S)                                                                  \
    extern "C" __global__ void __launch_bounds__(SAMPLE_BLOCK) sample_rows_##S(            \
        u32* out, const T* logits, u32 v, u32 stride, const u32* seen,                     \
        const u32* seen_start, float penalty, float temperature, u32 top_k, float top_p,   \
        const double* uniforms) {                                                          \
        sample_row(out, logits, v, stride, seen, seen_start, penalty, temperature, top_k,  \
                   top_p, uniforms);                                                       \
    }
INSTANTIATE(float, f32)
INSTANTIATE(bf16, bf16)
