#include "core/staged_directory.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "core/error.h"
#include "core/file_writer.h"
#include "test_util.h"

namespace hlwq {
namespace {

namespace fs = std::filesystem;

TEST(StagedDirectory, CommitMovesIntoPlace) {
  TemporaryFolder folder;
  const fs::path target = folder.path() / "model";
  {
    StagedDirectory staged(target);
    write_text_file(staged.path() / "config.json", "{}");
    EXPECT_FALSE(fs::exists(target));
    staged.commit();
  }
  EXPECT_TRUE(fs::exists(target / "config.json"));
  EXPECT_EQ(count_entries(folder.path()), 1u);
}

TEST(StagedDirectory, FailureLeavesNothing) {
  TemporaryFolder folder;
  const fs::path target = folder.path() / "model";
  try {
    StagedDirectory staged(target);
    write_text_file(staged.path() / "half.bin", "x");
    throw Error("simulated failure");
  } catch (const Error&) {
  }
  EXPECT_FALSE(fs::exists(target));
  EXPECT_EQ(count_entries(folder.path()), 0u);
}

TEST(StagedDirectory, RefusesExistingOutput) {
  TemporaryFolder folder;
  fs::create_directory(folder.path() / "model");
  EXPECT_THROW(StagedDirectory(folder.path() / "model"), Error);
  EXPECT_THROW(StagedDirectory(folder.path() / "missing" / "model"), Error);
}

TEST(FileWriter, FullDiskIsAnError) {
  if (!fs::exists("/dev/full")) GTEST_SKIP() << "/dev/full not available";
  FileWriter writer("/dev/full");
  std::vector<std::byte> block(1 << 20);
  EXPECT_THROW({
    writer.write(block);
    writer.close();
  }, Error);
}

}  // namespace
}  // namespace hlwq
