// Speed of the gated delta rule at Qwen3.5-9B's delta-net size (16 key heads / 32 value heads of 128):
// one decode step (recurrent form; the state is 2 MiB, read and written twice) and a 512-token prefill
// in the recurrent and the chunked (64) form, on 1 and 2 threads. Counters: state bytes touched per
// second for the step, tokens per second for the prefill.
#include <benchmark/benchmark.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/thread_pool.h"
#include "ops/gated_delta_rule.h"
#include "ops/l2_normalize.h"

namespace hlwq {
namespace {

constexpr GatedDeltaShape kShape{16, 32, 128, 128};

struct Inputs {
  std::vector<float> query, key, value, decay, beta, state, out;
  explicit Inputs(int64_t tokens) {
    std::mt19937 generator(1);
    std::normal_distribution<float> normal;
    auto fill = [&](std::vector<float>& v, size_t n) {
      v.resize(n);
      for (float& x : v) x = normal(generator);
    };
    fill(query, tokens * kShape.key_heads * kShape.key_dim);
    fill(key, query.size());
    fill(value, tokens * kShape.value_heads * kShape.value_dim);
    l2_normalize(query, kShape.key_dim, 1e-6, 1 / std::sqrt(128.0f), query);
    l2_normalize(key, kShape.key_dim, 1e-6, 1.0f, key);
    decay.assign(tokens * kShape.value_heads, -0.05f);
    beta.assign(tokens * kShape.value_heads, 0.5f);
    state.assign(kShape.value_heads * kShape.key_dim * kShape.value_dim, 0.01f);
    out.resize(value.size());
  }
  GatedDeltaInputs view() const { return {query, key, value, decay, beta}; }
};

void BM_DecodeStep(benchmark::State& state) {
  ThreadPool pool(static_cast<int>(state.range(0)));
  Inputs inputs(1);
  for (auto _ : state) {
    gated_delta_rule_recurrent(kShape, inputs.view(), inputs.state, inputs.out, &pool);
    benchmark::DoNotOptimize(inputs.out.data());
  }
  // Two passes over the state, each reading and writing it.
  state.counters["state_GB/s"] = benchmark::Counter(4.0 * inputs.state.size() * sizeof(float) * state.iterations(),
                                                    benchmark::Counter::kIsRate, benchmark::Counter::kIs1000);
}

void BM_Prefill(benchmark::State& state) {
  ThreadPool pool(static_cast<int>(state.range(0)));
  const bool chunked = state.range(1) != 0;
  constexpr int64_t kTokens = 512;
  Inputs inputs(kTokens);
  for (auto _ : state) {
    if (chunked) {
      gated_delta_rule_chunked(kShape, inputs.view(), inputs.state, inputs.out, &pool);
    } else {
      gated_delta_rule_recurrent(kShape, inputs.view(), inputs.state, inputs.out, &pool);
    }
    benchmark::DoNotOptimize(inputs.out.data());
  }
  state.counters["tokens/s"] =
      benchmark::Counter(static_cast<double>(kTokens) * state.iterations(), benchmark::Counter::kIsRate);
}

BENCHMARK(BM_DecodeStep)->Arg(1)->Arg(2)->UseRealTime();
BENCHMARK(BM_Prefill)->Args({1, 0})->Args({1, 1})->Args({2, 0})->Args({2, 1})->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace hlwq

BENCHMARK_MAIN();
