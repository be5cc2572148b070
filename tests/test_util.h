// Helpers shared by tests: temporary folders, running the hlwq binary, random data.
#pragma once

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"

namespace hlwq {

// The message of the hlwq::Error that action throws, or "(no error)".
inline std::string error_message(const std::function<void()>& action) {
  try {
    action();
  } catch (const Error& error) {
    return error.what();
  }
  return "(no error)";
}

class TemporaryFolder {
 public:
  TemporaryFolder() {
    std::string pattern = (std::filesystem::temp_directory_path() / "hlwq-test-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) std::abort();
    path_ = pattern;
  }
  ~TemporaryFolder() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TemporaryFolder(const TemporaryFolder&) = delete;
  TemporaryFolder& operator=(const TemporaryFolder&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

inline size_t count_entries(const std::filesystem::path& folder) {
  size_t count = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(folder)) ++count;
  return count;
}

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

// Runs `hlwq ARGUMENTS` (a shell-quoted string) and captures its output.
inline CommandResult run_hlwq(const std::string& arguments) {
  CommandResult result;
  const std::string command = std::string(HLWQ_BINARY) + " " + arguments + " 2>&1";
  std::FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return result;
  char buffer[4096];
  size_t got;
  while ((got = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) result.output.append(buffer, got);
  const int status = ::pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

// Whether python3 imports `modules` (a comma-separated list, as an import statement takes them):
// the cross-checks against reference implementations skip, and say so, when it does not.
inline bool python_has(const std::string& modules) {
  return std::system(("python3 -c 'import " + modules + "' >/dev/null 2>&1").c_str()) == 0;
}

inline std::vector<float> random_normal(size_t count, uint32_t seed, float scale = 1.0f) {
  std::mt19937 generator(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> values(count);
  for (float& value : values) value = normal(generator);
  return values;
}

// Where the demo GGUF lands after scripts/fetch_demo_model.sh (empty when absent).
inline std::filesystem::path demo_gguf_path() {
  std::filesystem::path path = std::filesystem::path(HLWQ_SOURCE_DIR) / "models" /
                               "SmolLM2-135M-Instruct.Q4_1.gguf";
  return std::filesystem::exists(path) ? path : std::filesystem::path();
}

// Gemma 3 270M (GGUF Q4_K_M, scripts/fetch_gemma3_model.sh), or empty when absent.
inline std::filesystem::path gemma3_gguf_path() {
  std::filesystem::path path = std::filesystem::path(HLWQ_SOURCE_DIR) / "models" / "gemma-3-270m-q4_k_m.gguf";
  return std::filesystem::exists(path) ? path : std::filesystem::path();
}

}  // namespace hlwq
