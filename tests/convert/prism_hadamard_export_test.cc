// `hlwq export --to prism-hadamard`: the pack mlx-lm 0.32 loads as prism_hadamard_qwen35. The tiny
// Qwen3.5 fixtures (hidden 64) are narrower than one 128-column group, so these tests write a wider
// synthetic Qwen3.5 (hidden 512, intermediate 1024, every width a multiple of 512) in both layouts.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <set>
#include <string>
#include <vector>

#include "convert/export_model.h"
#include "convert/gguf_import.h"
#include "convert/model_weights.h"
#include "convert/prism_hadamard_export.h"
#include "convert/quantize_model.h"
#include "core/dtype.h"
#include "core/file_writer.h"
#include "core/thread_pool.h"
#include "io/model_folder.h"
#include "quant/affine_quant.h"
#include "quant/prism_hadamard.h"
#include "quant/random_signs.h"
#include "convert/qwen35_export_check.h"
#include "test_util.h"

namespace hlwq {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

fs::path fixture(const std::string& name) { return fs::path(HLWQ_SOURCE_DIR) / "tests" / "fixtures" / name; }

// A Qwen3.5 with the tiny fixtures' structure (4 layers: 3 delta-net, 1 attention) at widths the
// pack takes: hidden 512, intermediate 1024, attention 4 heads / 2 KV heads of 128, delta-net 2 key
// heads / 4 value heads of 128, vocab 160. multimodal: the published layout (bfloat16,
// model.language_model.*, a vision tensor and an mtp tensor); else Qwen3_5ForCausalLM in float32.
void write_wide_qwen35(const fs::path& folder, bool multimodal, bool tied = false) {
  const fs::path source = fixture("qwen35") / (multimodal ? "multimodal" : tied ? "text_tied" : "text");
  fs::create_directories(folder);
  json config = read_json_file(source / "config.json");
  json& text = multimodal ? config["text_config"] : config;
  text["hidden_size"] = 512;
  text["intermediate_size"] = 1024;
  text["head_dim"] = 128;
  text["num_attention_heads"] = 4;
  text["num_key_value_heads"] = 2;
  text["linear_key_head_dim"] = 128;
  text["linear_num_key_heads"] = 2;
  text["linear_num_value_heads"] = 4;
  text["linear_value_head_dim"] = 128;
  text["rope_parameters"]["mrope_section"] = {5, 5, 6};
  write_text_file(folder / "config.json", config.dump(2));
  fs::copy_file(source / "tokenizer.json", folder / "tokenizer.json");
  const DType dtype = multimodal ? DType::BF16 : DType::F32;
  const std::string prefix = multimodal ? "model.language_model." : "model.";
  std::vector<std::pair<TensorDeclaration, std::vector<float>>> tensors;
  uint32_t seed = 1;
  auto add = [&](const std::string& name, std::vector<int64_t> shape, float scale, float offset = 0.0f) {
    size_t count = 1;
    for (int64_t dimension : shape) count *= dimension;
    std::vector<float> values = random_normal(count, seed++, scale);
    for (float& value : values) value += offset;
    tensors.push_back({{name, dtype, shape}, values});
  };
  add(prefix + "embed_tokens.weight", {160, 512}, 0.5f);
  for (int layer = 0; layer < 4; ++layer) {
    const std::string base = prefix + "layers." + std::to_string(layer) + ".";
    add(base + "input_layernorm.weight", {512}, 0.1f);
    if (layer < 3) {
      add(base + "linear_attn.A_log", {4}, 0.5f, 1.0f);
      add(base + "linear_attn.conv1d.weight", {1024, 1, 4}, 0.3f);
      add(base + "linear_attn.dt_bias", {4}, 0.5f, 1.0f);
      add(base + "linear_attn.in_proj_a.weight", {4, 512}, 0.05f);
      add(base + "linear_attn.in_proj_b.weight", {4, 512}, 0.05f);
      add(base + "linear_attn.in_proj_qkv.weight", {1024, 512}, 0.05f);
      add(base + "linear_attn.in_proj_z.weight", {512, 512}, 0.05f);
      add(base + "linear_attn.norm.weight", {128}, 0.1f, 1.0f);
      add(base + "linear_attn.out_proj.weight", {512, 512}, 0.05f);
    } else {
      add(base + "self_attn.k_norm.weight", {128}, 0.1f);
      add(base + "self_attn.k_proj.weight", {256, 512}, 0.05f);
      add(base + "self_attn.o_proj.weight", {512, 512}, 0.05f);
      add(base + "self_attn.q_norm.weight", {128}, 0.1f);
      add(base + "self_attn.q_proj.weight", {1024, 512}, 0.05f);
      add(base + "self_attn.v_proj.weight", {256, 512}, 0.05f);
    }
    add(base + "mlp.down_proj.weight", {512, 1024}, 0.04f);
    add(base + "mlp.gate_proj.weight", {1024, 512}, 0.05f);
    add(base + "mlp.up_proj.weight", {1024, 512}, 0.05f);
    add(base + "post_attention_layernorm.weight", {512}, 0.1f);
  }
  add(prefix + "norm.weight", {512}, 0.1f);
  if (!tied) add("lm_head.weight", {160, 512}, 0.05f);
  if (multimodal) {
    add("model.visual.blocks.0.attn.qkv.weight", {96, 32}, 0.05f);
    add("mtp.fc.weight", {512, 1024}, 0.05f);
  }
  std::vector<TensorDeclaration> declarations;
  for (const auto& [declaration, values] : tensors) declarations.push_back(declaration);
  SafetensorsWriter writer(folder / "model.safetensors", declarations, {{"format", "pt"}});
  for (const auto& [declaration, values] : tensors) {
    std::vector<std::byte> bytes(values.size() * dtype_size(dtype));
    convert_from_float(values, dtype, bytes);
    writer.write(declaration.name, bytes);
  }
  writer.close();
}

std::vector<float> read_floats(const ModelFolder& folder, const std::string& name) {
  std::vector<float> values(folder.info(name).element_count());
  convert_to_float(folder.info(name).dtype, folder.data(name), values);
  return values;
}

// The module paths a wide model's pack holds: every decoder linear but in_proj_a / in_proj_b, the
// embedding and (untied) lm_head.
std::set<std::string> expected_modules(bool tied) {
  std::set<std::string> paths = {"model.embed_tokens"};
  if (!tied) paths.insert("lm_head");
  for (int layer = 0; layer < 4; ++layer) {
    const std::string base = "model.layers." + std::to_string(layer) + ".";
    for (const char* name : {"mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"}) paths.insert(base + name);
    const std::vector<std::string> mixer = layer < 3 ? std::vector<std::string>{"linear_attn.in_proj_qkv",
                                                                                 "linear_attn.in_proj_z",
                                                                                 "linear_attn.out_proj"}
                                                     : std::vector<std::string>{"self_attn.q_proj", "self_attn.k_proj",
                                                                                "self_attn.v_proj", "self_attn.o_proj"};
    for (const std::string& name : mixer) paths.insert(base + name);
  }
  return paths;
}

std::string input_name(const std::string& pack_name, bool multimodal) {
  if (!multimodal || pack_name.starts_with("lm_head")) return pack_name;
  return "model.language_model." + pack_name.substr(std::string("model.").size());
}

TEST(PrismHadamardRotation, FoldedWeightTimesRotatedInputEqualsTheProduct) {
  // W' = W diag(s) H^T row by row is the forward rotation of each row; hadamard_rotate applies the
  // same forward rotation to x, and (R w) . (R x) = w . x for the orthogonal R = H diag(s).
  const int64_t rows = 3, width = 2048;
  for (int block : {512, 1024, 2048}) {
    std::vector<float> weights = random_normal(rows * width, 7), x = random_normal(width, 8);
    const std::vector<float> signs = random_signs(block, width);
    std::vector<double> expected(rows, 0.0);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < width; ++c) expected[r] += double(weights[r * width + c]) * x[c];
    prism_rotate_rows(weights, rows, width, block, signs);
    prism_rotate_rows(x, 1, width, block, signs);
    for (int64_t r = 0; r < rows; ++r) {
      double actual = 0;
      for (int64_t c = 0; c < width; ++c) actual += double(weights[r * width + c]) * x[c];
      EXPECT_NEAR(actual, expected[r], 1e-3) << "block " << block << " row " << r;
    }
    // Rotating a basis vector gives H's column times the sign: every entry +-1/sqrt(block).
    std::vector<float> unit(width, 0.0f);
    unit[5] = 1.0f;
    prism_rotate_rows(unit, 1, width, block, signs);
    for (int64_t c = 0; c < block; ++c) EXPECT_NEAR(std::abs(unit[c]), 1.0 / std::sqrt(block), 1e-6);
    prism_unrotate_rows(unit, 1, width, block, signs);
    for (int64_t c = 0; c < width; ++c) EXPECT_NEAR(unit[c], c == 5 ? 1.0f : 0.0f, 1e-6);
  }
  EXPECT_EQ(prism_default_block(12288), 4096);
  EXPECT_EQ(prism_default_block(3584), 512);
  EXPECT_EQ(prism_default_block(640), 0);
  EXPECT_FALSE(prism_block_allowed(256, 1024));
  EXPECT_FALSE(prism_block_allowed(1024, 1536));
}

