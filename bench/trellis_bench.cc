// Trellis codes (quant/trellis.h): encode and decode speed on N(0, 1) values (google benchmark),
// and with `--model DIR` the weight SQNR of trellis codes against HLWQ's Lloyd-Max codes on the
// same rotated blocks of a model's linear weights.
//
//   build/trellis_bench [benchmark flags]
//   build/trellis_bench --model DIR [--rows-per-tensor 3] [--block 64] [--state-bits 16]
//   build/trellis_bench --model DIR --write-dense OUT --bits K [--block 64] [--state-bits 12] [--threads N]
//
// The study: for each 2-D weight of the layers (`layers.N.*.weight`), a few rows spread over the
// tensor (first, middle, last, ...); each row is cut into blocks (columns a multiple of the block),
// each block multiplied by seeded random signs, rotated by the Walsh-Hadamard transform and divided
// by its RMS. Then per bit width k: Lloyd-Max codes per value (HLWQ's code) and one trellis walk per
// row (L state bits, k bits a value), each block scaled back by its least-squares gain. Both store
// an fp16 gain a block; the trellis adds its first state's L - k bits a row. Prints the pooled
// SQNR (10 log10 of the sum of squares over the sum of squared errors) and the bits per weight.
//
// With --write-dense: every row of every such weight coded the same way (trellis, k bits a value),
// decoded, scaled by its blocks' gains, rotated back and written with the other tensors as an F32
// folder OUT (config and tokenizer files copied), so that `hlwq ppl --kld-base` measures the model
// with trellis-coded weights through the same engine as every other format (weights alone).
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "core/staged_directory.h"
#include "core/thread_pool.h"
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
BENCHMARK(BM_TrellisEncode)->Args({12, 2})->Args({12, 4})->Args({14, 4})->Args({16, 2})->Args({16, 4})->Unit(benchmark::kMillisecond);

// The plain scalar Viterbi (the SIMD encoder above gives the same walks).
void BM_TrellisEncodeReference(benchmark::State& state) {
  const TrellisParams params{static_cast<int>(state.range(0)), static_cast<int>(state.range(1))};
  const std::vector<float> codebook = trellis_codebook(params.state_bits);
  const std::vector<float> values = normal_values(256, 1);
  for (auto _ : state) benchmark::DoNotOptimize(trellis_encode_reference(params, codebook, values));
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(values.size()));
}
BENCHMARK(BM_TrellisEncodeReference)->Args({12, 2})->Args({12, 4})->Args({14, 4})->Args({16, 2})->Args({16, 4})->Unit(benchmark::kMillisecond);

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

// Whether a tensor is one the study codes: a 2-D weight of the layers whose rows are whole blocks.
bool coded_weight(const std::string& name, const TensorInfo& info, size_t block) {
  return name.find("layers.") != std::string::npos && name.ends_with(".weight") && info.shape.size() == 2 &&
         info.shape[1] % static_cast<int64_t>(block) == 0;
}

// Rotates `row` in place, block by block (seeded signs, then the Walsh-Hadamard transform), and
// returns the rotated row with each block divided by its RMS.
std::vector<float> rotate_to_unit_blocks(std::span<float> row, std::span<const float> signs, size_t block) {
  std::vector<float> unit(row.size());
  for (size_t start = 0; start < row.size(); start += block) {
    std::span<float> part = row.subspan(start, block);
    for (size_t i = 0; i < block; ++i) part[i] *= signs[start + i];
    walsh_hadamard_transform(part);
    double squares = 0;
    for (const float v : part) squares += static_cast<double>(v) * v;
    const float rms = static_cast<float>(std::sqrt(squares / block));
    for (size_t i = 0; i < block; ++i) unit[start + i] = rms > 0 ? part[i] / rms : 0.0f;
  }
  return unit;
}

