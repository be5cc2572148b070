// A trellis-coded model folder end to end in the library: quantize_model writes it (config keys,
// tensor names and sizes), ModelWeights reads it back close to the dense weights, a loaded layer's
// product equals the plain reference, the codes are those of the codec itself, and config.json
// values that are unknown or do not match the stored tensors are refused in one line naming it.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "convert/model_weights.h"
#include "convert/quantize_model.h"
#include "convert/tiny_model.h"
#include "core/file_writer.h"
#include "ops/linear.h"
#include "ops/linear_weight.h"
#include "test_util.h"

namespace hlwq {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

QuantizeOptions trellis_options(int bits, int state_bits) {
  QuantizeOptions options;
  options.params.bits = bits;
  options.params.gain = BlockGain::least_squares;
  options.params.sign_seed = 42;
  options.fit_block_to_rows = true;
  options.trellis_state_bits = state_bits;
  options.threads = 2;
  return options;
}

json read_config(const fs::path& folder) {
  std::ifstream stream(folder / "config.json");
  return json::parse(stream);
}

double sqnr_db(std::span<const float> reference, std::span<const float> coded) {
  double signal = 0, noise = 0;
  for (size_t i = 0; i < reference.size(); ++i) {
    signal += static_cast<double>(reference[i]) * reference[i];
    noise += (static_cast<double>(reference[i]) - coded[i]) * (static_cast<double>(reference[i]) - coded[i]);
  }
  return 10 * std::log10(signal / noise);
}

TEST(TrellisModel, QuantizeWritesTheDocumentedConfigAndTensors) {
  TemporaryFolder folder;
  write_tiny_model(folder.path() / "dense");
  const QuantizeSummary summary = quantize_model(folder.path() / "dense", folder.path() / "out", trellis_options(4, 12));
  EXPECT_EQ(summary.quantized_tensors, 15u);  // 7 linears a layer, 2 layers, and lm_head
  const json config = read_config(folder.path() / "out").at("quantization_config");
  EXPECT_EQ(config["quant_method"], "hlwq");
  EXPECT_EQ(config["codebook"], "trellis-gaussian");
  EXPECT_EQ(config["trellis_state_bits"], 12);
  EXPECT_EQ(config["bits"], 4);
  EXPECT_EQ(config["rotation"], "hadamard");
  EXPECT_EQ(config["sign_seed"], 42);
  EXPECT_FALSE(config.contains("codebook_centroids"));
  EXPECT_EQ(config["quantized_tensors"]["model.layers.0.mlp.down_proj.weight"]["block_size"], 128);
  EXPECT_EQ(config["quantized_tensors"]["model.layers.0.self_attn.q_proj.weight"]["block_size"], 64);

  const ModelWeights model = ModelWeights::open(folder.path() / "out");
  const LogicalTensor* q = model.find("model.layers.0.self_attn.q_proj.weight");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->format, WeightFormat::trellis);
  EXPECT_EQ(q->format_name(), "trellis-k4-l12-b64");
  EXPECT_EQ(q->parts, (std::vector<std::string>{"model.layers.0.self_attn.q_proj.trellis_codes",
                                                "model.layers.0.self_attn.q_proj.trellis_gains"}));
  // 192 columns: 1 byte of head, 3 blocks of 32 bytes; 3 gains of 2 bytes; per row.
  EXPECT_EQ(q->stored_bytes, 192u * (1 + 3 * 32 + 3 * 2));
  EXPECT_NEAR(q->bits_per_weight(), 4.0 + 8.0 / 192 + 16.0 / 64, 1e-9);
}

TEST(TrellisModel, WeightsReadBackCloseAndLayersMatchTheReference) {
  TemporaryFolder folder;
  write_tiny_model(folder.path() / "dense", {DType::F32});
  quantize_model(folder.path() / "dense", folder.path() / "out", trellis_options(4, 12));
  const ModelWeights dense = ModelWeights::open(folder.path() / "dense");
  const ModelWeights coded = ModelWeights::open(folder.path() / "out");
  ThreadPool pool(2);
  size_t checked = 0;
  for (const LogicalTensor& tensor : coded.tensors()) {
    if (tensor.format != WeightFormat::trellis) continue;
    const std::vector<float> original = dense.read_float(*dense.find(tensor.name), pool);
    const std::vector<float> decoded = coded.read_float(tensor, pool);
    // k = 4 on Gaussian weights: about 23 dB (Lloyd-Max Q4: 20 dB); short rows cost a little.
    EXPECT_GT(sqnr_db(original, decoded), 21.5) << tensor.name;

    // The codes are the codec's own for the dense rows (the model writes nothing else).
    const auto codec = coded.trellis_codec_of(tensor);
    const size_t code_bytes = codec->layout().code_bytes, blocks = static_cast<size_t>(codec->layout().blocks);
    std::vector<uint8_t> codes(code_bytes);
    std::vector<uint16_t> gains(blocks);
    codec->quantize_row(std::span<const float>(original).first(static_cast<size_t>(tensor.shape[1])), codes, gains);
    const auto stored = coded.folder().data(tensor.parts[0]);
    EXPECT_EQ(std::memcmp(stored.data(), codes.data(), code_bytes), 0) << tensor.name;

    // A layer loaded for the runtime: the fast product against the plain reference, fresh inputs.
    const LinearWeight weight = load_linear_weight(coded, tensor);
    ASSERT_EQ(weight.format, LinearFormat::trellis);
    for (const int64_t batch : {int64_t{1}, int64_t{5}}) {
      const std::vector<float> x = random_normal(static_cast<size_t>(batch * weight.columns), 31 + checked);
      std::vector<float> expected(static_cast<size_t>(batch * weight.rows)), actual(expected.size(), 7.0f);
      linear_forward_reference(weight, x, batch, expected);
      linear_forward(weight, x, batch, actual, pool);
      double largest = 0;
      for (const float value : expected) largest = std::max(largest, std::fabs(static_cast<double>(value)));
      ASSERT_GT(largest, 0.01) << tensor.name;
      for (size_t i = 0; i < expected.size(); ++i) {
        ASSERT_NEAR(actual[i], expected[i], 1e-5 * largest + 1e-6) << tensor.name << " batch " << batch << " " << i;
      }
    }
    ++checked;
  }
  EXPECT_EQ(checked, 15u);
}

