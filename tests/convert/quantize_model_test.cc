#include "convert/quantize_model.h"

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>

#include "convert/model_weights.h"
#include "convert/tiny_model.h"
#include "core/error.h"

namespace hlwq {
namespace {

namespace fs = std::filesystem;

std::string read_all(const fs::path& path) {
  std::ifstream stream(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(stream), {}};
}

TEST(QuantizeModel, WritesHlwqFolderWithExpectedTensors) {
  TemporaryFolder folder;
  write_tiny_model(folder.path() / "dense");
  QuantizeOptions options;
  options.threads = 2;
  const QuantizeSummary summary = quantize_model(folder.path() / "dense", folder.path() / "q5", options);
  // 2 layers x 7 linear weights + lm_head; embeddings kept.
  EXPECT_EQ(summary.quantized_tensors, 15u);
  const ModelWeights model = ModelWeights::open(folder.path() / "q5");
  ASSERT_TRUE(model.hlwq_params().has_value());
  EXPECT_EQ(model.hlwq_params()->bits, 5);
  const LogicalTensor* q_proj = model.find("model.layers.0.self_attn.q_proj.weight");
  ASSERT_NE(q_proj, nullptr);
  EXPECT_EQ(q_proj->format, WeightFormat::hlwq);
  EXPECT_EQ(q_proj->shape, (std::vector<int64_t>{192, 192}));
  // 192 columns pad to 2 blocks of 128: (2 * 128 * 5 bits + 2 * 16 bits) / 192 weights.
  EXPECT_NEAR(q_proj->bits_per_weight(), (2 * 128 * 5 + 2 * 16) / 192.0, 1e-9);
  const LogicalTensor* down = model.find("model.layers.0.mlp.down_proj.weight");
  EXPECT_NEAR(down->bits_per_weight(), 5.125, 1e-9);
  EXPECT_EQ(model.find("model.embed_tokens.weight")->format, WeightFormat::dense);
  EXPECT_EQ(model.find("model.norm.weight")->format, WeightFormat::dense);
  EXPECT_TRUE(fs::exists(folder.path() / "q5" / "tokenizer.json"));
  // Unquantized tensors are copied bit for bit.
  const ModelFolder dense = ModelFolder::open(folder.path() / "dense");
  const auto original = dense.data("model.embed_tokens.weight");
  const auto copied = model.folder().data("model.embed_tokens.weight");
  ASSERT_EQ(original.size(), copied.size());
  EXPECT_TRUE(std::equal(original.begin(), original.end(), copied.begin()));
}

TEST(QuantizeModel, OutputIsIdenticalForAnyThreadCount) {
  TemporaryFolder folder;
  write_tiny_model(folder.path() / "dense");
  for (int threads : {1, 3}) {
    QuantizeOptions options;
    options.threads = threads;
    options.params.sign_seed = 42;
    options.params.gain = BlockGain::least_squares;
    quantize_model(folder.path() / "dense", folder.path() / ("q" + std::to_string(threads)), options);
  }
  EXPECT_EQ(read_all(folder.path() / "q1" / "model.safetensors"), read_all(folder.path() / "q3" / "model.safetensors"));
  EXPECT_EQ(read_all(folder.path() / "q1" / "config.json"), read_all(folder.path() / "q3" / "config.json"));
}

TEST(QuantizeModel, SelectionFlags) {
  TemporaryFolder folder;
  write_tiny_model(folder.path() / "dense");
  QuantizeOptions options;
  options.selection.include = "mlp";
  options.selection.exclude = "down_proj";
  options.selection.quantize_embeddings = true;
  const QuantizeSummary summary = quantize_model(folder.path() / "dense", folder.path() / "q", options);
  EXPECT_EQ(summary.quantized_tensors, 4u);  // gate and up of two layers
  const ModelWeights model = ModelWeights::open(folder.path() / "q");
  EXPECT_EQ(model.find("model.layers.1.mlp.up_proj.weight")->format, WeightFormat::hlwq);
  EXPECT_EQ(model.find("model.layers.1.mlp.down_proj.weight")->format, WeightFormat::dense);
  EXPECT_EQ(model.find("model.layers.1.self_attn.q_proj.weight")->format, WeightFormat::dense);
}

TEST(QuantizeModel, NaNWeightIsAnErrorNamingTheTensorAndLeavesNoOutput) {
  TemporaryFolder folder;
  TinyModelOptions tiny;
  tiny.poison_with_nan = true;
  write_tiny_model(folder.path() / "dense", tiny);
  try {
    quantize_model(folder.path() / "dense", folder.path() / "q", QuantizeOptions{});
    FAIL() << "expected an error";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("model.layers.1.mlp.up_proj.weight"), std::string::npos) << error.what();
  }
  EXPECT_EQ(count_entries(folder.path()), 1u);  // only "dense": no output, no staging folder
}

TEST(QuantizeModel, RefusesExistingOutputAndQuantizedInput) {
  TemporaryFolder folder;
  write_tiny_model(folder.path() / "dense");
  fs::create_directory(folder.path() / "exists");
  EXPECT_THROW(quantize_model(folder.path() / "dense", folder.path() / "exists", QuantizeOptions{}), Error);
  quantize_model(folder.path() / "dense", folder.path() / "q", QuantizeOptions{});
  EXPECT_THROW(quantize_model(folder.path() / "q", folder.path() / "qq", QuantizeOptions{}), Error);
  QuantizeOptions bad;
  bad.params.bits = 9;
  EXPECT_THROW(quantize_model(folder.path() / "dense", folder.path() / "q9", bad), Error);
  bad.params.bits = 4;
  bad.params.block = 96;
  EXPECT_THROW(quantize_model(folder.path() / "dense", folder.path() / "q96", bad), Error);
  EXPECT_FALSE(fs::exists(folder.path() / "q9"));
}

TEST(QuantizeModel, MissingTokenizerOrConfigIsAnError) {
  TemporaryFolder folder;
  write_tiny_model(folder.path() / "dense");
  fs::remove(folder.path() / "dense" / "tokenizer.json");
  try {
    quantize_model(folder.path() / "dense", folder.path() / "q", QuantizeOptions{});
    FAIL() << "expected an error";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("missing tokenizer"), std::string::npos) << error.what();
  }
  fs::remove(folder.path() / "dense" / "config.json");
  try {
    quantize_model(folder.path() / "dense", folder.path() / "q", QuantizeOptions{});
    FAIL() << "expected an error";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("config.json"), std::string::npos) << error.what();
  }
  EXPECT_FALSE(fs::exists(folder.path() / "q"));
}

TEST(QuantizeModel, TruncatedWeightsAreAnErrorNamingTheFile) {
  TemporaryFolder folder;
  write_tiny_model(folder.path() / "dense");
  const fs::path weights = folder.path() / "dense" / "model.safetensors";
  fs::resize_file(weights, fs::file_size(weights) - 100);
  try {
    quantize_model(folder.path() / "dense", folder.path() / "q", QuantizeOptions{});
    FAIL() << "expected an error";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("model.safetensors"), std::string::npos) << error.what();
  }
  EXPECT_FALSE(fs::exists(folder.path() / "q"));
}

}  // namespace
}  // namespace hlwq
