// Qwen3.5 checkpoints through convert/: the published multimodal layout (sharded,
// model.language_model.*, model.visual.*, lm_head.*, mtp.*) and the text-only one, read by inspect,
// quantize and export as they are. The text decoder's linear layers are quantized by default; the
// recurrent parameters, in_proj_a / in_proj_b, the vision tower and the mtp head keep their bytes and
// are written back, so that transformers and mlx-lm still load the exports (cross-checked through
// scripts/check_qwen35_export.py where python has the packages).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <set>
#include <string>
#include <vector>

#include "convert/export_model.h"
#include "convert/inspect_model.h"
#include "convert/quantize_model.h"
#include "convert/tensor_selection.h"
#include "core/thread_pool.h"
#include "engine/engine_fixture.h"
#include "io/model_folder.h"
#include "convert/qwen35_export_check.h"
#include "test_util.h"

namespace hlwq {
namespace {

namespace fs = std::filesystem;

fs::path qwen35_fixture(const std::string& name) {
  return fs::path(HLWQ_SOURCE_DIR) / "tests" / "fixtures" / "qwen35" / name;
}

// The linear weights a default quantization of the tiny fixtures selects: per delta-net layer (0-2)
// in_proj_qkv, in_proj_z and out_proj, per attention layer (3) q/k/v/o, per layer the MLP, and lm_head.
std::set<std::string> decoder_linears(const std::string& prefix) {
  std::set<std::string> names = {"lm_head.weight"};
  for (int layer = 0; layer < 4; ++layer) {
    const std::string base = prefix + "layers." + std::to_string(layer) + ".";
    const std::vector<std::string> mixer = layer < 3 ? std::vector<std::string>{"linear_attn.in_proj_qkv",
                                                                                 "linear_attn.in_proj_z",
                                                                                 "linear_attn.out_proj"}
                                                     : std::vector<std::string>{"self_attn.q_proj", "self_attn.k_proj",
                                                                                "self_attn.v_proj", "self_attn.o_proj"};
    for (const std::string& name : mixer) names.insert(base + name + ".weight");
    for (const char* name : {"mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"}) names.insert(base + name + ".weight");
  }
  return names;
}

std::set<std::string> quantized_names(const fs::path& folder) {
  std::set<std::string> names;
  const nlohmann::json config = read_json_file(folder / "config.json");
  for (const auto& [name, entry] : config.at("quantization_config").at("quantized_tensors").items()) names.insert(name);
  return names;
}

bool same_bytes(const ModelFolder& a, const ModelFolder& b, const std::string& name) {
  if (!b.has(name) || a.info(name).dtype != b.info(name).dtype || a.info(name).shape != b.info(name).shape) return false;
  const auto x = a.data(name), y = b.data(name);
  return x.size() == y.size() && std::equal(x.begin(), x.end(), y.begin());
}

TEST(Qwen35Checkpoint, DefaultSelectionKeepsGatesVisionAndMtp) {
  const TensorSelector defaults(TensorSelection{});
  const std::vector<int64_t> matrix = {64, 64};
  const std::string layer = "model.language_model.layers.0.linear_attn.";
  EXPECT_TRUE(defaults.selects(layer + "in_proj_qkv.weight", DType::BF16, matrix));
  EXPECT_TRUE(defaults.selects(layer + "in_proj_z.weight", DType::BF16, matrix));
  EXPECT_TRUE(defaults.selects(layer + "out_proj.weight", DType::BF16, matrix));
  EXPECT_FALSE(defaults.selects(layer + "in_proj_a.weight", DType::BF16, matrix));
  EXPECT_FALSE(defaults.selects(layer + "in_proj_b.weight", DType::BF16, matrix));
  EXPECT_FALSE(defaults.selects(layer + "conv1d.weight", DType::BF16, {160, 1, 4}));
  EXPECT_FALSE(defaults.selects(layer + "A_log", DType::F32, {64}));
  EXPECT_FALSE(defaults.selects("model.visual.blocks.0.attn.qkv.weight", DType::BF16, matrix));
  EXPECT_FALSE(defaults.selects("mtp.fc.weight", DType::BF16, matrix));
  EXPECT_TRUE(defaults.selects("lm_head.weight", DType::BF16, matrix));
  TensorSelection include_vision;
  include_vision.include = "visual";
  const TensorSelector vision(include_vision);
  EXPECT_TRUE(vision.selects("model.visual.blocks.0.attn.qkv.weight", DType::BF16, matrix));
  EXPECT_FALSE(vision.selects("mtp.fc.weight", DType::BF16, matrix));
  EXPECT_FALSE(vision.selects(layer + "in_proj_qkv.weight", DType::BF16, matrix));
}

TEST(Qwen35Checkpoint, InspectReadsTheShardedMultimodalFolder) {
  const fs::path folder = qwen35_fixture("multimodal");
  const nlohmann::json index = read_json_file(folder / "model.safetensors.index.json");
  const ModelReport report = inspect_model(folder, std::nullopt, 2);
  EXPECT_EQ(report.tensors.size(), index.at("weight_map").size());
  std::set<std::string> names;
  for (const TensorReport& tensor : report.tensors) {
    names.insert(tensor.name);
    EXPECT_FALSE(tensor.quantized) << tensor.name;
    if (tensor.name == "model.language_model.layers.0.linear_attn.conv1d.weight") {
      EXPECT_EQ(tensor.shape, (std::vector<int64_t>{2 * 2 * 16 + 4 * 24, 1, 4}));
    }
  }
  for (const char* name : {"lm_head.weight", "model.visual.patch_embed.proj.weight", "mtp.fc.weight",
                           "model.language_model.embed_tokens.weight", "model.language_model.layers.2.linear_attn.A_log"}) {
    EXPECT_TRUE(names.count(name)) << name;
  }
}

TEST(Qwen35Checkpoint, QuantizeTakesTheDecoderLinearsAndKeepsEverythingElse) {
  TemporaryFolder temporary;
  const fs::path input = qwen35_fixture("multimodal"), output = temporary.path() / "hlwq";
  const QuantizeSummary summary = quantize_model(input, output, QuantizeOptions{});
  EXPECT_EQ(quantized_names(output), decoder_linears("model.language_model."));
  EXPECT_EQ(summary.quantized_tensors, decoder_linears("").size());
  const ModelFolder before = ModelFolder::open(input), after = ModelFolder::open(output);
  const std::set<std::string> quantized = quantized_names(output);
  size_t kept = 0;
  for (const std::string& name : before.tensor_names()) {
    if (quantized.count(name)) continue;
    EXPECT_TRUE(same_bytes(before, after, name)) << name;
    ++kept;
  }
  EXPECT_EQ(kept + quantized.size(), before.tensor_names().size());
  const nlohmann::json config = read_json_file(output / "config.json");
  EXPECT_EQ(config.at("architectures")[0], "Qwen3_5ForConditionalGeneration");
  EXPECT_TRUE(config.at("vision_config").is_object() && config.at("text_config").is_object());
}

TEST(Qwen35Checkpoint, IncludeQuantizesTheVisionTower) {
  TemporaryFolder temporary;
  QuantizeOptions options;
  options.selection.include = "visual|language_model";
  quantize_model(qwen35_fixture("multimodal"), temporary.path() / "hlwq", options);
  const std::set<std::string> quantized = quantized_names(temporary.path() / "hlwq");
  for (const char* name : {"model.visual.blocks.0.attn.qkv.weight", "model.visual.merger.linear_fc2.weight",
                           "model.language_model.layers.3.self_attn.q_proj.weight"}) {
    EXPECT_TRUE(quantized.count(name)) << name;
  }
  for (const char* name : {"model.visual.patch_embed.proj.weight", "mtp.fc.weight", "lm_head.weight",
                           "model.language_model.layers.0.linear_attn.in_proj_a.weight"}) {
    EXPECT_FALSE(quantized.count(name)) << name;
  }
}

TEST(Qwen35Checkpoint, Bf16ExportWritesTheMultimodalLayoutBack) {
  TemporaryFolder temporary;
  const fs::path input = qwen35_fixture("multimodal");
  quantize_model(input, temporary.path() / "hlwq", QuantizeOptions{});
  export_model(temporary.path() / "hlwq", temporary.path() / "bf16", ExportOptions{});
  const ModelFolder before = ModelFolder::open(input), after = ModelFolder::open(temporary.path() / "bf16");
  EXPECT_EQ(after.tensor_names().size(), before.tensor_names().size());
  const std::set<std::string> quantized = decoder_linears("model.language_model.");
  for (const std::string& name : before.tensor_names()) {
    ASSERT_TRUE(after.has(name)) << name;
    EXPECT_EQ(after.info(name).shape, before.info(name).shape) << name;
    EXPECT_EQ(after.info(name).dtype, DType::BF16) << name;
    // Everything not quantized is bf16 already and comes back bit for bit.
    if (!quantized.count(name)) {
      EXPECT_TRUE(same_bytes(before, after, name)) << name;
    }
  }
  const nlohmann::json config = read_json_file(temporary.path() / "bf16" / "config.json");
  EXPECT_FALSE(config.contains("quantization_config"));
  EXPECT_EQ(config.at("text_config"), read_json_file(input / "config.json").at("text_config"));
}

TEST(Qwen35Checkpoint, TextModelExportKeepsFloat32ALog) {
  TemporaryFolder temporary;
  quantize_model(qwen35_fixture("text"), temporary.path() / "hlwq", QuantizeOptions{});
  EXPECT_EQ(quantized_names(temporary.path() / "hlwq"), decoder_linears("model."));
  export_model(temporary.path() / "hlwq", temporary.path() / "bf16", ExportOptions{});
  const ModelFolder after = ModelFolder::open(temporary.path() / "bf16");
  EXPECT_EQ(after.info("model.layers.1.linear_attn.A_log").dtype, DType::F32);
  EXPECT_EQ(after.info("model.layers.1.linear_attn.dt_bias").dtype, DType::BF16);
  EXPECT_EQ(after.info("model.layers.1.linear_attn.in_proj_qkv.weight").dtype, DType::BF16);
}

TEST(Qwen35Checkpoint, MlxExportQuantizesOnlyTheDecoder) {
  TemporaryFolder temporary;
  const fs::path input = qwen35_fixture("multimodal");
  quantize_model(input, temporary.path() / "hlwq", QuantizeOptions{});
  ExportOptions options;
  options.target = ExportTarget::mlx;
  export_model(temporary.path() / "hlwq", temporary.path() / "mlx", options);
  const ModelFolder before = ModelFolder::open(input), after = ModelFolder::open(temporary.path() / "mlx");
  for (const std::string& name : before.tensor_names()) {
    if (name.starts_with("model.visual.") || name.starts_with("mtp.") || name.find("conv1d") != std::string::npos ||
        name.ends_with("A_log")) {
      EXPECT_TRUE(same_bytes(before, after, name)) << name;
      EXPECT_FALSE(after.has(name.substr(0, name.rfind('.')) + ".scales")) << name;
    }
  }
  // in = 64 columns: affine at group 64; out_proj and down_proj (in = 96) stay dense.
  EXPECT_TRUE(after.has("model.language_model.layers.0.linear_attn.in_proj_qkv.scales"));
  EXPECT_TRUE(after.has("model.language_model.layers.3.self_attn.o_proj.scales"));
  EXPECT_FALSE(after.has("model.language_model.layers.0.linear_attn.out_proj.scales"));
}

TEST(Qwen35Checkpoint, CompressedTensorsExportIgnoresTheVisionTower) {
  TemporaryFolder temporary;
  const fs::path input = qwen35_fixture("multimodal");
  quantize_model(input, temporary.path() / "hlwq", QuantizeOptions{});
  ExportOptions options;
  options.target = ExportTarget::ct_int4;
  options.group_size = 32;  // divides every decoder input (64, 96, 128)
  export_model(temporary.path() / "hlwq", temporary.path() / "ct", options);
  const ModelFolder before = ModelFolder::open(input), after = ModelFolder::open(temporary.path() / "ct");
  const nlohmann::json ignore = read_json_file(temporary.path() / "ct" / "config.json")["quantization_config"]["ignore"];
  const std::set<std::string> ignored(ignore.begin(), ignore.end());
  for (const char* module : {"model.visual.blocks.0.attn.qkv", "model.visual.merger.linear_fc1", "mtp.fc", "lm_head"}) {
    EXPECT_TRUE(ignored.count(module)) << module;
  }
  EXPECT_TRUE(same_bytes(before, after, "model.visual.blocks.0.attn.qkv.weight"));
  EXPECT_TRUE(after.has("model.language_model.layers.0.linear_attn.in_proj_qkv.weight_packed"));
  EXPECT_FALSE(ignored.count("model.language_model.layers.0.linear_attn.in_proj_qkv"));
}

// --- Cross-checks with the reference loaders (python) ---------------------------------------------

TEST(Qwen35CrossCheck, TransformersLoadsTheBf16ExportOfTheMultimodalModel) {
  if (!python_has("torch, transformers.models.qwen3_5")) {
    GTEST_SKIP() << "python3 with torch and transformers >= 5 (models/qwen3_5) not available";
  }
  TemporaryFolder temporary;
  const fs::path input = qwen35_fixture("multimodal");
  const std::string ids = " --ids " + (input / "ids.json").string();
  std::string log;
  // Nothing quantized: the export is the original, bit for bit, so transformers' logits are the
  // fixture's up to float summation order.
  QuantizeOptions nothing;
  nothing.selection.exclude = ".";
  quantize_model(input, temporary.path() / "hlwq0", nothing);
  export_model(temporary.path() / "hlwq0", temporary.path() / "bf16_0", ExportOptions{});
  EXPECT_EQ(check_qwen35_export((temporary.path() / "bf16_0").string() + ids + " --expected " +
                             (input / "logits.f32").string() + " --engine transformers --tolerance 1e-5" +
                             " --same-tensors " + input.string(),
                         temporary.path() / "0.log", log),
            0)
      << log;
  // Quantized: the text logits move by the quantization error only. This random 4-layer model
  // amplifies weight errors about 20-fold (1% noise on in_proj_qkv alone moves the logits by 1.1 x
  // their RMS at worst), so the check runs at 8 bits, where the weights' relative RMS error is ~0.4%
  // (bfloat16 rounding included): measured 0.08 x RMS (RMS of the difference) and 35 of 40 top-1
  // (Q5: 0.71 x RMS, 14 of 40, the same amplification of its ~5% weight error).
  QuantizeOptions eight_bits;
  eight_bits.params.bits = 8;
  quantize_model(input, temporary.path() / "hlwq", eight_bits);
  export_model(temporary.path() / "hlwq", temporary.path() / "bf16", ExportOptions{});
  EXPECT_EQ(check_qwen35_export((temporary.path() / "bf16").string() + ids + " --expected " +
                             (input / "logits.f32").string() +
                             " --engine transformers --tolerance 1.0 --rms-tolerance 0.15 --same-tensors " +
                             input.string(),
                         temporary.path() / "q8.log", log),
            0)
      << log;
  std::cout << log;
}

TEST(Qwen35CrossCheck, MlxLmLoadsTheMlxExport) {
  if (!python_has("torch, transformers.models.qwen3_5, mlx.core, mlx_lm.models.qwen3_5")) {
    GTEST_SKIP() << "python3 with torch, transformers >= 5, mlx and mlx_lm (models/qwen3_5) not available";
  }
  TemporaryFolder temporary;
  const fs::path input = qwen35_fixture("multimodal");
  quantize_model(input, temporary.path() / "hlwq", QuantizeOptions{});
  // Float32 scales, biases and norms: mlx-lm then computes in float32. (In bfloat16 it adds 1 to the
  // zero-centered norm weights in bfloat16 and computes in bfloat16, which moves this random tiny
  // model's logits by up to 0.8 x their RMS even unquantized; in float32 mlx-lm and transformers
  // agree on the original to 4e-5.)
  ExportOptions mlx;
  mlx.target = ExportTarget::mlx;
  mlx.dtype = DType::F32;
  export_model(temporary.path() / "hlwq", temporary.path() / "mlx", mlx);
  // transformers on hlwq's float32 dequantization of the same MLX folder: the weights are equal (the
  // MLX cross-check test shows mx.dequantize and hlwq agree bit for bit), only the engines differ.
  ExportOptions dense;
  dense.dtype = DType::F32;
  export_model(temporary.path() / "mlx", temporary.path() / "dequantized", dense);
  std::string log;
  EXPECT_EQ(check_qwen35_export((temporary.path() / "mlx").string() + " --ids " + (input / "ids.json").string() +
                             " --expected-folder " + (temporary.path() / "dequantized").string() +
                             " --engine mlx --tolerance 1e-3",
                         temporary.path() / "mlx.log", log),
            0)
      << log;
  std::cout << log;
  // hlwq runs the same MLX folder natively (its affine kernels, the hybrid forward pass): mlx-lm's
  // logits against hlwq's.
  ThreadPool pool(2);
  const ReferenceLogits reference = read_reference_logits(input);
  const std::vector<float> hlwq_logits = prefill_logits(Model::load(temporary.path() / "mlx", pool), reference.ids, pool);
  {
    std::ofstream out(temporary.path() / "hlwq_mlx.f32", std::ios::binary);
    out.write(reinterpret_cast<const char*>(hlwq_logits.data()),
              static_cast<std::streamsize>(hlwq_logits.size() * sizeof(float)));
  }
  EXPECT_EQ(check_qwen35_export((temporary.path() / "mlx").string() + " --ids " + (input / "ids.json").string() +
                             " --expected " + (temporary.path() / "hlwq_mlx.f32").string() +
                             " --engine mlx --tolerance 1e-3",
                         temporary.path() / "mlx_hlwq.log", log),
            0)
      << log;
  std::cout << "against hlwq's run of the MLX folder: " << log;
}

}  // namespace
}  // namespace hlwq
