// `hlwq bench` runs a model and a synthetic model and reports numbers that are consistent with
// each other (the roofline is bandwidth / bytes per token; rates are positive).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "engine/engine_fixture.h"
#include "test_util.h"

namespace hlwq {
namespace {

void expect_consistent(const nlohmann::json& report) {
  EXPECT_GT(report["read_bandwidth_gb_per_second"].get<double>(), 0.1);
  EXPECT_GT(report["prefill_tokens_per_second"].get<double>(), 0.0);
  EXPECT_GT(report["decode_tokens_per_second"].get<double>(), 0.0);
  const double roofline = report["read_bandwidth_gb_per_second"].get<double>() * 1e9 /
                          report["decode_bytes_per_token"].get<double>();
  EXPECT_NEAR(report["decode_roofline_tokens_per_second"].get<double>(), roofline, 1e-6 * roofline);
  EXPECT_NEAR(report["decode_roofline_fraction"].get<double>(),
              report["decode_tokens_per_second"].get<double>() / roofline, 1e-9);
}

TEST(BenchCommand, ModelFolderAndSyntheticModel) {
  const CommandResult folder = run_hlwq("bench -m " + engine_fixture("qwen3").string() + " -p 8 -n 4 --json --threads 2");
  ASSERT_EQ(folder.exit_code, 0) << folder.output;
  expect_consistent(nlohmann::json::parse(folder.output));
  const CommandResult synthetic = run_hlwq("bench --synthetic smollm2-135m --format hlwq-q4 -p 4 -n 2 --json --threads 2");
  ASSERT_EQ(synthetic.exit_code, 0) << synthetic.output;
  const nlohmann::json report = nlohmann::json::parse(synthetic.output);
  expect_consistent(report);
  // Q4 of the 135M shape: about 4.1-4.6 bits per weight over ~135M weights.
  EXPECT_GT(report["decode_bytes_per_token"].get<double>(), 50e6);
  EXPECT_LT(report["decode_bytes_per_token"].get<double>(), 140e6);
  const CommandResult unknown = run_hlwq("bench --synthetic gpt5 -n 1");
  EXPECT_EQ(unknown.exit_code, 1) << unknown.output;
  // Trellis codes of the same shape: about 4.2 bits per weight, decoded on the CPU.
  const CommandResult trellis =
      run_hlwq("bench --synthetic smollm2-135m --format trellis-k4 -p 4 -n 2 --json --threads 2");
  ASSERT_EQ(trellis.exit_code, 0) << trellis.output;
  const nlohmann::json trellis_report = nlohmann::json::parse(trellis.output);
  expect_consistent(trellis_report);
  EXPECT_GT(trellis_report["decode_bytes_per_token"].get<double>(), 50e6);
  EXPECT_LT(trellis_report["decode_bytes_per_token"].get<double>(), 140e6);
  for (const char* format : {"hlwq-q9", "hlwq-q1", "hlwq-q", "hlwq-q44", "trellis-k9", "trellis-k1", "trellis-k"}) {
    const CommandResult refused = run_hlwq(std::string("bench --synthetic smollm2-135m -n 1 --format ") + format);
    EXPECT_EQ(refused.exit_code, 1) << refused.output;
    EXPECT_NE(refused.output.find("hlwq-q2 to hlwq-q8, trellis-k2 to trellis-k8"), std::string::npos)
        << refused.output;
  }
}

}  // namespace
}  // namespace hlwq
