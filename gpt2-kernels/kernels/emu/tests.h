// What emulate.cpp gives the tests, and the tests it runs.
#pragma once
#include <functional>
#include <string>

#include "cuda_bf16.h"

// Runs kernel() as a grid of blocks of block.x threads (1-D blocks of whole warps).
void launch(dim3 grid, dim3 block, const std::function<void()>& kernel);
// One PASS/FAIL line; err > tol (or NaN) is a failure.
void report(const std::string& name, double err, double tol);

void run_matmul_tests(const std::string& filter);
void run_attention_tests(const std::string& filter);
void run_sample_tests(const std::string& filter);
inline void run_tests(const std::string& filter) {
    run_matmul_tests(filter);
    run_attention_tests(filter);
    run_sample_tests(filter);
}

// Shared by the test files.
using bf16_t = __nv_bfloat16;
inline float to_f(float x) { return x; }
inline float to_f(bf16_t x) { return __bfloat162float(x); }
template <typename T>
inline T from_f(float x);
template <>
inline float from_f<float>(float x) { return x; }
template <>
inline bf16_t from_f<bf16_t>(float x) { return __float2bfloat16_rn(x); }
