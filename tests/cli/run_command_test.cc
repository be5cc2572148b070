// `hlwq run`: the ids it prints are the engine's generation; bad input is one error line.
#include <gtest/gtest.h>

#include <random>
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

std::string joined(const std::vector<int32_t>& ids) {
  std::string text;
  for (const int32_t id : ids) text += (text.empty() ? "" : ",") + std::to_string(id);
  return text;
}

// The printed ids: the first line that is not a "hlwq: ..." message (stderr comes unbuffered, first).
std::string ids_line(const std::string& output) {
  std::istringstream lines(output);
  for (std::string line; std::getline(lines, line);) {
    if (!line.starts_with("hlwq:")) return line;
  }
  return {};
}

// A prompt longer than the context: an error naming --truncate, or with --truncate the generation
// from exactly [BOS] + the newest ids (the tiny llama has 128 positions and bos_token_id 1).
TEST(RunCommand, TruncatesALongPrompt) {
  const std::string folder = engine_fixture("llama").string();
  std::mt19937 generator(1234);
  std::uniform_int_distribution<int32_t> random_id(3, 159);
  std::vector<int32_t> prompt = {1};
  for (int i = 0; i < 149; ++i) prompt.push_back(random_id(generator));
  const std::string command = "run -m " + folder + " --ids " + joined(prompt) + " -n 8 --threads 2";
  const CommandResult refused = run_hlwq(command);
  EXPECT_EQ(refused.exit_code, 1) << refused.output;
  EXPECT_NE(refused.output.find("hlwq: error: the prompt has 150 tokens, with -n 8 past the context of 128 "
                                "positions (--truncate keeps the last 120 prompt tokens)"),
            std::string::npos)
      << refused.output;

  ThreadPool pool(2);
  const Model model = Model::load(folder, pool);
  GenerateOptions options;
  options.max_new_tokens = 8;
  options.stop_ids = {2};  // config.json's eos_token_id, where the command stops too
  for (const int64_t context : {0, 40}) {
    const std::string with_context = context > 0 ? " --ctx " + std::to_string(context) : "";
    const CommandResult run = run_hlwq(command + with_context + " --truncate");
    ASSERT_EQ(run.exit_code, 0) << run.output;
    const size_t room = (context > 0 ? context : 128) - 8;
    std::vector<int32_t> kept = {1};
    kept.insert(kept.end(), prompt.end() - static_cast<std::ptrdiff_t>(room - 1), prompt.end());
    options.context_length = context;
    EXPECT_EQ(ids_line(run.output), joined(generate(model, kept, options, pool).tokens));
    EXPECT_NE(run.output.find("hlwq: --truncate dropped " + std::to_string(150 - room) + " of the 150 prompt tokens"),
              std::string::npos)
        << run.output;
  }
  // Without a BOS in front the newest ids alone are kept.
  const std::vector<int32_t> no_bos(prompt.begin() + 1, prompt.end());
  const CommandResult run = run_hlwq("run -m " + folder + " --ids " + joined(no_bos) + " -n 8 --ctx 40 --truncate");
  ASSERT_EQ(run.exit_code, 0) << run.output;
  options.context_length = 40;
  const std::vector<int32_t> newest(no_bos.end() - 32, no_bos.end());
  EXPECT_EQ(ids_line(run.output), joined(generate(model, newest, options, pool).tokens));
  // -n alone filling the context leaves nothing to keep.
  const CommandResult full = run_hlwq("run -m " + folder + " --ids " + joined(prompt) + " -n 40 --ctx 40 --truncate");
  EXPECT_EQ(full.exit_code, 1) << full.output;
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
