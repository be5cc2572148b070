// The GPU evaluation forward (engine/gpu_forward.h) gives the CPU runtime's logits on the tiny
// fixture models of every architecture, dense and in the quantized formats (which it runs
// dequantized to F32 while the CPU runs them packed). Skips without a GPU, except the error test.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

#include "convert/export_model.h"
#include "convert/quantize_model.h"
#include "core/file_writer.h"
#include "engine/engine_fixture.h"
#include "engine/gpu_forward.h"
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

std::filesystem::path make_model(const std::string& architecture, Format format, const TemporaryFolder& temporary) {
  const std::filesystem::path dense = temporary.path() / "dense";
  std::filesystem::copy(engine_fixture(architecture), dense);
  write_text_file(dense / "tokenizer.json", R"({"version": "1.0", "model": {"type": "BPE", "vocab": {}, "merges": []}})");
  if (format == Format::dense) return dense;
  const std::filesystem::path output = temporary.path() / "quantized";
  if (format == Format::hlwq_q5) {
    QuantizeOptions options;
    options.params.bits = 5;
    options.params.block = 64;
    options.threads = 2;
    quantize_model(dense, output, options);
  } else {
    ExportOptions options;
    options.threads = 2;
    options.group_size = 32;
    options.bits = 4;
    options.target = format == Format::mlx_q4 ? ExportTarget::mlx : ExportTarget::ct_int4;
    export_model(dense, output, options);
  }
  return output;
}

struct Case {
  std::string architecture;
  Format format;
};

class GpuForwardMatchesCpu : public ::testing::TestWithParam<Case> {};

TEST_P(GpuForwardMatchesCpu, OnEveryPositionOfAPass) {
  if (!gpu_forward_available()) GTEST_SKIP() << "no CUDA GPU on this machine (or built without CUDA)";
  const Case& test_case = GetParam();
  TemporaryFolder temporary;
  ThreadPool pool(2);
  const Model model = Model::load(make_model(test_case.architecture, test_case.format, temporary), pool);
  const ReferenceLogits reference = read_reference_logits(engine_fixture(test_case.architecture));
  const int64_t vocab = model.config().vocab_size;
  for (DType cache_dtype : {DType::F32, DType::F16}) {
    // The CPU's logits for every position, and the GPU's from position 0 and from a later one.
    const std::vector<float> cpu = prefill_logits(model, reference.ids, pool, cache_dtype);
    GpuForward gpu(model, 64, cache_dtype, pool);
    const std::vector<float> all = gpu.window_logits(reference.ids, LogitsFrom{0});
    const int64_t first = static_cast<int64_t>(reference.ids.size()) / 2;
    const std::vector<float> tail = gpu.window_logits(reference.ids, LogitsFrom{first});
    const double largest = std::fabs(*std::max_element(cpu.begin(), cpu.end(), [](float a, float b) {
      return std::fabs(a) < std::fabs(b);
    }));
    const double difference = max_abs_difference(all, cpu);
    std::printf("%s %s, KV %s: max |gpu - cpu| %.3g (max |logit| %.3g)\n", test_case.architecture.c_str(),
                format_label(test_case.format).c_str(), std::string(dtype_name(cache_dtype)).c_str(), difference,
                largest);
    // Float sums in another order: a relative 1e-4 of the largest logit (measured: ~1e-6 with an F32
    // cache). With a 16-bit cache, a key or value whose two float versions straddle a rounding
    // boundary is stored one step (2^-11 relative) apart on the two sides, and the later layers carry
    // that on: 1e-3 (measured on the H200: at most 9.5e-5 for llama/qwen, 5.0e-4 for Gemma 3, whose
    // extra norms amplify it).
    const double bound = (cache_dtype == DType::F32 ? 1e-4 : 1e-3) * std::max(1.0, largest);
    EXPECT_LT(difference, bound);
    EXPECT_LT(max_abs_difference(tail, std::span<const float>(cpu).subspan(first * vocab)), bound);
  }
}

std::vector<Case> all_cases() {
  std::vector<Case> cases;
  for (const std::string architecture : {"llama", "llama_tied", "qwen2", "qwen3", "gemma3"}) {
    for (Format format : {Format::dense, Format::hlwq_q5, Format::mlx_q4, Format::ct_int4}) {
      cases.push_back({architecture, format});
    }
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Engine, GpuForwardMatchesCpu, ::testing::ValuesIn(all_cases()),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           return info.param.architecture + "_" + format_label(info.param.format);
                         });

TEST(GpuForward, WithoutAGpuTheErrorSaysWhy) {
  if (gpu_forward_available()) GTEST_SKIP() << "a GPU is present; the error path is not reachable";
  ThreadPool pool(1);
  const Model model = Model::load(engine_fixture("llama"), pool);
  const std::string message = error_message([&] { GpuForward gpu(model, 64, DType::F16, pool); });
  EXPECT_NE(message.find("--backend cuda"), std::string::npos) << message;
}

}  // namespace
}  // namespace hlwq
