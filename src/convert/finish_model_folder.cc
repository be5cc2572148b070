#include "convert/finish_model_folder.h"

#include <system_error>

#include "core/error.h"
#include "core/file_writer.h"

namespace hlwq {

namespace fs = std::filesystem;

uint64_t finish_model_folder(StagedDirectory& staged, const nlohmann::json& config,
                             std::span<const fs::path> auxiliary_files) {
  write_text_file(staged.path() / "config.json", config.dump(2) + "\n");
  for (const fs::path& file : auxiliary_files) {
    std::error_code error;
    fs::copy_file(file, staged.path() / file.filename(), error);
    if (error) fail("cannot copy ", file.string(), ": ", error.message());
  }
  uint64_t bytes = 0;
  for (const auto& entry : fs::directory_iterator(staged.path())) bytes += entry.file_size();
  staged.commit();
  return bytes;
}

}  // namespace hlwq
