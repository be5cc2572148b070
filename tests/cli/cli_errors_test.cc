// The command line's contract for bad input: one line "hlwq: error: ...", exit 1 (2 for usage).
#include <gtest/gtest.h>

#include "convert/tiny_model.h"
#include "test_util.h"

namespace hlwq {
namespace {

size_t line_count(const std::string& text) { return std::count(text.begin(), text.end(), '\n'); }

TEST(CliErrors, UsageErrorsExitWithTwo) {
  for (const char* arguments : {"", "frobnicate", "quantize", "quantize -m x -o y --bits", "export -m a -o b --to gguf"}) {
    const CommandResult result = run_hlwq(arguments);
    EXPECT_EQ(result.exit_code, 2) << arguments << ": " << result.output;
  }
}

TEST(CliErrors, BadInputIsOneLineAndExitOne) {
  TemporaryFolder folder;
  write_tiny_model(folder.path() / "dense");
  const std::string dense = (folder.path() / "dense").string();
  const std::string missing = (folder.path() / "missing").string();
  const std::string out = (folder.path() / "out").string();
  const std::vector<std::string> commands = {
      "import " + missing + ".gguf -o " + out,
      "quantize -m " + missing + " -o " + out,
      "quantize -m " + dense + " -o " + dense,                        // output exists
      "quantize -m " + dense + " -o " + out + " --bits 9",
      "quantize -m " + dense + " -o " + out + " --include '('",     // bad regex
      "export -m " + dense + " -o " + out + " --to mlx --group-size 48",
      "inspect -m " + missing,
      "inspect -m " + dense + " --ref " + missing,
  };
  for (const std::string& command : commands) {
    const CommandResult result = run_hlwq(command);
    EXPECT_EQ(result.exit_code, 1) << command << ": " << result.output;
    EXPECT_EQ(result.output.rfind("hlwq: error: ", 0), 0u) << command << ": " << result.output;
    EXPECT_EQ(line_count(result.output), 1u) << command << ": " << result.output;
  }
  EXPECT_FALSE(std::filesystem::exists(out));
  EXPECT_EQ(count_entries(folder.path()), 1u);
}

TEST(CliErrors, HelpWorksForEveryCommand) {
  for (const char* command : {"--help", "import --help", "quantize --help", "export --help", "inspect --help",
                              "run --help", "chat --help", "ppl --help", "bench --help", "tokenize --help",
                              "serve --help"}) {
    const CommandResult result = run_hlwq(command);
    EXPECT_EQ(result.exit_code, 0) << command;
    EXPECT_NE(result.output.find("Usage"), std::string::npos) << command << result.output;
  }
}

}  // namespace
}  // namespace hlwq

namespace hlwq {
namespace {

// A full disk mid-write: quantize into a 1 MiB tmpfs (needs root and mount; skipped otherwise).
// The error is one line naming the file, the exit status 1, and nothing is left behind.
TEST(CliErrors, FullDiskLeavesNoPartialOutput) {
  TemporaryFolder folder;
  write_tiny_model(folder.path() / "dense", TinyModelOptions{DType::F32, 256, 1024, 2000, 2});
  const auto small = folder.path() / "small";
  std::filesystem::create_directory(small);
  const std::string mount = "mount -t tmpfs -o size=1m tmpfs " + small.string() + " 2>/dev/null";
  if (std::system(mount.c_str()) != 0) GTEST_SKIP() << "cannot mount a small tmpfs here (not root?)";
  const CommandResult result =
      run_hlwq("quantize -m " + (folder.path() / "dense").string() + " -o " + (small / "q").string());
  const size_t left = count_entries(small);
  std::system(("umount " + small.string()).c_str());
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_NE(result.output.find("disk full"), std::string::npos) << result.output;
  EXPECT_EQ(std::count(result.output.begin(), result.output.end(), '\n'), 1) << result.output;
  EXPECT_EQ(left, 0u);
}

}  // namespace
}  // namespace hlwq