int study(const std::filesystem::path& model, int rows_per_tensor, size_t block, int state_bits) {
  const ModelFolder folder = ModelFolder::open(model);
  // The rotated rows, each block divided by its RMS (rotation is orthonormal: errors keep their size).
  std::vector<std::vector<float>> rows, unit_rows;
  int64_t tensors = 0;
  for (const std::string& name : folder.tensor_names()) {
    const TensorInfo& info = folder.info(name);
    if (!coded_weight(name, info, block)) continue;
    const int64_t height = info.shape[0], width = info.shape[1];
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
      std::vector<float> unit = rotate_to_unit_blocks(row, signs, block);
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

// Trellis-codes one row in place: seeded signs and the Walsh-Hadamard transform per block, each
// block divided by its RMS, one walk over the row, each block scaled by its least-squares gain, then
// rotated back. Returns the walk's bits.
int64_t trellis_code_row(std::span<float> row, std::span<const float> signs, const TrellisParams& params,
                         std::span<const float> codebook, size_t block) {
  const std::vector<float> unit = rotate_to_unit_blocks(row, signs, block);
  std::vector<float> coded(row.size());
  const TrellisWalk walk = trellis_encode(params, codebook, unit);
  trellis_decode(params, codebook, walk, coded);
  scale_blocks(row, coded, block);
  for (size_t start = 0; start < row.size(); start += block) {
    std::span<float> part(coded.data() + start, block);
    walsh_hadamard_transform(part);
    for (size_t i = 0; i < block; ++i) row[start + i] = part[i] * signs[start + i];
  }
  return trellis_walk_bits(params, static_cast<int64_t>(row.size()));
}

int write_dense(const std::filesystem::path& model, const std::filesystem::path& out, int bits, size_t block,
                int state_bits, int threads) {
  const TrellisParams params{state_bits, bits};
  check_trellis_params(params);
  const ModelFolder folder = ModelFolder::open(model);
  std::vector<TensorDeclaration> declarations;
  for (const std::string& name : folder.tensor_names()) declarations.push_back({name, DType::F32, folder.info(name).shape});
  StagedDirectory staged(out);
  ShardedSafetensorsWriter writer(staged.path(), declarations, uint64_t{5} << 30, {{"format", "pt"}});
  const std::vector<float> codebook = trellis_codebook(state_bits);
  ThreadPool pool(threads);
  Totals totals;
  int64_t coded_values = 0, coded_bits = 0, coded_tensors = 0;
  for (const std::string& name : folder.tensor_names()) {
    const TensorInfo& info = folder.info(name);
    std::vector<float> values(static_cast<size_t>(info.element_count()));
    convert_to_float(info.dtype, folder.data(name), values);
    if (coded_weight(name, info, block)) {
      const std::vector<float> original = values;
      const size_t width = static_cast<size_t>(info.shape[1]);
      const std::vector<float> signs = random_signs(42, width);
      std::vector<int64_t> row_bits(static_cast<size_t>(info.shape[0]));
      pool.parallel_for(row_bits.size(), [&](size_t begin, size_t end) {
        for (size_t r = begin; r < end; ++r) {
          row_bits[r] = trellis_code_row(std::span<float>(values).subspan(r * width, width), signs, params, codebook, block);
        }
      });
      totals.add(original, values);
      for (const int64_t b : row_bits) coded_bits += b + static_cast<int64_t>(16 * (width / block));
      coded_values += static_cast<int64_t>(values.size());
      ++coded_tensors;
      std::printf("  %s: %lld x %lld\n", name.c_str(), static_cast<long long>(info.shape[0]),
                  static_cast<long long>(info.shape[1]));
      std::fflush(stdout);
    }
    writer.write(name, std::as_bytes(std::span<const float>(values)));
  }
  writer.close();
  std::filesystem::copy_file(model / "config.json", staged.path() / "config.json");
  for (const std::filesystem::path& file : folder.auxiliary_files()) {
    std::filesystem::copy_file(file, staged.path() / file.filename());
  }
  staged.commit();
  std::printf("%s: %lld tensors trellis-coded (L %d, k %d, blocks of %zu), %.4f bits a weight, SQNR %.2f dB\n",
              out.string().c_str(), static_cast<long long>(coded_tensors), state_bits, bits, block,
              static_cast<double>(coded_bits) / coded_values, totals.sqnr());
  return 0;
}

}  // namespace
}  // namespace hlwq

int main(int argc, char** argv) {
  if (argc > 2 && std::strcmp(argv[1], "--model") == 0) {
    int rows_per_tensor = 3, state_bits = 0, bits = 0, threads = 0;
    size_t block = 64;
    std::string write_dense;
    for (int i = 3; i < argc; i += 2) {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "trellis_bench: %s needs a value\n", argv[i]);
        return 2;
      }
      if (std::strcmp(argv[i], "--rows-per-tensor") == 0) rows_per_tensor = std::atoi(argv[i + 1]);
      else if (std::strcmp(argv[i], "--block") == 0) block = static_cast<size_t>(std::atoi(argv[i + 1]));
      else if (std::strcmp(argv[i], "--state-bits") == 0) state_bits = std::atoi(argv[i + 1]);
      else if (std::strcmp(argv[i], "--bits") == 0) bits = std::atoi(argv[i + 1]);
      else if (std::strcmp(argv[i], "--threads") == 0) threads = std::atoi(argv[i + 1]);
      else if (std::strcmp(argv[i], "--write-dense") == 0) write_dense = argv[i + 1];
      else {
        std::fprintf(stderr, "trellis_bench: unknown option %s\n", argv[i]);
        return 2;
      }
    }
    try {
      hlwq::check(rows_per_tensor >= 1 && hlwq::is_power_of_two(block) && block >= 2,
                  "trellis_bench: --rows-per-tensor must be >= 1 and --block a power of two");
      if (!write_dense.empty()) {
        hlwq::check(bits >= 1, "trellis_bench: --write-dense needs --bits K");
        return hlwq::write_dense(argv[2], write_dense, bits, block, state_bits > 0 ? state_bits : 12, threads);
      }
      return hlwq::study(argv[2], rows_per_tensor, block, state_bits > 0 ? state_bits : 16);
    } catch (const std::exception& error) {
      std::fprintf(stderr, "trellis_bench: %s\n", error.what());
      return 1;
    }
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
