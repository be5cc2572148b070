// `hlwq quantize`'s ablation flags (--rotation, --codebook) reach quantization_config, conflicting
// flags are usage errors, and `hlwq inspect` reads the result.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>

#include <nlohmann/json.hpp>

#include "convert/tiny_model.h"
#include "test_util.h"

namespace hlwq {
namespace {

nlohmann::json quantization_config(const std::filesystem::path& folder) {
  std::ifstream stream(folder / "config.json");
  return nlohmann::json::parse(stream).at("quantization_config");
}

TEST(QuantizeCommand, AblationFlagsReachTheConfig) {
  TemporaryFolder folder;
  write_tiny_model(folder.path() / "dense");
  const std::string dense = (folder.path() / "dense").string();
  struct Case {
    const char* flags;
    const char* rotation;
    const char* codebook;
  };
  for (const Case& test_case : {Case{"--rotation none --codebook uniform", "none", "uniform"},
                                Case{"--codebook uniform", "hadamard", "uniform"},
                                Case{"--rotation none", "none", "lloyd-max-gaussian"},
                                Case{"--rotation hadamard --codebook lloyd-max", "hadamard", "lloyd-max-gaussian"},
                                Case{"--compat polarquant --rotation none", "none", "polarquant-compat"}}) {
    const std::filesystem::path out = folder.path() / "out";
    const CommandResult result =
        run_hlwq("quantize -m " + dense + " -o " + out.string() + " --bits 4 --threads 2 " + test_case.flags);
    ASSERT_EQ(result.exit_code, 0) << test_case.flags << ": " << result.output;
    const nlohmann::json config = quantization_config(out);
    EXPECT_EQ(config["rotation"], test_case.rotation) << test_case.flags;
    EXPECT_EQ(config["codebook"], test_case.codebook) << test_case.flags;
    EXPECT_EQ(config["bits"], 4);
    const CommandResult inspect = run_hlwq("inspect -m " + out.string() + " --ref " + dense + " --json");
    ASSERT_EQ(inspect.exit_code, 0) << inspect.output;
    const double sqnr = nlohmann::json::parse(inspect.output).at("sqnr_db").get<double>();
    EXPECT_GT(sqnr, 17.0) << test_case.flags;  // Q4 of Gaussian weights: 19-20 dB for every variant
    std::filesystem::remove_all(out);
  }
}

TEST(QuantizeCommand, ConflictingAblationFlagsAreErrors) {
  TemporaryFolder folder;
  write_tiny_model(folder.path() / "dense");
  const std::string prefix =
      "quantize -m " + (folder.path() / "dense").string() + " -o " + (folder.path() / "out").string() + " ";
  for (const char* usage : {"--rotation bogus", "--codebook bogus", "--codebook uniform --compat polarquant"}) {
    const CommandResult result = run_hlwq(prefix + usage);
    EXPECT_EQ(result.exit_code, 2) << usage << ": " << result.output;
  }
  const CommandResult signs = run_hlwq(prefix + "--rotation none --signs 3");
  EXPECT_EQ(signs.exit_code, 1) << signs.output;
  EXPECT_EQ(signs.output,
            "hlwq: error: HLWQ random signs need the Hadamard rotation (a sign seed was given with rotation none)\n");
  EXPECT_FALSE(std::filesystem::exists(folder.path() / "out"));
}

// The defaults the quality study chose (--block auto --gain lsq), what --compat polarquant changes
// back to the paper's, and explicit flags winning over both.
TEST(QuantizeCommand, DefaultsAndCompatSettings) {
  TemporaryFolder folder;
  write_tiny_model(folder.path() / "dense");  // hidden 192: auto fits blocks of 64 there
  const std::string prefix =
      "quantize -m " + (folder.path() / "dense").string() + " -o " + (folder.path() / "out").string() + " --threads 2 ";
  struct Case {
    const char* flags;
    int q_proj_block;
    const char* gain;
    bool fitted;
  };
  for (const Case& test_case : {Case{"", 64, "least-squares", true},
                                Case{"--compat polarquant", 128, "norm", false},
                                Case{"--compat polarquant --block auto --gain lsq", 64, "least-squares", true},
                                Case{"--block 128 --gain norm", 128, "norm", false}}) {
    const CommandResult result = run_hlwq(prefix + test_case.flags);
    ASSERT_EQ(result.exit_code, 0) << test_case.flags << ": " << result.output;
    const nlohmann::json config = quantization_config(folder.path() / "out");
    EXPECT_EQ(config["gain"], test_case.gain) << test_case.flags;
    EXPECT_EQ(config.contains("block_rule"), test_case.fitted) << test_case.flags;
    EXPECT_EQ(config["quantized_tensors"]["model.layers.0.self_attn.q_proj.weight"]["block_size"],
              test_case.q_proj_block)
        << test_case.flags;
    std::filesystem::remove_all(folder.path() / "out");
  }
  const CommandResult bad = run_hlwq(prefix + "--block 12x");
  EXPECT_EQ(bad.exit_code, 1) << bad.output;
  EXPECT_NE(bad.output.find("--block must be a number or auto, got '12x'"), std::string::npos) << bad.output;
  EXPECT_FALSE(std::filesystem::exists(folder.path() / "out"));
}

}  // namespace
}  // namespace hlwq

