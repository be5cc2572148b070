#include "convert/quantize_model.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <iterator>

#include "convert/model_weights.h"
#include "convert/tiny_model.h"
#include "core/error.h"
#include "core/thread_pool.h"

namespace hlwq {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

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

// --block auto: each tensor's block is fitted to its row width, recorded per tensor, and read back.
TEST(QuantizeModel, FittedBlocksArePerTensorAndDecodeAsTheirCodec) {
  TemporaryFolder folder;
  write_tiny_model(folder.path() / "dense");  // hidden 192 (fits 64), intermediate 256 (fits 128)
  QuantizeOptions options;
  options.threads = 2;
  options.fit_block_to_rows = true;
  quantize_model(folder.path() / "dense", folder.path() / "fitted", options);
  const ModelWeights model = ModelWeights::open(folder.path() / "fitted");
  const json config = ModelFolder::open(folder.path() / "fitted").config()["quantization_config"];
  EXPECT_EQ(config["block_rule"], "fit-rows");
  EXPECT_EQ(config["quantized_tensors"]["model.layers.0.self_attn.q_proj.weight"]["block_size"], 64);
  const LogicalTensor* q_proj = model.find("model.layers.0.self_attn.q_proj.weight");
  const LogicalTensor* down = model.find("model.layers.0.mlp.down_proj.weight");
  EXPECT_EQ(q_proj->group_size, 64);
  EXPECT_EQ(down->group_size, 128);
  EXPECT_NEAR(q_proj->bits_per_weight(), 5 + 16.0 / 64, 1e-9);  // no padding: 3 blocks of 64
  EXPECT_NEAR(down->bits_per_weight(), 5.125, 1e-9);
  EXPECT_EQ(model.hlwq_params_of(*q_proj).block, 64);
  // The stored codes are exactly what a block-64 codec writes for the dense weights.
  const ModelWeights dense = ModelWeights::open(folder.path() / "dense");
  ThreadPool pool(2);
  const std::vector<float> weights = dense.read_float(*dense.find(q_proj->name), pool);
  HlwqParams block64;
  block64.block = 64;
  const HlwqCodec codec(block64, 192);
  std::vector<uint8_t> codes(codec.layout().code_bytes * 192);
  std::vector<uint16_t> norms(codec.layout().blocks * 192);
  codec.quantize_matrix(DType::F32, std::as_bytes(std::span<const float>(weights)), 192, codes, norms, pool);
  std::vector<float> expected(weights.size());
  codec.dequantize_matrix(codes, norms, 192, expected, pool);
  EXPECT_EQ(model.read_float(*q_proj, pool), expected);
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

// Each ablation variant (docs/FORMAT.md) is written with its config keys and read back into the
// same codec: the folder's weights equal the codec's own round trip of the original matrix.
TEST(QuantizeModel, AblationVariantsRoundTripThroughTheFolder) {
  TemporaryFolder folder;
  TinyModelOptions tiny;
  tiny.dtype = DType::F32;
  write_tiny_model(folder.path() / "dense", tiny);
  const ModelWeights dense = ModelWeights::open(folder.path() / "dense");
  ThreadPool pool(2);
  const std::string name = "model.layers.1.mlp.down_proj.weight";  // 192 x 256
  const std::vector<float> original = dense.read_float(*dense.find(name), pool);
  struct Variant {
    Rotation rotation;
    CodebookKind codebook;
    const char* rotation_name;
    const char* codebook_name;
  };
  for (const Variant& variant : {Variant{Rotation::none, CodebookKind::uniform, "none", "uniform"},
                                 Variant{Rotation::hadamard, CodebookKind::uniform, "hadamard", "uniform"},
                                 Variant{Rotation::none, CodebookKind::converged, "none", "lloyd-max-gaussian"},
                                 Variant{Rotation::hadamard, CodebookKind::converged, "hadamard", "lloyd-max-gaussian"}}) {
    QuantizeOptions options;
    options.threads = 2;
    options.params.bits = 4;
    options.params.rotation = variant.rotation;
    options.params.codebook = variant.codebook;
    options.params.gain = BlockGain::least_squares;
    const fs::path output = folder.path() / (std::string(variant.rotation_name) + "-" + variant.codebook_name);
    quantize_model(folder.path() / "dense", output, options);
    const ModelWeights model = ModelWeights::open(output);
    const auto& config = model.folder().config()["quantization_config"];
    EXPECT_EQ(config["rotation"], variant.rotation_name);
    EXPECT_EQ(config["codebook"], variant.codebook_name);
    EXPECT_EQ(config["codebook_centroids"].get<std::vector<float>>(),
              lloyd_max_codebook(4, variant.codebook).centroids);
    ASSERT_TRUE(model.hlwq_params().has_value());
    EXPECT_EQ(model.hlwq_params()->rotation, variant.rotation);
    EXPECT_EQ(model.hlwq_params()->codebook, variant.codebook);
    EXPECT_EQ(model.hlwq_params()->gain, BlockGain::least_squares);

    const LogicalTensor* tensor = model.find(name);
    ASSERT_NE(tensor, nullptr);
    EXPECT_EQ(tensor->format, WeightFormat::hlwq);
    const std::vector<float> decoded = model.read_float(*tensor, pool);
    const HlwqCodec codec(options.params, 256);
    std::vector<uint8_t> codes(192 * codec.layout().code_bytes);
    std::vector<uint16_t> norms(192 * codec.layout().blocks);
    codec.quantize_matrix(DType::F32, std::as_bytes(std::span(original)), 192, codes, norms, pool);
    std::vector<float> expected(original.size());
    codec.dequantize_matrix(codes, norms, 192, expected, pool);
    EXPECT_EQ(decoded, expected) << variant.rotation_name << " " << variant.codebook_name;
    // And it is a Q4 approximation of the original (Gaussian weights: 19-20 dB for every variant).
    double error = 0, signal = 0;
    for (size_t i = 0; i < original.size(); ++i) {
      error += (original[i] - decoded[i]) * (original[i] - decoded[i]);
      signal += original[i] * original[i];
    }
    EXPECT_GT(10 * std::log10(signal / error), 17.0) << variant.rotation_name << " " << variant.codebook_name;
  }
  // Random signs exist only to randomize the Hadamard transform.
  QuantizeOptions signs_without_rotation;
  signs_without_rotation.params.rotation = Rotation::none;
  signs_without_rotation.params.sign_seed = 1;
  EXPECT_THROW(quantize_model(folder.path() / "dense", folder.path() / "bad", signs_without_rotation), Error);
  EXPECT_FALSE(fs::exists(folder.path() / "bad"));
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