void expect_pack_layout(const fs::path& input, const fs::path& pack_path, bool multimodal, bool tied) {
  const json config = read_json_file(pack_path / "config.json");
  EXPECT_EQ(config["model_type"], "prism_hadamard_qwen35");
  EXPECT_EQ(config["schema_version"], 1);
  EXPECT_EQ(config["tensor_namespace"], "mlx-lm-text");
  EXPECT_EQ(config["gdn_activation_layout"], "grouped");
  EXPECT_EQ(config["quantization"], (json{{"bits", 2}, {"group_size", 128}, {"mode", "affine"}}));
  EXPECT_EQ(config["text_config"]["hidden_size"], 512);
  EXPECT_EQ(config["text_config"]["tie_word_embeddings"], tied);
  EXPECT_EQ(config["text_config"]["full_attention_interval"], 4);
  EXPECT_FALSE(config.contains("vision_config"));
  const ModelFolder pack = ModelFolder::open(pack_path), original = ModelFolder::open(input);
  std::set<std::string> paths;
  for (const json& record : config["modules"]) {
    const std::string path = record["path"];
    paths.insert(path);
    EXPECT_EQ(record["dtype"], "float16") << path;
    EXPECT_EQ(record["embedding"], path == "model.embed_tokens") << path;
    const std::vector<int64_t> shape = original.info(input_name(path + ".weight", multimodal)).shape;
    const int64_t rows = shape[0], width = shape[1];
    EXPECT_EQ(record["block"], width == 1024 ? 1024 : 512) << path;  // the largest block dividing the width
    EXPECT_EQ(pack.info(path + ".weight").dtype, DType::U32) << path;
    EXPECT_EQ(pack.info(path + ".weight").shape, (std::vector<int64_t>{rows, width / 16})) << path;
    for (const char* part : {".scales", ".biases"}) {
      EXPECT_EQ(pack.info(path + part).dtype, DType::F16) << path;
      EXPECT_EQ(pack.info(path + part).shape, (std::vector<int64_t>{rows, width / 128})) << path;
    }
    EXPECT_EQ(pack.info(path + ".signs").dtype, DType::F32) << path;
    EXPECT_EQ(pack.info(path + ".signs").shape, (std::vector<int64_t>{width})) << path;
    for (float sign : read_floats(pack, path + ".signs")) ASSERT_TRUE(sign == 1.0f || sign == -1.0f) << path;
  }
  EXPECT_EQ(paths, expected_modules(tied));
  // Everything else: the input's bytes and dtype under qwen3_5.TextModel's names; no vision or mtp.
  size_t unpacked = 0;
  for (const std::string& name : pack.tensor_names()) {
    EXPECT_FALSE(name.starts_with("model.language_model.") || name.starts_with("model.visual.") ||
                 name.starts_with("mtp."))
        << name;
    const std::string base = name.substr(0, name.rfind('.'));
    if (paths.count(base)) continue;
    ++unpacked;
    const std::string source = input_name(name, multimodal);
    ASSERT_TRUE(original.has(source)) << name;
    EXPECT_EQ(pack.info(name).dtype, original.info(source).dtype) << name;
    EXPECT_EQ(pack.info(name).shape, original.info(source).shape) << name;
    const auto a = pack.data(name), b = original.data(source);
    EXPECT_TRUE(a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin())) << name;
  }
  // Per delta-net layer: A_log, conv1d, dt_bias, in_proj_a, in_proj_b, norm; per layer the two norms;
  // the attention layer's q_norm, k_norm; the final norm.
  EXPECT_EQ(unpacked, 3u * 6 + 4 * 2 + 2 + 1);
}

