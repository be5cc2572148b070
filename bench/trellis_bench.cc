// Trellis codes (quant/trellis.h): encode and decode speed on N(0, 1) values (google benchmark),
// and with `--model DIR` the weight SQNR of trellis codes against HLWQ's Lloyd-Max codes on the
// same rotated blocks of a model's linear weights.
//
//   build/trellis_bench [benchmark flags]
//   build/trellis_bench --model DIR [--rows-per-tensor 3] [--block 64] [--state-bits 16]
//
// The study: for each 2-D weight of the layers (`layers.N.*.weight`), a few rows spread over the
// tensor (first, middle, last, ...); each row is cut into blocks (columns a multiple of the block),
// each block multiplied by seeded random signs, rotated by the Walsh-Hadamard transform and divided
// by its RMS. Then per bit width k: Lloyd-Max codes per value (HLWQ's code) and one trellis walk per
// row (L state bits, k bits a value), each block scaled back by its least-squares gain. Both store
// an fp16 gain a block; the trellis adds its first state's L - k bits a row. Prints the pooled
// SQNR (10 log10 of the sum of squares over the sum of squared errors) and the bits per weight.
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "io/model_folder.h"
#include "quant/hadamard.h"
#include "quant/lloyd_max.h"
#include "quant/random_signs.h"
#include "quant/trellis.h"

namespace hlwq {
namespace {

std::vector<float> normal_values(size_t count, uint32_t seed) {
  std::vector<float> values(count);
  uint64_t state = seed * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i < count; i += 2) {  // Box-Muller on a 64-bit LCG
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    const double u1 = (static_cast<double>(state >> 11) + 0.5) / 9007199254740992.0;
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    const double u2 = static_cast<double>(state >> 11) / 9007199254740992.0;
    const double radius = std::sqrt(-2 * std::log(u1));
    values[i] = static_cast<float>(radius * std::cos(2 * M_PI * u2));
    if (i + 1 < count) values[i + 1] = static_cast<float>(radius * std::sin(2 * M_PI * u2));
  }
  return values;
}

void BM_TrellisEncode(benchmark::State& state) {
  const TrellisParams params{static_cast<int>(state.range(0)), static_cast<int>(state.range(1))};
  const std::vector<float> codebook = trellis_codebook(params.state_bits);
  const std::vector<float> values = normal_values(256, 1);
  for (auto _ : state) benchmark::DoNotOptimize(trellis_encode(params, codebook, values));
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(values.size()));
}
BENCHMARK(BM_TrellisEncode)->Args({12, 2})->Args({16, 2})->Args({16, 4})->Unit(benchmark::kMillisecond);

