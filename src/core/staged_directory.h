// Output folders are written to a temporary sibling and renamed into place at the end, so a
// failure, a full disk or Ctrl-C never leaves a half-written model where the user asked for one.
#pragma once

#include <filesystem>

namespace hlwq {

class StagedDirectory {
 public:
  // Fails (hlwq::Error) if `final_path` exists or its parent folder does not.
  explicit StagedDirectory(std::filesystem::path final_path);
  ~StagedDirectory();  // removes the temporary folder unless commit() succeeded
  StagedDirectory(const StagedDirectory&) = delete;
  StagedDirectory& operator=(const StagedDirectory&) = delete;

  // Where to write the files now.
  const std::filesystem::path& path() const { return staging_path_; }
  const std::filesystem::path& final_path() const { return final_path_; }

  // Atomically renames the staging folder to the final path.
  void commit();

 private:
  std::filesystem::path final_path_;
  std::filesystem::path staging_path_;
  bool committed_ = false;
};

}  // namespace hlwq