TEST(PrismHadamardExport, WritesTheManifestShapesAndDtypesMlxLmRequires) {
  TemporaryFolder temporary;
  for (const bool multimodal : {false, true}) {
    SCOPED_TRACE(multimodal ? "multimodal" : "text");
    const fs::path input = temporary.path() / (multimodal ? "wide_mm" : "wide_text");
    write_wide_qwen35(input, multimodal);
    ExportOptions options;
    options.target = ExportTarget::prism_hadamard;
    const ExportSummary summary = export_model(input, temporary.path() / (multimodal ? "pack_mm" : "pack_text"), options);
    EXPECT_EQ(summary.quantized_tensors, expected_modules(false).size());
    EXPECT_EQ(summary.dropped_tensors, multimodal ? 2u : 0u);
    EXPECT_TRUE(summary.unrotated.empty());
    expect_pack_layout(input, temporary.path() / (multimodal ? "pack_mm" : "pack_text"), multimodal, false);
  }
}

TEST(PrismHadamardExport, TiedModelPacksTheEmbeddingOnce) {
  TemporaryFolder temporary;
  write_wide_qwen35(temporary.path() / "wide", false, /*tied=*/true);
  ExportOptions options;
  options.target = ExportTarget::prism_hadamard;
  export_model(temporary.path() / "wide", temporary.path() / "pack", options);
  expect_pack_layout(temporary.path() / "wide", temporary.path() / "pack", false, true);
  EXPECT_FALSE(ModelFolder::open(temporary.path() / "pack").has("lm_head.weight"));
}