void BM_TrellisDecode(benchmark::State& state) {
  const TrellisParams params{16, static_cast<int>(state.range(0))};
  const std::vector<float> codebook = trellis_codebook(16);
  const TrellisWalk walk = trellis_encode(params, codebook, normal_values(4096, 2));
  std::vector<float> out(4096);
  for (auto _ : state) {
    trellis_decode(params, codebook, walk, out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations() * 4096);
}
BENCHMARK(BM_TrellisDecode)->Arg(2)->Arg(4);

struct Totals {
  double signal = 0, noise = 0;
  void add(std::span<const float> reference, std::span<const float> coded) {
    for (size_t i = 0; i < reference.size(); ++i) {
      signal += static_cast<double>(reference[i]) * reference[i];
      noise += (static_cast<double>(reference[i]) - coded[i]) * (static_cast<double>(reference[i]) - coded[i]);
    }
  }
  double sqnr() const { return 10 * std::log10(signal / noise); }
};

// coded (unit-variance block codes) scaled per block by the least-squares gain against the row.
void scale_blocks(std::span<const float> row, std::span<float> coded, size_t block) {
  for (size_t start = 0; start < row.size(); start += block) {
    double dot = 0, norm = 0;
    for (size_t i = start; i < start + block; ++i) dot += row[i] * coded[i], norm += coded[i] * coded[i];
    const float gain = norm > 0 ? static_cast<float>(dot / norm) : 0.0f;
    for (size_t i = start; i < start + block; ++i) coded[i] *= gain;
  }
}

int study(const std::filesystem::path& model, int rows_per_tensor, size_t block, int state_bits) {
  const ModelFolder folder = ModelFolder::open(model);
  // The rotated rows, each block divided by its RMS (rotation is orthonormal: errors keep their size).
  std::vector<std::vector<float>> rows, unit_rows;
  int64_t tensors = 0;
  for (const std::string& name : folder.tensor_names()) {
    const TensorInfo& info = folder.info(name);
    if (name.find("layers.") == std::string::npos || !name.ends_with(".weight") || info.shape.size() != 2) continue;
    const int64_t height = info.shape[0], width = info.shape[1];
    if (width % static_cast<int64_t>(block) != 0) continue;
    ++tensors;
    const std::span<const std::byte> bytes = folder.data(name);
    const size_t element = dtype_size(info.dtype);
    const std::vector<float> signs = random_signs(42, static_cast<size_t>(width));
    for (int r = 0; r < rows_per_tensor; ++r) {
      const int64_t row_index = rows_per_tensor == 1 ? 0 : r * (height - 1) / (rows_per_tensor - 1);
      std::vector<float> row(static_cast<size_t>(width));
      convert_to_float(info.dtype,
                       bytes.subspan(static_cast<size_t>(row_index * width) * element, static_cast<size_t>(width) * element),
                       row);
      std::vector<float> unit(row.size());
      for (size_t start = 0; start < row.size(); start += block) {
        std::span<float> part(row.data() + start, block);
        for (size_t i = 0; i < block; ++i) part[i] *= signs[start + i];
        walsh_hadamard_transform(part);
        double squares = 0;
        for (const float v : part) squares += static_cast<double>(v) * v;
        const float rms = static_cast<float>(std::sqrt(squares / block));
        for (size_t i = 0; i < block; ++i) unit[start + i] = rms > 0 ? part[i] / rms : 0.0f;
      }
      rows.push_back(std::move(row));
      unit_rows.push_back(std::move(unit));
    }
  }
  check(!rows.empty(), "trellis study: no layer weight in ", model.string(), " has columns a multiple of ", block);
  int64_t values = 0;
  for (const auto& row : rows) values += static_cast<int64_t>(row.size());
  std::printf("%s: %lld tensors, %zu rows, %lld values, blocks of %zu, trellis L = %d\n", model.string().c_str(),
              static_cast<long long>(tensors), rows.size(), static_cast<long long>(values), block, state_bits);
  std::printf("| k | Lloyd-Max SQNR dB | bits/weight | trellis SQNR dB | bits/weight | gain dB | Gaussian bound at k dB |\n"
              "|---|---|---|---|---|---|---|\n");
  const std::vector<float> trellis_book = trellis_codebook(state_bits);
  for (const int bits : {2, 3, 4}) {
    const Codebook codebook = lloyd_max_codebook(bits);
    const TrellisParams params{state_bits, bits};
    Totals scalar, trellis;
    int64_t trellis_bits = 0;
    for (size_t r = 0; r < rows.size(); ++r) {
      std::vector<float> coded(rows[r].size());
      for (size_t i = 0; i < coded.size(); ++i) coded[i] = codebook.centroids[nearest_code(codebook, unit_rows[r][i])];
      scale_blocks(rows[r], coded, block);
      scalar.add(rows[r], coded);
      const TrellisWalk walk = trellis_encode(params, trellis_book, unit_rows[r]);
      trellis_decode(params, trellis_book, walk, coded);
      scale_blocks(rows[r], coded, block);
      trellis.add(rows[r], coded);
      trellis_bits += trellis_walk_bits(params, static_cast<int64_t>(coded.size()));
    }
    const double gain_bits = 16.0 / block;
    std::printf("| %d | %.2f | %.3f | %.2f | %.3f | %+.2f | %.2f |\n", bits, scalar.sqnr(), bits + gain_bits,
                trellis.sqnr(), static_cast<double>(trellis_bits) / values + gain_bits, trellis.sqnr() - scalar.sqnr(),
                6.0206 * bits);
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace
}  // namespace hlwq

int main(int argc, char** argv) {
  if (argc > 2 && std::strcmp(argv[1], "--model") == 0) {
    int rows_per_tensor = 3, state_bits = 16;
    size_t block = 64;
    for (int i = 3; i + 1 < argc; i += 2) {
      if (std::strcmp(argv[i], "--rows-per-tensor") == 0) rows_per_tensor = std::atoi(argv[i + 1]);
      else if (std::strcmp(argv[i], "--block") == 0) block = static_cast<size_t>(std::atoi(argv[i + 1]));
      else if (std::strcmp(argv[i], "--state-bits") == 0) state_bits = std::atoi(argv[i + 1]);
      else {
        std::fprintf(stderr, "trellis_bench: unknown option %s\n", argv[i]);
        return 2;
      }
    }
    try {
      hlwq::check(rows_per_tensor >= 1 && hlwq::is_power_of_two(block) && block >= 2,
                  "trellis_bench: --rows-per-tensor must be >= 1 and --block a power of two");
      return hlwq::study(argv[2], rows_per_tensor, block, state_bits);
    } catch (const hlwq::Error& error) {
      std::fprintf(stderr, "trellis_bench: %s\n", error.what());
      return 1;
    }
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
