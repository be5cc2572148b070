// SIGINT and SIGTERM sent to `hlwq quantize` and `hlwq export` while they write: the command exits
// non-zero, and neither the output folder, nor its staging sibling, nor a temporary folder stays
// behind; the same command then succeeds.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "convert/tiny_model.h"
#include "test_util.h"

namespace hlwq {
namespace {

namespace fs = std::filesystem;

struct Interrupted {
  bool signal_landed = false;  // false: the command had finished before the signal was sent
  int exit_code = -1;          // the exit status, or 128 + the signal that killed it
  std::string output;
};

// Starts `hlwq arguments...` with TMPDIR=temporary, waits until its staging folder (".NAME.partial-PID"
// beside `output`) appears, then sends `signal_number` and waits for it to end.
Interrupted run_and_interrupt(const std::vector<std::string>& arguments, const fs::path& output,
                              const fs::path& temporary, int signal_number) {
  const fs::path log = temporary.parent_path() / "interrupted.log";
  const pid_t child = ::fork();
  if (child == 0) {
    ::setenv("TMPDIR", temporary.c_str(), 1);
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, STDOUT_FILENO);
    ::dup2(fd, STDERR_FILENO);
    std::vector<char*> argv = {const_cast<char*>("hlwq")};
    for (const std::string& argument : arguments) argv.push_back(const_cast<char*>(argument.c_str()));
    argv.push_back(nullptr);
    ::execv(HLWQ_BINARY, argv.data());
    ::_exit(127);
  }
  Interrupted result;
  const fs::path staging = output.parent_path() / ("." + output.filename().string() + ".partial-" + std::to_string(child));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  int status = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    if (::waitpid(child, &status, WNOHANG) == child) break;  // ended before the folder was seen
    if (fs::exists(staging)) {
      // At once: a Release build quantizes this model in well under a second, and the signal must
      // land while tensors are being written.
      result.signal_landed = ::kill(child, signal_number) == 0;
      ::waitpid(child, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  std::ostringstream text;
  text << std::ifstream(log).rdbuf();
  result.output = text.str();
  fs::remove(log);
  // Finished on its own after the signal? Then the signal did not interrupt the work.
  if (result.exit_code == 0) result.signal_landed = false;
  return result;
}

// Interrupts the command with each signal, then runs it to the end.
void check_interrupt_then_success(const std::string& command, const fs::path& input, const fs::path& output,
                                  const std::vector<std::string>& extra_arguments) {
  const fs::path work = output.parent_path();
  const fs::path temporary = work / "tmp";
  fs::create_directories(temporary);
  const size_t entries = count_entries(work);
  for (const int signal_number : {SIGINT, SIGTERM}) {
    std::vector<std::string> arguments = {command, "-m", input.string(), "-o", output.string()};
    arguments.insert(arguments.end(), extra_arguments.begin(), extra_arguments.end());
    const Interrupted run = run_and_interrupt(arguments, output, temporary, signal_number);
    ASSERT_TRUE(run.signal_landed) << command << " finished before the signal (make the model larger): "
                                   << run.output;
    EXPECT_NE(run.exit_code, 0) << run.output;
    EXPECT_NE(run.output.find("hlwq: error: interrupted"), std::string::npos) << run.output;
    EXPECT_FALSE(fs::exists(output)) << command;
    EXPECT_EQ(count_entries(work), entries) << command << ": a staging folder was left behind";
    EXPECT_EQ(count_entries(temporary), 0u) << command << ": a temporary folder was left behind";
  }
  std::string again = command + " -m " + input.string() + " -o " + output.string();
  for (const std::string& argument : extra_arguments) again += " " + argument;
  const CommandResult finished = run_hlwq(again);
  ASSERT_EQ(finished.exit_code, 0) << finished.output;
  EXPECT_TRUE(fs::exists(output / "config.json"));
}

TEST(InterruptedCommands, QuantizeAndExportLeaveNothingBehindAndThenSucceed) {
  TemporaryFolder folder;
  const fs::path dense = folder.path() / "dense";
  TinyModelOptions big;  // ~62 M weights (124 MB of BF16): tenths of a second in Release, minutes under ASan
  big.hidden = 1024;
  big.intermediate = 2816;
  big.vocab = 8000;
  big.layers = 4;
  write_tiny_model(dense, big);
  fs::create_directory(folder.path() / "work");
  const fs::path quantized = folder.path() / "work" / "q";
  check_interrupt_then_success("quantize", dense, quantized, {"--threads", "2"});
  check_interrupt_then_success("export", quantized, folder.path() / "work" / "bf16", {"--to", "bf16"});
}

}  // namespace
}  // namespace hlwq