// Each packed module, dequantized and rotated back, against the input weight. The bound: in the
// rotated basis every weight of a group of 128 is within max(|s| / 2, range - 3 |s|) of its 2-bit
// value (s the stored scale: MLX stores the group's edge exactly and rounds the step so a whole number
// of steps reaches zero, which can leave the far end of the range short of code 3 by range - 3 |s|),
// plus float16 rounding (2^-11 relative, three times: the rotated weight, s q and s q + b). The
// rotation back is orthogonal, so each row's error has the same L2 norm in the input basis; the test
// checks both the elementwise bound in the rotated basis and that the norms agree (1e-4).
void expect_reconstruction(const fs::path& input, const fs::path& pack_path, bool multimodal, double max_relative_rms) {
  const ModelWeights original = ModelWeights::open(input);
  const ModelFolder pack = ModelFolder::open(pack_path);
  ThreadPool pool(2);
  double error_squares = 0, weight_squares = 0;
  const json config = read_json_file(pack_path / "config.json");
  ASSERT_FALSE(config["modules"].empty());
  for (const json& record : config["modules"]) {
    const std::string path = record["path"];
    const int block = record["block"];
    const LogicalTensor* tensor = original.find(input_name(path + ".weight", multimodal));
    ASSERT_NE(tensor, nullptr) << path;
    const std::vector<float> weights = original.read_float(*tensor, pool);
    const int64_t rows = tensor->shape[0], width = tensor->shape[1];
    const std::vector<float> signs = read_floats(pack, path + ".signs");
    std::vector<float> rotated = weights;
    prism_rotate_rows(rotated, rows, width, block, signs);
    // The 2-bit values in the rotated basis (no rotation back).
    json plain = record;
    plain["block"] = 0;
    const std::vector<float> dequantized_rotated = prism_dequantize_module(pack, plain);
    const std::vector<float> reconstructed = prism_dequantize_module(pack, record);
    const std::vector<float> scales = read_floats(pack, path + ".scales"), biases = read_floats(pack, path + ".biases");
    for (int64_t row = 0; row < rows; ++row) {
      double rotated_norm = 0, input_norm = 0;
      for (int64_t group = 0; group < width / 128; ++group) {
        const float* values = &rotated[row * width + group * 128];
        const auto [low, high] = std::minmax_element(values, values + 128);
        const double scale = std::abs(scales[row * (width / 128) + group]);
        const double bias = std::abs(biases[row * (width / 128) + group]);
        const double magnitude = std::max(std::abs(*low), std::abs(*high));
        const double bound =
            std::max(scale / 2, (*high - *low) - 3 * scale) + std::ldexp(3 * scale + bias + 2 * magnitude, -11) + 1e-7;
        for (int64_t i = 0; i < 128; ++i) {
          const int64_t at = row * width + group * 128 + i;
          const double error = double(dequantized_rotated[at]) - rotated[at];
          ASSERT_LE(std::abs(error), bound) << path << " row " << row << " column " << group * 128 + i;
          rotated_norm += error * error;
        }
      }
      for (int64_t column = 0; column < width; ++column) {
        const double error = double(reconstructed[row * width + column]) - weights[row * width + column];
        input_norm += error * error;
        weight_squares += double(weights[row * width + column]) * weights[row * width + column];
      }
      ASSERT_NEAR(std::sqrt(input_norm), std::sqrt(rotated_norm), 1e-4 * std::sqrt(rotated_norm) + 1e-6)
          << path << " row " << row;
      error_squares += input_norm;
    }
  }
  const double relative_rms = std::sqrt(error_squares / weight_squares);
  std::cout << "prism-hadamard 2-bit reconstruction of " << input.filename().string() << ": relative RMS error "
            << relative_rms << "\n";
  EXPECT_LT(relative_rms, max_relative_rms);
}

