// `hlwq run`: the ids it prints are the engine's generation; bad input is one error line.
#include <gtest/gtest.h>

#include <sstream>

#include "engine/engine_fixture.h"
#include "engine/generate.h"
#include "test_util.h"

namespace hlwq {
namespace {

TEST(RunCommand, PrintsTheGeneratedIds) {
  const std::string folder = engine_fixture("qwen3").string();
  const CommandResult run = run_hlwq("run -m " + folder + " --ids 4,8,15,16 -n 7 --threads 2");
  ASSERT_EQ(run.exit_code, 0) << run.output;
  ThreadPool pool(2);
  const Model model = Model::load(folder, pool);
  GenerateOptions options;
  options.max_new_tokens = 7;
  const std::vector<int32_t> prompt = {4, 8, 15, 16};
  std::ostringstream expected;
  for (int32_t id : generate(model, prompt, options, pool).tokens) expected << (expected.tellp() ? "," : "") << id;
  EXPECT_EQ(run.output.substr(0, run.output.find('\n')), expected.str());
  EXPECT_NE(run.output.find("tokens/s"), std::string::npos);
  // Seeded sampling is reproducible from the command line.
  const std::string sampled = "run -m " + folder + " --ids 4,8 -n 12 --temp 1.5 --seed 5 --top-k 40 --top-p 0.95";
  EXPECT_EQ(run_hlwq(sampled).output.substr(0, 20), run_hlwq(sampled).output.substr(0, 20));
}

TEST(RunCommand, RejectsBadInput) {
  const std::string folder = engine_fixture("qwen3").string();
  for (const std::string ids : {"1,x", "", "1,,2", "-3", "1,160"}) {
    const CommandResult run = run_hlwq("run -m " + folder + " --ids '" + ids + "'");
    EXPECT_EQ(run.exit_code, 1) << ids << ": " << run.output;
    EXPECT_NE(run.output.find("hlwq: error: "), std::string::npos) << run.output;
  }
  const CommandResult missing = run_hlwq("run -m /nonexistent/folder --ids 1");
  EXPECT_EQ(missing.exit_code, 1) << missing.output;
  const CommandResult bad_top_p = run_hlwq("run -m " + folder + " --ids 1 --temp 1 --top-p 0");
  EXPECT_EQ(bad_top_p.exit_code, 1) << bad_top_p.output;
}

}  // namespace
}  // namespace hlwq
