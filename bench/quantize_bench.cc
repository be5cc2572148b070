// Throughput of HLWQ quantization: a 4096 x 4096 BF16 matrix (a typical LLM projection) on one
// thread, in bytes of BF16 input per second. Target: >= 1 GB/s per core at Q5.
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "core/dtype.h"
#include "core/thread_pool.h"
#include "quant/hlwq_codec.h"

namespace hlwq {
namespace {

constexpr int64_t kRows = 4096;
constexpr int64_t kColumns = 4096;

const std::vector<std::byte>& bf16_weights() {
  static const std::vector<std::byte> bytes = [] {
    std::mt19937 generator(1);
    std::normal_distribution<float> normal(0.0f, 0.02f);
    std::vector<float> values(static_cast<size_t>(kRows * kColumns));
    for (float& value : values) value = normal(generator);
    std::vector<std::byte> encoded(values.size() * 2);
    convert_from_float(values, DType::BF16, encoded);
    return encoded;
  }();
  return bytes;
}

HlwqParams params_for(const benchmark::State& state) {
  HlwqParams params;
  params.bits = static_cast<int>(state.range(0));
  if (state.range(1) != 0) params.sign_seed = 7;
  if (state.range(2) != 0) params.gain = BlockGain::least_squares;
  return params;
}

void QuantizeBf16Matrix(benchmark::State& state) {
  const HlwqCodec codec(params_for(state), kColumns);
  const std::vector<std::byte>& weights = bf16_weights();
  std::vector<uint8_t> codes(static_cast<size_t>(kRows) * codec.layout().code_bytes);
  std::vector<uint16_t> norms(static_cast<size_t>(kRows * codec.layout().blocks));
  ThreadPool pool(1);
  for (auto _ : state) {
    codec.quantize_matrix(DType::BF16, weights, kRows, codes, norms, pool);
    benchmark::DoNotOptimize(codes.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(weights.size()));
}
// Arguments: bits, signs (0/1), least-squares gain (0/1).
BENCHMARK(QuantizeBf16Matrix)
    ->ArgNames({"bits", "signs", "lsq"})
    ->Args({4, 0, 0})
    ->Args({5, 0, 0})
    ->Args({8, 0, 0})
    ->Args({5, 1, 1})
    ->Unit(benchmark::kMillisecond);

void DequantizeMatrix(benchmark::State& state) {
  const HlwqCodec codec(params_for(state), kColumns);
  std::vector<uint8_t> codes(static_cast<size_t>(kRows) * codec.layout().code_bytes);
  std::vector<uint16_t> norms(static_cast<size_t>(kRows * codec.layout().blocks));
  ThreadPool pool(1);
  codec.quantize_matrix(DType::BF16, bf16_weights(), kRows, codes, norms, pool);
  std::vector<float> weights(static_cast<size_t>(kRows * kColumns));
  for (auto _ : state) {
    codec.dequantize_matrix(codes, norms, kRows, weights, pool);
    benchmark::DoNotOptimize(weights.data());
    benchmark::ClobberMemory();
  }
  // Counted in BF16-equivalent bytes, like quantization, so the two rates compare directly.
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * kRows * kColumns * 2);
}
BENCHMARK(DequantizeMatrix)->ArgNames({"bits", "signs", "lsq"})->Args({5, 0, 0})->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace hlwq

BENCHMARK_MAIN();