TEST(PrismHadamardExport, EachPackedModuleReconstructsWithinTwoBitAffineError) {
  TemporaryFolder temporary;
  for (const bool multimodal : {false, true}) {
    const fs::path input = temporary.path() / (multimodal ? "wide_mm" : "wide_text");
    write_wide_qwen35(input, multimodal);
    ExportOptions options;
    options.target = ExportTarget::prism_hadamard;
    export_model(input, temporary.path() / (multimodal ? "pack_mm" : "pack_text"), options);
    // Gaussian weights: a 2-bit min-max grid over 128 values has a step of ~1.7 sigma (~0.5 sigma RMS).
    expect_reconstruction(input, temporary.path() / (multimodal ? "pack_mm" : "pack_text"), multimodal, 0.45);
  }
}

TEST(PrismHadamardExport, ReadsAnHlwqModelAndAnExplicitBlock) {
  TemporaryFolder temporary;
  write_wide_qwen35(temporary.path() / "wide", true);
  quantize_model(temporary.path() / "wide", temporary.path() / "hlwq", QuantizeOptions{});
  ExportOptions options;
  options.target = ExportTarget::prism_hadamard;
  options.block = 512;
  export_model(temporary.path() / "hlwq", temporary.path() / "pack", options);
  const json config = read_json_file(temporary.path() / "pack" / "config.json");
  ASSERT_EQ(config["modules"].size(), expected_modules(false).size());
  for (const json& record : config["modules"]) EXPECT_EQ(record["block"], 512) << record["path"];
  // Against the HLWQ model's own (dequantized) weights, which are what the pack re-quantizes.
  expect_reconstruction(temporary.path() / "hlwq", temporary.path() / "pack", true, 0.45);
}

