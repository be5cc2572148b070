// The model runner on the CUDA backend gives the CPU backend's logits on the tiny fixture models of
// every architecture, dense and in the quantized formats (each backend running the packed formats
// with its own kernels): a prefill, decoding after it (recorded and replayed as a graph), and
// batched decode of several sequences. Skips without a GPU, except the error test.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

#include "core/file_writer.h"
#include "engine/engine_fixture.h"
#include "engine/format_folder.h"
#include "engine/model_runner.h"
#include "ops/backend.h"
#include "test_util.h"

namespace hlwq {
namespace {

enum class Format { dense, hlwq_q5, mlx_q4, ct_int4 };

std::string format_label(Format format) {
  switch (format) {
    case Format::dense: return "dense";
    case Format::hlwq_q5: return "hlwq_q5_b64";
    case Format::mlx_q4: return "mlx_q4_g32";
    case Format::ct_int4: return "ct_int4_g32";
  }
  return "";
}

// The engine fixtures, and the Qwen3.5 ones as "qwen35_text" and "qwen35_multimodal".
std::filesystem::path fixture(const std::string& architecture) {
  if (architecture.starts_with("qwen35_")) {
    return std::filesystem::path(HLWQ_SOURCE_DIR) / "tests" / "fixtures" / "qwen35" / architecture.substr(7);
  }
  return engine_fixture(architecture);
}

std::filesystem::path make_model(const std::string& architecture, Format format, const TemporaryFolder& temporary) {
  const std::filesystem::path dense = temporary.path() / "dense";
  std::filesystem::copy(fixture(architecture), dense);
  write_text_file(dense / "tokenizer.json", R"({"version": "1.0", "model": {"type": "BPE", "vocab": {}, "merges": []}})");
  if (format == Format::dense) return dense;
  const std::filesystem::path output = temporary.path() / "quantized";
  if (format == Format::hlwq_q5) write_format_folder(dense, "hlwq", 5, output);
  if (format == Format::mlx_q4) write_format_folder(dense, "mlx", 4, output);
  if (format == Format::ct_int4) write_format_folder(dense, "ct-int4", 4, output);
  return output;
}

struct Case {
  std::string architecture;
  Format format;
};

class CudaRunnerMatchesCpu : public ::testing::TestWithParam<Case> {};

double largest_magnitude(std::span<const float> values) {
  double largest = 0;
  for (float value : values) largest = std::max(largest, std::fabs(static_cast<double>(value)));
  return largest;
}

TEST_P(CudaRunnerMatchesCpu, PrefillDecodeAndBatches) {
  if (!cuda_backend_available()) GTEST_SKIP() << "no CUDA GPU on this machine (or built without CUDA)";
  const Case& test_case = GetParam();
  TemporaryFolder temporary;
  ThreadPool pool(2);
  const Model model = Model::load(make_model(test_case.architecture, test_case.format, temporary), pool);
  const ReferenceLogits reference = read_reference_logits(fixture(test_case.architecture));
  const int64_t vocab = model.config().vocab_size;
  const auto count = static_cast<int64_t>(reference.ids.size());
  std::unique_ptr<Backend> cuda = make_backend(BackendKind::cuda, 0);
  for (DType cache_dtype : {DType::F32, DType::F16}) {
    const std::vector<float> cpu = prefill_logits(model, reference.ids, pool, cache_dtype);
    const double largest = largest_magnitude(cpu);
    // Float sums in another order: a relative 1e-4 of the largest logit with an F32 cache. With a
    // 16-bit cache, a key or value whose two float versions straddle a rounding boundary is stored
    // one step (2^-11 relative) apart on the two sides, and later layers carry that on: 1e-3.
    // The hybrid's delta-net state carries every step's rounding on to all later positions: on an
    // H100 its differences were 5e-6 to 1.1e-4 of the largest logit with an F32 cache (MLX 4-bit
    // decode the largest), against at most 1.7e-6 for the other architectures, so 3e-4 there.
    const bool hybrid = test_case.architecture.starts_with("qwen35_");
    const double bound = (cache_dtype == DType::F32 ? (hybrid ? 3e-4 : 1e-4) : 1e-3) * std::max(1.0, largest);
    ModelRunner runner(model, *cuda, RunnerOptions{64, 3, 0, 0, cache_dtype, true});
    // One prefill of everything.
    const std::vector<float> all = runner.forward(0, reference.ids, 0, LogitsFor::all_positions);
    // Half as a prefill, the rest one token at a time (the third step on is replayed from a graph).
    const int64_t half = count / 2;
    std::vector<float> stepwise = runner.forward(1, std::span(reference.ids).first(half), 0, LogitsFor::all_positions);
    for (int64_t position = half; position < count; ++position) {
      const std::vector<float> step =
          runner.forward(1, std::span(reference.ids).subspan(position, 1), position, LogitsFor::last_position);
      stepwise.insert(stepwise.end(), step.begin(), step.end());
    }
    // Sequences 0 and 2 decode side by side from the same prompt half: each row equals the single
    // sequence's step.
    runner.forward(2, std::span(reference.ids).first(half), 0, LogitsFor::last_position);
    runner.forward(0, std::span(reference.ids).first(half), 0, LogitsFor::last_position);
    std::vector<float> batched;
    double batched_difference = 0;
    for (int64_t position = half; position < count; ++position) {
      const int32_t token = reference.ids[position];
      const int32_t tokens[] = {token, token};
      const TokenPlace places[] = {{0, static_cast<int32_t>(position)}, {2, static_cast<int32_t>(position)}};
      runner.decode(tokens, places, batched);
      for (int row = 0; row < 2; ++row) {
        batched_difference = std::max(
            batched_difference, max_abs_difference(std::span<const float>(batched).subspan(row * vocab, vocab),
                                                   std::span<const float>(cpu).subspan(position * vocab, vocab)));
      }
    }
    const double prefill_difference = max_abs_difference(all, cpu);
    const double decode_difference = max_abs_difference(stepwise, cpu);
    std::printf("%s %s, KV %s: max |cuda - cpu| prefill %.3g, decode %.3g, batched %.3g (max |logit| %.3g)\n",
                test_case.architecture.c_str(), format_label(test_case.format).c_str(),
                std::string(dtype_name(cache_dtype)).c_str(), prefill_difference, decode_difference,
                batched_difference, largest);
    EXPECT_LT(prefill_difference, bound);
    EXPECT_LT(decode_difference, bound);
    EXPECT_LT(batched_difference, bound);
  }
}

std::vector<Case> all_cases() {
  std::vector<Case> cases;
  for (const std::string architecture : {"llama", "llama_tied", "qwen2", "qwen3", "gemma3", "qwen35_text",
                                         "qwen35_multimodal"}) {
    for (Format format : {Format::dense, Format::hlwq_q5, Format::mlx_q4, Format::ct_int4}) {
      cases.push_back({architecture, format});
    }
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Engine, CudaRunnerMatchesCpu, ::testing::ValuesIn(all_cases()),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           return info.param.architecture + "_" + format_label(info.param.format);
                         });

TEST(CudaRunner, WithoutAGpuTheErrorSaysWhy) {
  if (cuda_backend_available()) GTEST_SKIP() << "a GPU is present; the error path is not reachable";
  const std::string message = error_message([&] { make_backend(BackendKind::cuda, 0); });
  EXPECT_NE(message.find("--backend cuda"), std::string::npos) << message;
}

}  // namespace
}  // namespace hlwq