// Rewrites config.json's quantization_config with `edit`, then expects ModelWeights::open to fail
// with a message containing `expected` and naming config.json.
void expect_config_refused(const fs::path& folder, const std::function<void(json&)>& edit, const std::string& expected) {
  json config = read_config(folder);
  const json original = config;
  edit(config["quantization_config"]);
  write_text_file(folder / "config.json", config.dump(2));
  const std::string message = error_message([&] { (void)ModelWeights::open(folder); });
  EXPECT_NE(message.find(expected), std::string::npos) << message;
  EXPECT_NE(message.find("config.json"), std::string::npos) << message;
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  write_text_file(folder / "config.json", original.dump(2));
}

TEST(TrellisModel, UnknownOrInconsistentConfigValuesAreRefused) {
  TemporaryFolder folder;
  write_tiny_model(folder.path() / "dense");
  const fs::path out = folder.path() / "out";
  quantize_model(folder.path() / "dense", out, trellis_options(3, 10));
  ASSERT_NO_THROW((void)ModelWeights::open(out));
  expect_config_refused(out, [](json& q) { q["trellis_state_bits"] = 21; }, "state bits");
  expect_config_refused(out, [](json& q) { q["trellis_state_bits"] = 3; }, "state bits");
  expect_config_refused(out, [](json& q) { q.erase("trellis_state_bits"); }, "trellis_state_bits");
  expect_config_refused(out, [](json& q) { q["trellis_state_bits"] = "ten"; }, "invalid quantization_config");
  expect_config_refused(out, [](json& q) { q["rotation"] = "none"; }, "rotation");
  expect_config_refused(out, [](json& q) { q["gain"] = "median"; }, "unknown gain");
  expect_config_refused(out, [](json& q) { q["bits"] = 1; }, "bits");
  expect_config_refused(out, [](json& q) { q["codebook"] = "trellis-uniform"; }, "unknown codebook");
  // Values valid on their own that do not match the stored codes.
  expect_config_refused(out, [](json& q) { q["trellis_state_bits"] = 20; }, "wrong size");
  expect_config_refused(
      out, [](json& q) { q["quantized_tensors"]["model.layers.1.mlp.up_proj.weight"]["bits"] = 4; }, "wrong size");
  expect_config_refused(
      out, [](json& q) { q["quantized_tensors"]["model.layers.0.mlp.down_proj.weight"]["block_size"] = 48; },
      "block size");
  ASSERT_NO_THROW((void)ModelWeights::open(out));  // each edit was undone
}

TEST(TrellisModel, OptionsTrellisCodesDoNotTakeAreRefused) {
  TemporaryFolder folder;
  write_tiny_model(folder.path() / "dense");
  QuantizeOptions target = trellis_options(4, 12);
  target.target_bits_per_weight = 4.5;
  EXPECT_NE(error_message([&] { quantize_model(folder.path() / "dense", folder.path() / "a", target); })
                .find("--target-bpw"),
            std::string::npos);
  QuantizeOptions uniform = trellis_options(4, 12);
  uniform.params.codebook = CodebookKind::uniform;
  EXPECT_NE(error_message([&] { quantize_model(folder.path() / "dense", folder.path() / "b", uniform); })
                .find("own codebook"),
            std::string::npos);
  QuantizeOptions too_many = trellis_options(4, 21);
  EXPECT_NE(error_message([&] { quantize_model(folder.path() / "dense", folder.path() / "c", too_many); })
                .find("state bits"),
            std::string::npos);
  EXPECT_EQ(count_entries(folder.path()), 1u);  // nothing written beside the input
}

}  // namespace
}  // namespace hlwq
