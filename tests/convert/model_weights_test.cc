// quantization_config <-> HlwqParams (src/convert/model_weights.cc): every key's values, the
// defaults of folders written before a key existed, and one-line errors naming the file.
#include "convert/model_weights.h"

#include <gtest/gtest.h>

#include <string>

#include "convert/quantize_model.h"
#include "convert/tiny_model.h"
#include "core/error.h"
#include "core/file_writer.h"
#include "test_util.h"

namespace hlwq {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

TEST(HlwqParamsJson, EveryVariantRoundTrips) {
  for (Rotation rotation : {Rotation::hadamard, Rotation::none}) {
    for (CodebookKind codebook : {CodebookKind::converged, CodebookKind::polarquant_compat, CodebookKind::uniform}) {
      for (BlockGain gain : {BlockGain::norm, BlockGain::least_squares}) {
        HlwqParams params;
        params.bits = 3;
        params.block = 64;
        params.rotation = rotation;
        params.codebook = codebook;
        params.gain = gain;
        if (rotation == Rotation::hadamard) params.sign_seed = 0xfedcba9876543210u;
        const HlwqParams back = hlwq_params_from_json(hlwq_params_to_json(params), "config.json");
        EXPECT_EQ(back.bits, 3);
        EXPECT_EQ(back.block, 64);
        EXPECT_EQ(back.rotation, rotation);
        EXPECT_EQ(back.codebook, codebook);
        EXPECT_EQ(back.gain, gain);
        EXPECT_EQ(back.sign_seed, params.sign_seed);
      }
    }
  }
  HlwqParams ablation;
  ablation.rotation = Rotation::none;
  ablation.codebook = CodebookKind::uniform;
  const json written = hlwq_params_to_json(ablation);
  EXPECT_EQ(written["rotation"], "none");
  EXPECT_EQ(written["codebook"], "uniform");
  EXPECT_EQ(hlwq_params_to_json(HlwqParams{})["rotation"], "hadamard");
  EXPECT_EQ(hlwq_params_to_json(HlwqParams{})["codebook"], "lloyd-max-gaussian");
}

TEST(HlwqParamsJson, MissingRotationMeansHadamard) {
  // A config as written before the ablation variants existed.
  const json old = json::parse(R"({"quant_method": "hlwq", "format_version": 1, "bits": 5, "block_size": 128,
                                   "codebook": "lloyd-max-gaussian", "gain": "norm", "sign_seed": 7})");
  const HlwqParams params = hlwq_params_from_json(old, "config.json");
  EXPECT_EQ(params.rotation, Rotation::hadamard);
  EXPECT_EQ(params.codebook, CodebookKind::converged);
  EXPECT_EQ(params.sign_seed, 7u);
}

TEST(HlwqParamsJson, UnknownValuesAreOneLineErrorsNamingTheFile) {
  const json good = hlwq_params_to_json(HlwqParams{});
  const auto with = [&](const char* key, json value) {
    json config = good;
    config[key] = std::move(value);
    return error_message([&] { hlwq_params_from_json(config, "/m/config.json"); });
  };
  EXPECT_EQ(with("rotation", "bogus"), "unknown rotation 'bogus', /m/config.json");
  EXPECT_EQ(with("codebook", "bogus"), "unknown codebook 'bogus', /m/config.json");
  EXPECT_EQ(with("gain", "bogus"), "unknown gain 'bogus', /m/config.json");
  const std::string not_a_string = with("rotation", 3);
  EXPECT_EQ(not_a_string.rfind("invalid quantization_config: ", 0), 0u) << not_a_string;
  EXPECT_NE(not_a_string.find("/m/config.json"), std::string::npos) << not_a_string;
  EXPECT_EQ(not_a_string.find('\n'), std::string::npos) << not_a_string;
  json signs_without_rotation = good;
  signs_without_rotation["rotation"] = "none";
  signs_without_rotation["sign_seed"] = 5;
  EXPECT_EQ(error_message([&] { hlwq_params_from_json(signs_without_rotation, "/m/config.json"); }),
            "invalid quantization_config: HLWQ random signs need the Hadamard rotation (a sign seed was given "
            "with rotation none), /m/config.json");
  EXPECT_EQ(with("bits", 9), "invalid quantization_config: HLWQ bits must be 2..8, got 9, /m/config.json");
}

TEST(HlwqParamsJson, BogusRotationInAModelFolderIsAClearError) {
  TemporaryFolder folder;
  write_tiny_model(folder.path() / "dense");
  QuantizeOptions options;
  options.params.rotation = Rotation::none;
  options.params.codebook = CodebookKind::uniform;
  quantize_model(folder.path() / "dense", folder.path() / "q", options);
  EXPECT_EQ(ModelWeights::open(folder.path() / "q").hlwq_params()->rotation, Rotation::none);
  const fs::path config_path = folder.path() / "q" / "config.json";
  json config = ModelFolder::open(folder.path() / "q").config();
  config["quantization_config"]["rotation"] = "bogus";
  write_text_file(config_path, config.dump(2));
  EXPECT_EQ(error_message([&] { ModelWeights::open(folder.path() / "q"); }),
            "unknown rotation 'bogus', " + config_path.string());
}

TEST(ModelWeights, BadPerTensorBlockSizeIsAClearError) {
  TemporaryFolder folder;
  write_tiny_model(folder.path() / "dense");
  quantize_model(folder.path() / "dense", folder.path() / "q", QuantizeOptions{});
  const fs::path config_path = folder.path() / "q" / "config.json";
  json config = ModelFolder::open(folder.path() / "q").config();
  config["quantization_config"]["quantized_tensors"]["model.layers.0.mlp.up_proj.weight"]["block_size"] = 100;
  write_text_file(config_path, config.dump(2));
  EXPECT_EQ(error_message([&] { ModelWeights::open(folder.path() / "q"); }),
            "invalid block_size or bits for model.layers.0.mlp.up_proj.weight: HLWQ block size must be a power of two in "
            "32..1024, got 100, " + config_path.string());
  // A block that changes the stored size no longer matches the codes.
  config["quantization_config"]["quantized_tensors"]["model.layers.0.mlp.up_proj.weight"]["block_size"] = 64;
  write_text_file(config_path, config.dump(2));
  const std::string message = error_message([&] { ModelWeights::open(folder.path() / "q"); });
  EXPECT_NE(message.find("HLWQ codes of model.layers.0.mlp.up_proj.weight have the wrong size"), std::string::npos)
      << message;
}

}  // namespace
}  // namespace hlwq