namespace hlwq {
namespace {

// `hlwq quantize --codebook trellis` on a tiny real model (the llama engine fixture, with a stand-in
// tokenizer), then the commands that read a folder: inspect, run, export to BF16 and MLX, bench.
TEST(QuantizeCommand, TrellisFolderGoesThroughEveryCommand) {
  TemporaryFolder folder;
  const std::filesystem::path dense_path = folder.path() / "dense";
  std::filesystem::copy(std::filesystem::path(HLWQ_SOURCE_DIR) / "tests/fixtures/engine/llama", dense_path);
  write_text_file(dense_path / "tokenizer.json", R"({"version": "1.0", "model": {"type": "BPE", "vocab": {}, "merges": []}})");
  const std::string dense = dense_path.string();
  const std::string out = (folder.path() / "trellis").string();
  const CommandResult quantize =
      run_hlwq("quantize -m " + dense + " -o " + out + " --codebook trellis --bits 4 --signs 42 --threads 2");
  ASSERT_EQ(quantize.exit_code, 0) << quantize.output;
  EXPECT_NE(quantize.output.find("to trellis k4 L12"), std::string::npos) << quantize.output;
  const nlohmann::json config = quantization_config(out);
  EXPECT_EQ(config["codebook"], "trellis-gaussian");
  EXPECT_EQ(config["trellis_state_bits"], 12);
  EXPECT_EQ(config["bits"], 4);

  const CommandResult inspect = run_hlwq("inspect -m " + out + " --ref " + dense + " --json");
  ASSERT_EQ(inspect.exit_code, 0) << inspect.output;
  const nlohmann::json report = nlohmann::json::parse(inspect.output);
  EXPECT_GT(report.at("sqnr_db").get<double>(), 20.0);  // k = 4 trellis: ~22-23 dB (Lloyd-Max Q4: ~20)
  EXPECT_NE(inspect.output.find("trellis-k4-l12-b64"), std::string::npos);

  const CommandResult run = run_hlwq("run -m " + out + " --ids 1,5,9 -n 4 --temp 0 --threads 2");
  ASSERT_EQ(run.exit_code, 0) << run.output;

  for (const char* target : {"bf16", "mlx"}) {
    const std::string exported = (folder.path() / target).string();
    const CommandResult result = run_hlwq("export -m " + out + " -o " + exported + " --to " + target);
    ASSERT_EQ(result.exit_code, 0) << target << ": " << result.output;
    const CommandResult against = run_hlwq("inspect -m " + exported + " --ref " + dense + " --json");
    ASSERT_EQ(against.exit_code, 0) << against.output;
    EXPECT_GT(nlohmann::json::parse(against.output).at("sqnr_db").get<double>(), 10.0) << target;
  }

  const CommandResult bench = run_hlwq("bench -m " + out + " -p 4 -n 2 --json --threads 2");
  ASSERT_EQ(bench.exit_code, 0) << bench.output;
  EXPECT_GT(nlohmann::json::parse(bench.output).at("decode_tokens_per_second").get<double>(), 0.0);
}

// Combinations trellis codes do not take: one line, a non-zero exit, and no output folder.
TEST(QuantizeCommand, TrellisRefusesWhatDoesNotApply) {
  TemporaryFolder folder;
  write_tiny_model(folder.path() / "dense");
  const std::filesystem::path out = folder.path() / "out";
  const std::string prefix = "quantize -m " + (folder.path() / "dense").string() + " -o " + out.string() + " ";
  struct Case {
    const char* flags;
    int exit_code;
    const char* message;
  };
  for (const Case& test_case :
       {Case{"--codebook trellis --target-bpw 4.5", 1, "--target-bpw does not apply to --codebook trellis"},
        Case{"--trellis-state-bits 14", 1, "--trellis-state-bits needs --codebook trellis"},
        Case{"--codebook trellis --rotation none", 1, "needs --rotation hadamard"},
        Case{"--codebook trellis --bits 4 --trellis-state-bits 4", 1, "state bits"},
        Case{"--codebook trellis --bits 4 --trellis-state-bits 21", 1, "state bits"},
        Case{"--codebook trellis --bits 9", 1, "bits"},
        Case{"--codebook trellis --compat polarquant", 2, "excludes"}}) {
    const CommandResult result = run_hlwq(prefix + test_case.flags);
    EXPECT_EQ(result.exit_code, test_case.exit_code) << test_case.flags << ": " << result.output;
    EXPECT_NE(result.output.find(test_case.message), std::string::npos) << test_case.flags << ": " << result.output;
    if (test_case.exit_code == 1) {
      EXPECT_EQ(std::count(result.output.begin(), result.output.end(), '\n'), 1) << result.output;
    }
    EXPECT_FALSE(std::filesystem::exists(out)) << test_case.flags;
    EXPECT_EQ(count_entries(folder.path()), 1u) << test_case.flags;  // no staging folder left behind
  }
}

}  // namespace
}  // namespace hlwq