// One line on stderr, exit 1, and no output folder (nor a staging folder beside it).
void expect_refused(const std::string& arguments, const fs::path& parent, const std::string& message) {
  const size_t entries = count_entries(parent);
  const CommandResult result = run_hlwq(arguments + " -o " + (parent / "out").string());
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_NE(result.output.find(message), std::string::npos) << result.output;
  EXPECT_TRUE(result.output.starts_with("hlwq: error: ")) << result.output;
  EXPECT_EQ(std::count(result.output.begin(), result.output.end(), '\n'), 1) << result.output;
  EXPECT_FALSE(fs::exists(parent / "out"));
  EXPECT_EQ(count_entries(parent), entries);
}

TEST(PrismHadamardExport, BadInputsGiveOneLineAndNoFolder) {
  TemporaryFolder temporary;
  write_wide_qwen35(temporary.path() / "wide", false);
  const std::string wide = " -m " + (temporary.path() / "wide").string();
  expect_refused("export -m " + fixture("engine/llama").string() + " --to prism-hadamard", temporary.path(),
                 "takes a Qwen3.5 model (model_type qwen3_5 or qwen3_5_text), not \"llama\"");
  expect_refused("export -m " + fixture("qwen35/multimodal").string() + " --to prism-hadamard", temporary.path(),
                 "has 64 (not a multiple of 128)");
  expect_refused("export" + wide + " --to prism-hadamard --block 256", temporary.path(),
                 "--block for prism-hadamard must be 512, 1024, 2048, 4096 or 8192 (got 256)");
  expect_refused("export" + wide + " --to prism-hadamard --block 1000", temporary.path(), "(got 1000)");
  expect_refused("export" + wide + " --to prism-hadamard --block 1024", temporary.path(),
                 "--block 1024 does not divide the input width 512");
  expect_refused("export" + wide + " --to mlx --block 512", temporary.path(), "--block is only for --to prism-hadamard");
  expect_refused("export" + wide + " --to prism-hadamard --bits 4", temporary.path(),
                 "prism-hadamard is 2-bit with groups of 128: --bits and --group-size do not apply");
  // And a good one through the command line.
  const CommandResult result = run_hlwq("export" + wide + " --to prism-hadamard -o " + (temporary.path() / "pack").string());
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_TRUE(fs::exists(temporary.path() / "pack" / "config.json"));
}

// --- mlx-lm (python) --------------------------------------------------------------------------------

