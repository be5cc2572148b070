// Speed of linear_forward at decode (batch 1) on a 2048x8192 and an 8192x2048 weight in every
// storage format, on 1 and 2 threads, against this machine's memory read bandwidth measured in the
// same program (a 1 GiB buffer summed on the same thread counts): the counters give weight bytes
// read per second and the fraction of that read roofline. Target: >= 0.8 for quantized formats on
// 2 threads.
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdio>
#include <atomic>
#include <map>
#include <random>
#include <span>
#include <tuple>
#include <memory>
#include <string>
#include <vector>

#include "core/aligned_buffer.h"
#include "core/thread_pool.h"
#include "ops/linear.h"
#include "ops/linear_weight_builders.h"
#include "quant/hlwq_codec.h"

namespace hlwq {
namespace {

// Bytes the kernel reads per product: the stored arrays as held in memory (MLX and INT4 scales and
// biases are held as float, twice their stored BF16 size).
double bytes_read(const LinearWeight& weight) {
  return static_cast<double>(weight.data.size() + weight.codes.size() + weight.norms.size() + weight.packed.size() +
                             (weight.scales.size() + weight.biases.size()) * sizeof(float));
}

// Sums a 1 GiB buffer split across `threads` threads, best of three passes: the read bandwidth a
// matrix-vector product can reach at best.
double read_bandwidth(int threads) {
  static std::map<int, double> measured;
  if (auto found = measured.find(threads); found != measured.end()) return found->second;
  constexpr size_t kBytes = size_t{1} << 30;
  static AlignedBuffer buffer = [] {
    AlignedBuffer bytes(kBytes);
    auto words = bytes.as_mutable<uint64_t>();
    for (size_t i = 0; i < words.size(); ++i) words[i] = i * 0x9e3779b97f4a7c15ull;
    return bytes;
  }();
  ThreadPool pool(threads);
  const auto words = buffer.as<uint64_t>();
  double best = 0;
  for (int pass = 0; pass < 3; ++pass) {
    std::vector<uint64_t> sums(static_cast<size_t>(threads) * 8, 0);
    std::atomic<size_t> slot{0};
    const auto start = std::chrono::steady_clock::now();
    pool.parallel_for(words.size() / 8, [&](size_t begin, size_t end) {
      uint64_t partial[8] = {};
      for (size_t i = begin * 8; i < end * 8; i += 8) {
        for (size_t j = 0; j < 8; ++j) partial[j] += words[i + j];
      }
      const size_t index = slot.fetch_add(1);
      for (size_t j = 0; j < 8; ++j) sums[index * 8 + j] = partial[j];
    });
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    benchmark::DoNotOptimize(sums.data());
    best = std::max(best, static_cast<double>(kBytes) / seconds);
  }
  std::fprintf(stderr, "read bandwidth, %d thread(s): %.2f GB/s\n", threads, best / 1e9);
  return measured[threads] = best;
}

std::vector<float> random_normal(size_t count, uint32_t seed, float scale) {
  std::mt19937 generator(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> values(count);
  for (float& value : values) value = normal(generator);
  return values;
}

enum Format { kBf16, kHlwqQ4, kHlwqQ5, kMlx4, kInt4, kHlwqQ4Block64, kHlwqQ5Block64, kFormats };
const char* const kFormatNames[] = {"bf16", "hlwq_q4", "hlwq_q5", "mlx4_g64", "int4_g128", "hlwq_q4_d64", "hlwq_q5_d64"};

LinearWeight build_weight(int format, int64_t rows, int64_t columns) {
  const std::vector<float> matrix = random_normal(static_cast<size_t>(rows * columns), 1, 0.02f);
  ThreadPool pool(2);
  switch (format) {
    case kBf16: return make_dense_linear_weight(DType::BF16, matrix, rows, columns);
    case kHlwqQ4:
    case kHlwqQ5:
    case kHlwqQ4Block64:
    case kHlwqQ5Block64: {
      HlwqParams params;
      params.bits = format == kHlwqQ4 || format == kHlwqQ4Block64 ? 4 : 5;
      if (format == kHlwqQ4Block64 || format == kHlwqQ5Block64) params.block = 64;
      return make_hlwq_linear_weight(std::make_shared<const HlwqCodec>(params, columns), matrix, rows, pool);
    }
    case kMlx4: return make_mlx_affine_linear_weight(AffineParams{4, 64}, DType::BF16, matrix, rows, columns);
    default: return make_int4_linear_weight(Int4Params{128}, DType::BF16, matrix, rows, columns);
  }
}

LinearWeight copy_of(const LinearWeight& weight) {
  LinearWeight copy;
  copy.format = weight.format;
  copy.rows = weight.rows;
  copy.columns = weight.columns;
  copy.dtype = weight.dtype;
  copy.data = AlignedBuffer(weight.data.bytes());
  copy.codec = weight.codec;
  copy.codes = AlignedBuffer(weight.codes.bytes());
  copy.norms = AlignedBuffer(weight.norms.bytes());
  copy.affine = weight.affine;
  copy.packed = AlignedBuffer(weight.packed.bytes());
  copy.scales = weight.scales;
  copy.biases = weight.biases;
  copy.int4 = weight.int4;
  return copy;
}

// Copies of one weight adding up to at least 768 MiB (three times this machine's 256 MiB L3), used
// in turn so every product reads its weight from memory, as a model's layers do. Only the latest
// weight's copies are kept.
const std::vector<LinearWeight>& copies_for(int format, int64_t rows, int64_t columns) {
  static std::tuple<int, int64_t, int64_t> key{-1, 0, 0};
  static std::vector<LinearWeight> copies;
  if (key == std::make_tuple(format, rows, columns)) return copies;
  copies.clear();
  copies.push_back(build_weight(format, rows, columns));
  const double total = 768.0 * (1 << 20);
  while (static_cast<double>(copies.size()) * bytes_read(copies[0]) < total) copies.push_back(copy_of(copies[0]));
  key = {format, rows, columns};
  return copies;
}

// Arguments: format, rows, columns, threads, batch, cached. cached = 1 multiplies one copy again
// and again, so the weight stays in this core's cache (the SmolLM2 shapes fit the 2 MiB L2): the
// kernel's compute speed, which must exceed the memory bandwidth for the roofline to be reachable,
// and which a bandwidth-bound measurement on this shared VM hides.
void LinearForward(benchmark::State& state) {
  const int format = static_cast<int>(state.range(0));
  const int64_t rows = state.range(1), columns = state.range(2), batch = state.range(4);
  const int threads = static_cast<int>(state.range(3));
  const bool cached = state.range(5) != 0;
  const double roofline = read_bandwidth(threads);
  const std::vector<LinearWeight>& all_weights = copies_for(format, rows, columns);
  const std::span<const LinearWeight> weights(all_weights.data(), cached ? 1 : all_weights.size());
  const std::vector<float> x = random_normal(static_cast<size_t>(batch * columns), 2, 1.0f);
  std::vector<float> y(static_cast<size_t>(batch * rows));
  ThreadPool pool(threads);
  size_t next = 0;
  for (auto _ : state) {
    linear_forward(weights[next], x, batch, y, pool);
    next = next + 1 == weights.size() ? 0 : next + 1;
    benchmark::DoNotOptimize(y.data());
  }
  state.SetLabel(kFormatNames[format]);
  const double bytes = bytes_read(weights[0]);
  state.counters["weight_B/s"] = benchmark::Counter(bytes, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["roofline"] = benchmark::Counter(bytes / roofline, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["bits/w"] = 8 * bytes / static_cast<double>(rows * columns);
}

void Arguments(benchmark::internal::Benchmark* bench) {
  bench->ArgNames({"format", "rows", "cols", "threads", "batch", "cached"});
  for (int format = 0; format < kFormats; ++format) {
    // The 1B model's MLP shapes and SmolLM2-135M's short rows (576 columns, 9 MLX groups per row;
    // INT4 groups of 128 do not divide 576).
    for (auto [rows, columns] : {std::pair<int64_t, int64_t>{2048, 8192}, {8192, 2048}, {1536, 576}, {576, 1536}}) {
      if (format == kInt4 && columns % 128 != 0) continue;
      // Blocks of 64: what --block auto gives rows that 128 does not divide (576 columns).
      if ((format == kHlwqQ4Block64 || format == kHlwqQ5Block64) && columns % 128 == 0) continue;
      for (int threads : {1, 2}) bench->Args({format, rows, columns, threads, 1, 0});
      if (rows * columns < 1 << 20) bench->Args({format, rows, columns, 1, 1, 1});
    }
    bench->Args({format, 2048, 8192, 1, 64, 0});  // a prefill tile, for reference
    bench->Args({format, 2048, 8192, 2, 64, 0});
  }
}
BENCHMARK(LinearForward)->Apply(Arguments)->Unit(benchmark::kMicrosecond)->UseRealTime();

}  // namespace
}  // namespace hlwq

BENCHMARK_MAIN();
