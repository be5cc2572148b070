// The first commands a newcomer types: top-level help, an unknown command, a model folder that is
// not there, and `hlwq run -p` on an instruct model (the chat template applies by default).
#include <gtest/gtest.h>

#include <algorithm>

#include "convert/gguf_import.h"
#include "test_util.h"

namespace hlwq {
namespace {

size_t line_count(const std::string& text) { return std::count(text.begin(), text.end(), '\n'); }

const char* const kCommands[] = {"import", "quantize", "export", "inspect", "run",
                                 "tokenize", "ppl", "chat", "bench", "serve"};

TEST(FirstCommands, TopLevelHelpListsTheCommands) {
  for (const char* help : {"--help", "-h"}) {
    const CommandResult result = run_hlwq(help);
    EXPECT_EQ(result.exit_code, 0) << result.output;
    for (const char* command : kCommands) {
      EXPECT_NE(result.output.find(command), std::string::npos) << command << " not in\n" << result.output;
    }
  }
}

TEST(FirstCommands, AnUnknownCommandIsAUsageErrorNamingItAndListingTheCommands) {
  for (const char* word : {"server", "frobnicate", "Run"}) {
    const CommandResult result = run_hlwq(std::string(word) + " -m x");
    EXPECT_EQ(result.exit_code, 2) << result.output;
    EXPECT_EQ(line_count(result.output), 1u) << result.output;
    EXPECT_EQ(result.output.rfind(std::string("hlwq: error: unknown command '") + word + "'", 0), 0u) << result.output;
    for (const char* command : kCommands) {
      EXPECT_NE(result.output.find(command), std::string::npos) << command << " not in " << result.output;
    }
  }
}

TEST(FirstCommands, AMissingModelFolderSaysItDoesNotExist) {
  TemporaryFolder folder;
  const std::string missing = (folder.path() / "no-such-model").string();
  const std::string out = (folder.path() / "out").string();
  const std::vector<std::string> commands = {
      "quantize -m " + missing + " -o " + out,
      "export -m " + missing + " -o " + out + " --to bf16",
      "inspect -m " + missing,
      "run -m " + missing + " -p hello",
      "run -m " + missing + " --ids 1,2",
      "tokenize -m " + missing + " -p hello",
      "ppl -m " + missing + " -f " + missing,
      "chat -m " + missing + " </dev/null",
      "bench -m " + missing,
  };
  for (const std::string& command : commands) {
    const CommandResult result = run_hlwq(command);
    EXPECT_EQ(result.exit_code, 1) << command << ": " << result.output;
    EXPECT_EQ(result.output, "hlwq: error: the model folder does not exist, " + missing + "\n") << command;
  }
  EXPECT_EQ(count_entries(folder.path()), 0u);
}

// SmolLM2-135M-Instruct through its chat template: the reply alone is printed, and a stop at
// <|im_end|> (id 2) is reported with the number of tokens; --raw continues the text instead.
TEST(FirstCommands, RunAppliesTheChatTemplateByDefault) {
  const auto gguf = demo_gguf_path();
  if (gguf.empty()) GTEST_SKIP() << "demo model not fetched (scripts/fetch_demo_model.sh)";
  TemporaryFolder folder;
  const std::string model = (folder.path() / "model").string();
  import_gguf(gguf, model, ImportOptions{});
  const std::string haiku = " -p 'Write a haiku about the sea.' -n 12 --threads 2";
  const CommandResult chat = run_hlwq("run -m " + model + haiku);
  ASSERT_EQ(chat.exit_code, 0) << chat.output;
  EXPECT_NE(chat.output.find("generated 12 at"), std::string::npos) << chat.output;
  EXPECT_EQ(chat.output.find("stopped at the end-of-sequence"), std::string::npos) << chat.output;
  EXPECT_EQ(chat.output.find("Write a haiku"), std::string::npos) << chat.output;  // no echo, no markup
  EXPECT_EQ(chat.output.find("<|im_start|>"), std::string::npos) << chat.output;

  const CommandResult answer =
      run_hlwq("run -m " + model + " -p 'What is the capital of France? Answer in one word.' -n 24 --threads 2");
  ASSERT_EQ(answer.exit_code, 0) << answer.output;
  EXPECT_NE(answer.output.find("Paris"), std::string::npos) << answer.output;
  EXPECT_NE(answer.output.find("hlwq: stopped at the end-of-sequence token 2 after "), std::string::npos)
      << answer.output;

  const CommandResult raw = run_hlwq("run -m " + model + haiku + " --raw");
  ASSERT_EQ(raw.exit_code, 0) << raw.output;
  EXPECT_EQ(raw.output.rfind("Write a haiku about the sea.", 0), 0u) << raw.output;  // raw text is echoed
  EXPECT_EQ(raw.output.find("<|im_start|>"), std::string::npos) << raw.output;
}

}  // namespace
}  // namespace hlwq