TEST(PrismHadamardCrossCheck, MlxLmLoadsThePackAndMatchesItsDequantizedWeights) {
  if (!python_has("mlx.core, mlx_lm.models.prism_hadamard_qwen35")) {
    GTEST_SKIP() << "python3 with mlx and mlx_lm (models/prism_hadamard_qwen35) not available";
  }
  TemporaryFolder temporary;
  const std::string ids = " --ids " + (fixture("qwen35/multimodal") / "ids.json").string();
  for (const bool multimodal : {true, false}) {
    const std::string tag = multimodal ? "mm" : "text";
    const fs::path input = temporary.path() / ("wide_" + tag);
    write_wide_qwen35(input, multimodal, /*tied=*/!multimodal);
    ExportOptions options;
    options.target = ExportTarget::prism_hadamard;
    export_model(input, temporary.path() / ("pack_" + tag), options);
    write_prism_dequantized(temporary.path() / ("pack_" + tag), temporary.path() / ("plain_" + tag));
    // mlx-lm on the pack (the activations rotated in float32, quantized_matmul on the 2-bit words)
    // against mlx-lm on the same weights dequantized and rotated back by hlwq, written as a plain
    // float32 qwen3_5 folder. The weights agree (--prism-weights: mlx-lm's own dequantize and inverse
    // rotation of every linear module equals hlwq's to 1e-6, measured 0; the embedding rows, rounded to
    // float16 after the rotation, to one float16 ulp). The logits differ by MLX's CPU
    // quantized_matmul alone, which with float16 scales is 2.4e-3 x RMS (max) away from the float32
    // product with the weights it dequantizes, per linear; through this random 4-layer model that
    // became 0.022-0.024 x RMS at most and 0.003 x RMS in RMS, top-1 40 of 40. Tolerances 0.05 and
    // 0.01: a wrong sign, block or packing order would move the logits by the order of their RMS.
    // And each module mlx-lm rebuilds against the input model's weight (--prism-original): within the
    // 2-bit error (0.425 measured, bound 0.45), which a rotation hlwq and mlx-lm got wrong the same
    // way would not be.
    std::string log;
    EXPECT_EQ(check_qwen35_export((temporary.path() / ("pack_" + tag)).string() + ids + " --expected-folder " +
                               (temporary.path() / ("plain_" + tag)).string() +
                               " --expected-engine mlx --engine mlx --tolerance 0.05 --rms-tolerance 0.01" +
                               " --prism-weights " + (temporary.path() / ("plain_" + tag)).string() +
                               " --prism-original " + input.string() + " --prism-error 0.45",
                           temporary.path() / (tag + ".log"), log),
              0)
        << log;
    std::cout << tag << ": " << log;
  }
}

// The logits of three 2- and 4-bit MLX packs of the wide multimodal model against mlx-lm's logits of
// the dense model (docs/QUALITY.md): prints the numbers; checks only that each loads and runs.
TEST(PrismHadamardCrossCheck, LogitsOfTwoAndFourBitPacksAgainstTheDenseModel) {
  if (!python_has("mlx.core, mlx_lm.models.prism_hadamard_qwen35")) {
    GTEST_SKIP() << "python3 with mlx and mlx_lm (models/prism_hadamard_qwen35) not available";
  }
  TemporaryFolder temporary;
  const fs::path input = temporary.path() / "wide";
  write_wide_qwen35(input, true);
  ExportOptions prism;
  prism.target = ExportTarget::prism_hadamard;
  export_model(input, temporary.path() / "prism", prism);
  ExportOptions two_bits;
  two_bits.target = ExportTarget::mlx;
  two_bits.bits = 2;
  two_bits.group_size = 128;
  two_bits.dtype = DType::F16;
  export_model(input, temporary.path() / "mlx2", two_bits);
  ExportOptions four_bits;
  four_bits.target = ExportTarget::mlx;
  four_bits.dtype = DType::F16;
  export_model(input, temporary.path() / "mlx4", four_bits);
  const std::string ids = " --ids " + (fixture("qwen35/multimodal") / "ids.json").string();
  for (const char* name : {"mlx2", "prism", "mlx4"}) {
    std::string log;
    EXPECT_EQ(check_qwen35_export((temporary.path() / name).string() + ids + " --expected-folder " + input.string() +
                               " --expected-engine mlx --engine mlx --tolerance 1e9",
                           temporary.path() / (std::string(name) + ".log"), log),
              0)
        << log;
    std::cout << name << " against dense: " << log;
  }
}

// --- Weight-level quality on a real model (docs/QUALITY.md) -----------------------------------------

struct ErrorSum {
  double error = 0, weight = 0;
  size_t matrices = 0;
  double relative_rms() const { return std::sqrt(error / weight); }
  double sqnr_db() const { return -20.0 * std::log10(relative_rms()); }
};

