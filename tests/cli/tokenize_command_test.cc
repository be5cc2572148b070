// `hlwq tokenize`: ids as JSON and as id/piece lines, BOS, files, and one-line errors.
#include <gtest/gtest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "test_util.h"

namespace hlwq {
namespace {

namespace fs = std::filesystem;

fs::path qwen3() { return fs::path(HLWQ_SOURCE_DIR) / ".." / "shared" / "data" / "tokenizers" / "qwen3"; }

TEST(TokenizeCommand, PrintsIdsAndPieces) {
  if (!fs::exists(qwen3())) GTEST_SKIP() << "no shared data";
  const CommandResult json_run = run_hlwq("tokenize -m " + qwen3().string() + " -p 'Hello world<|im_end|>' --json");
  ASSERT_EQ(json_run.exit_code, 0) << json_run.output;
  EXPECT_EQ(nlohmann::json::parse(json_run.output)["ids"], nlohmann::json({9707, 1879, 151645}));
  const CommandResult plain = run_hlwq("tokenize --tokenizer " + (qwen3() / "tokenizer.json").string() + " -p 'Hi\n'");
  ASSERT_EQ(plain.exit_code, 0) << plain.output;
  EXPECT_EQ(plain.output, "13048\tHi\n198\t\\n\n");

  TemporaryFolder folder;
  const fs::path text = folder.path() / "text.txt";
  std::ofstream(text) << "Hello world";
  const CommandResult from_file = run_hlwq("tokenize -m " + qwen3().string() + " -f " + text.string() + " --json");
  EXPECT_EQ(nlohmann::json::parse(from_file.output)["ids"], nlohmann::json({9707, 1879}));
}

TEST(TokenizeCommand, AddsBosForTheDemoModel) {
  const fs::path demo = demo_gguf_path();
  if (demo.empty()) GTEST_SKIP() << "demo model not downloaded";
  const CommandResult run = run_hlwq("tokenize --tokenizer " + demo.string() + " -p 'Hello world' --json --add-bos");
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_EQ(nlohmann::json::parse(run.output)["ids"], nlohmann::json({1, 19556, 905}));
}

TEST(TokenizeCommand, ErrorsAreOneLine) {
  TemporaryFolder folder;
  const CommandResult missing = run_hlwq("tokenize -m " + folder.path().string() + " -p x");
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.output.find("tokenizer.json"), std::string::npos) << missing.output;
  EXPECT_EQ(missing.output.find('\n'), missing.output.size() - 1) << missing.output;
  const fs::path broken = folder.path() / "tokenizer.json";
  std::ofstream(broken) << "[1, 2";
  const CommandResult invalid = run_hlwq("tokenize --tokenizer " + broken.string() + " -p x");
  EXPECT_EQ(invalid.exit_code, 1);
  EXPECT_NE(invalid.output.find(broken.string()), std::string::npos) << invalid.output;
  const CommandResult no_text = run_hlwq("tokenize -m " + folder.path().string());
  EXPECT_NE(no_text.exit_code, 0);
}

}  // namespace
}  // namespace hlwq
