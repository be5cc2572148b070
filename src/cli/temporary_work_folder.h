// A temporary folder for a command's scratch files, removed when the command ends (also on error).
#pragma once

#include <unistd.h>

#include <filesystem>
#include <string>

#include "core/error.h"

namespace hlwq::cli {

class TemporaryWorkFolder {
 public:
  TemporaryWorkFolder() {
    std::string pattern = (std::filesystem::temp_directory_path() / "hlwq-work-XXXXXX").string();
    check(::mkdtemp(pattern.data()) != nullptr, "cannot create a temporary folder in ",
          std::filesystem::temp_directory_path().string());
    path_ = pattern;
  }
  ~TemporaryWorkFolder() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TemporaryWorkFolder(const TemporaryWorkFolder&) = delete;
  TemporaryWorkFolder& operator=(const TemporaryWorkFolder&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace hlwq::cli