// Quantizes [rows, width] with MLX affine (float16 scales and biases), optionally after the prism
// rotation, dequantizes as mx.dequantize does in float16, rotates back, and adds up the error.
void add_affine_error(const std::vector<float>& weights, int64_t rows, int64_t width, AffineParams params, int block,
                      uint64_t seed, ErrorSum& sum) {
  std::vector<float> values = weights;
  const std::vector<float> signs = block ? random_signs(seed, width) : std::vector<float>();
  prism_rotate_rows(values, rows, width, block, signs);
  const size_t groups = rows * width / params.group_size;
  std::vector<uint32_t> packed(rows * affine_packed_words_per_row(width, params.bits));
  std::vector<float> scales(groups), biases(groups), restored(values.size());
  affine_quantize_rows(params, DType::F16, values, rows, width, packed, scales, biases);
  affine_dequantize_rows(params, DType::F16, packed, scales, biases, rows, width, restored);
  prism_unrotate_rows(restored, rows, width, block, signs);
  for (size_t i = 0; i < weights.size(); ++i) {
    sum.error += (double(restored[i]) - weights[i]) * (double(restored[i]) - weights[i]);
    sum.weight += double(weights[i]) * weights[i];
  }
  ++sum.matrices;
}

TEST(PrismHadamardQuality, SmolLM2WeightErrors) {
  const fs::path gguf = demo_gguf_path();
  if (gguf.empty()) GTEST_SKIP() << "demo model absent (scripts/fetch_demo_model.sh)";
  TemporaryFolder temporary;
  ImportOptions import;
  import.dtype = DType::F32;
  import_gguf(gguf, temporary.path() / "model", import);
  const ModelWeights model = ModelWeights::open(temporary.path() / "model");
  ThreadPool pool(2);
  // Over the linear layers every format takes (input width a multiple of 128 and of a 512..8192
  // block), and plain 4-bit over every linear layer for context.
  ErrorSum mlx2, prism2, mlx4, mlx4_all;
  std::set<int64_t> widths, packed_widths;
  uint64_t seed = kPrismSignSeed;
  for (const LogicalTensor& tensor : model.tensors()) {
    if (tensor.shape.size() != 2 || tensor.name.find(".layers.") == std::string::npos) continue;
    const std::vector<float> weights = model.read_float(tensor, pool);
    const int64_t rows = tensor.shape[0], width = tensor.shape[1];
    widths.insert(width);
    if (width % 64 == 0) add_affine_error(weights, rows, width, {4, 64}, 0, 0, mlx4_all);
    const int block = prism_default_block(width);
    if (width % 128 != 0 || block == 0) continue;
    packed_widths.insert(width);
    add_affine_error(weights, rows, width, {2, 128}, 0, 0, mlx2);
    add_affine_error(weights, rows, width, {2, 128}, block, seed++, prism2);
    add_affine_error(weights, rows, width, {4, 64}, 0, 0, mlx4);
  }
  ASSERT_GT(prism2.matrices, 0u);
  std::cout << "SmolLM2-135M (" << gguf.filename().string() << ", dequantized to float32): input widths";
  for (int64_t width : widths) std::cout << " " << width;
  std::cout << "; packable (multiple of 128 with a 512..8192 block):";
  for (int64_t width : packed_widths) std::cout << " " << width;
  std::cout << "\n";
  auto line = [](const char* name, const ErrorSum& sum) {
    std::printf("  %-34s %3zu matrices  relative RMS error %.4f  SQNR %.2f dB\n", name, sum.matrices,
                sum.relative_rms(), sum.sqnr_db());
  };
  line("MLX affine 2-bit g128", mlx2);
  line("prism Hadamard 2-bit g128", prism2);
  line("MLX affine 4-bit g64", mlx4);
  line("MLX affine 4-bit g64, every linear", mlx4_all);
  // The rotation must help: it spreads each group's outliers (measured: see docs/QUALITY.md).
  EXPECT_LT(prism2.relative_rms(), mlx2.relative_rms());
  EXPECT_LT(mlx4.relative_rms(), prism2.relative_rms());
}

}  // namespace
}  // namespace hlwq
