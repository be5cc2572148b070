// Each storage format executes like its dequantized equivalent: the engine on an HLWQ / MLX affine /
// CT INT4 folder gives the logits of the engine on `hlwq export --to bf16 --dtype f32` of that
// same folder (the same weights as plain floats).
#include <gtest/gtest.h>

#include <cstdio>
#include <ostream>
#include <string>

#include "convert/export_model.h"
#include "convert/quantize_model.h"
#include "core/file_writer.h"
#include "engine/engine_fixture.h"
#include "test_util.h"

namespace hlwq {
namespace {

// hlwq_q8_absmax: the ablation's baseline (rotation none, uniform codebook) through the same kernel.
// trellis_k8: trellis codes of 8 bits a value (L = 12), the embedding too with trellis_k8_embeddings.
enum class Format { hlwq_q8, hlwq_q8_embeddings, hlwq_q8_absmax, trellis_k8, trellis_k8_embeddings, mlx_q8, ct_int4 };

std::string format_label(Format format) {
  switch (format) {
    case Format::hlwq_q8: return "hlwq-q8-b64";
    case Format::hlwq_q8_embeddings: return "hlwq-q8-b64-embeddings";
    case Format::hlwq_q8_absmax: return "hlwq-q8-b64-absmax";
    case Format::trellis_k8: return "trellis-k8-l12";
    case Format::trellis_k8_embeddings: return "trellis-k8-l12-embeddings";
    case Format::mlx_q8: return "mlx-q8-g32";
    case Format::ct_int4: return "ct-int4-g32";
  }
  return "";
}

// Writes the quantized folder for `format` from the dense fixture copy.
void quantize_to(Format format, const std::filesystem::path& dense, const std::filesystem::path& output) {
  if (format == Format::trellis_k8 || format == Format::trellis_k8_embeddings) {
    QuantizeOptions options;
    options.params.bits = 8;
    options.params.block = 64;
    options.params.gain = BlockGain::least_squares;
    options.params.sign_seed = 5;
    options.trellis_state_bits = 12;
    options.selection.quantize_embeddings = format == Format::trellis_k8_embeddings;
    options.threads = 2;
    quantize_model(dense, output, options);
    return;
  }
  if (format == Format::hlwq_q8 || format == Format::hlwq_q8_embeddings || format == Format::hlwq_q8_absmax) {
    QuantizeOptions options;
    options.params.bits = 8;
    options.params.block = 64;
    if (format == Format::hlwq_q8_absmax) {
      options.params.rotation = Rotation::none;
      options.params.codebook = CodebookKind::uniform;
    }
    options.selection.quantize_embeddings = format == Format::hlwq_q8_embeddings;
    options.threads = 2;
    quantize_model(dense, output, options);
    return;
  }
  ExportOptions options;
  options.threads = 2;
  options.group_size = 32;
  if (format == Format::mlx_q8) {
    options.target = ExportTarget::mlx;
    options.bits = 8;
    // F32 scales and biases: then the dequantized export (mx.dequantize semantics, rounded to the
    // scale dtype) and the product kernels (float s * q + b, like MLX's matmul) compute the same
    // weights. With BF16 scales they differ by the BF16 rounding of each weight.
    options.dtype = DType::F32;
  } else {
    options.target = ExportTarget::ct_int4;
  }
  export_model(dense, output, options);
}

struct Case {
  std::string architecture;
  Format format;
};

void PrintTo(const Case& test_case, std::ostream* out) {
  *out << test_case.architecture << " " << format_label(test_case.format);
}

class QuantizedFormats : public ::testing::TestWithParam<Case> {};

TEST_P(QuantizedFormats, RunLikeTheirDequantizedExport) {
  const Case& test_case = GetParam();
  ThreadPool pool(2);
  TemporaryFolder temporary;
  const std::filesystem::path dense = temporary.path() / "dense";
  const std::filesystem::path quantized = temporary.path() / "quantized";
  const std::filesystem::path dequantized = temporary.path() / "dequantized";
  std::filesystem::copy(engine_fixture(test_case.architecture), dense);
  write_text_file(dense / "tokenizer.json", R"({"version": "1.0", "model": {"type": "BPE", "vocab": {}, "merges": []}})");
  quantize_to(test_case.format, dense, quantized);
  ExportOptions to_floats;
  to_floats.target = ExportTarget::bf16;
  to_floats.dtype = DType::F32;
  to_floats.threads = 2;
  export_model(quantized, dequantized, to_floats);

  const ReferenceLogits reference = read_reference_logits(dense);
  const Model quantized_model = Model::load(quantized, pool);
  const Model dequantized_model = Model::load(dequantized, pool);
  // The test means something only if the layers really run in the quantized format.
  ASSERT_NE(quantized_model.layers()[0].q.format, LinearFormat::dense);
  ASSERT_NE(quantized_model.layers()[1].down.format, LinearFormat::dense);
  ASSERT_EQ(dequantized_model.layers()[0].q.format, LinearFormat::dense);
  if (test_case.format == Format::hlwq_q8_embeddings) {
    // Embedding rows come from HLWQ codes, and a tied model's output head runs on them.
    ASSERT_EQ(quantized_model.embedding().format, LinearFormat::hlwq);
    ASSERT_EQ(quantized_model.lm_head().format, LinearFormat::hlwq);
  }
  if (test_case.format == Format::trellis_k8 || test_case.format == Format::trellis_k8_embeddings) {
    ASSERT_EQ(quantized_model.layers()[0].q.format, LinearFormat::trellis);
  }
  if (test_case.format == Format::trellis_k8_embeddings) {
    ASSERT_EQ(quantized_model.embedding().format, LinearFormat::trellis);
    ASSERT_EQ(quantized_model.lm_head().format, LinearFormat::trellis);
  }
  const std::vector<float> quantized_logits = prefill_logits(quantized_model, reference.ids, pool);
  const std::vector<float> dequantized_logits = prefill_logits(dequantized_model, reference.ids, pool);
  const double difference = max_abs_difference(quantized_logits, dequantized_logits);
  const double to_transformers = max_abs_difference(quantized_logits, reference.logits);
  std::printf("%s %s: max |quantized - dequantized| %.3g, vs transformers on the original %.3g (embedding %s)\n",
              test_case.architecture.c_str(), format_label(test_case.format).c_str(), difference, to_transformers,
              quantized_model.embedding().format == LinearFormat::dense ? "dense" : "quantized");
  // Same float weights, same engine: only the double-summed products could differ, by rounding.
  EXPECT_LT(difference, 1e-5);
  // A sanity bound on the quantization error itself, on logits of size ~2 from random Gaussian
  // weights (measured: 8 bits 0.03-0.06, INT4 g32 0.35-0.67).
  EXPECT_LT(to_transformers, test_case.format == Format::ct_int4 ? 1.5 : 0.15);
  EXPECT_GT(to_transformers, 1e-6);  // the quantized weights differ from the originals
}

std::vector<Case> all_cases() {
  std::vector<Case> cases;
  for (const std::string architecture : {"llama", "llama_tied", "qwen2", "qwen3", "gemma3"}) {
    for (Format format : {Format::hlwq_q8, Format::mlx_q8, Format::ct_int4}) cases.push_back({architecture, format});
  }
  cases.push_back({"llama_tied", Format::hlwq_q8_embeddings});
  cases.push_back({"llama", Format::hlwq_q8_absmax});
  cases.push_back({"qwen3", Format::hlwq_q8_absmax});
  cases.push_back({"gemma3", Format::hlwq_q8_embeddings});
  for (const std::string architecture : {"llama", "qwen3", "gemma3"}) cases.push_back({architecture, Format::trellis_k8});
  cases.push_back({"llama_tied", Format::trellis_k8_embeddings});
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Engine, QuantizedFormats, ::testing::ValuesIn(all_cases()),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           std::string name = info.param.architecture + "_" + format_label(info.param.format);
                           for (char& c : name) {
                             if (c == '-') c = '_';
                           }
                           return name;
                         });

}  // namespace
}  // namespace hlwq
