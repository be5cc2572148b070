// Runs scripts/check_qwen35_export.py, the reference loaders' (transformers, mlx-lm) check of a
// Qwen3.5 export, for the tests that cross-check exports.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

namespace hlwq {

// Runs the script with `arguments`; returns its exit status, and its output in `log`.
inline int check_qwen35_export(const std::string& arguments, const std::filesystem::path& log_path, std::string& log) {
  const std::string command = "python3 " + std::string(HLWQ_SOURCE_DIR) + "/scripts/check_qwen35_export.py " +
                              arguments + " > " + log_path.string() + " 2>&1";
  const int status = std::system(command.c_str());
  std::ifstream file(log_path);
  log.assign(std::istreambuf_iterator<char>(file), {});
  return status;
}

}  // namespace hlwq
