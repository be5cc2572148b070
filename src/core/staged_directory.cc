#include "core/staged_directory.h"

#include <unistd.h>

#include <system_error>

#include "core/error.h"

namespace hlwq {

namespace fs = std::filesystem;

StagedDirectory::StagedDirectory(fs::path final_path) : final_path_(std::move(final_path)) {
  if (final_path_.has_filename() == false) final_path_ = final_path_.parent_path();
  std::error_code error;
  if (fs::exists(fs::symlink_status(final_path_, error)))
    fail("output path exists (remove it or choose another), ", final_path_.string());
  fs::path parent = final_path_.parent_path();
  if (parent.empty()) parent = ".";
  if (!fs::is_directory(parent, error))
    fail("output folder's parent does not exist, ", parent.string());
  staging_path_ = parent / concat(".", final_path_.filename().string(), ".partial-", ::getpid());
  fs::remove_all(staging_path_, error);
  if (!fs::create_directory(staging_path_, error))
    fail("cannot create output folder: ", error.message(), ", ", staging_path_.string());
}

StagedDirectory::~StagedDirectory() {
  if (!committed_) {
    std::error_code ignored;
    fs::remove_all(staging_path_, ignored);
  }
}

void StagedDirectory::commit() {
  std::error_code error;
  if (fs::exists(fs::symlink_status(final_path_, error)))
    fail("output path appeared while writing, ", final_path_.string());
  fs::rename(staging_path_, final_path_, error);
  if (error) fail("cannot move output into place: ", error.message(), ", ", final_path_.string());
  committed_ = true;
}

}  // namespace hlwq
