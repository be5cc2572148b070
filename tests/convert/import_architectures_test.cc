// Cross-checks `hlwq import` on tiny llama / qwen2 / qwen3 GGUFs (scripts/make_tiny_gguf.py)
// through scripts/check_import_architectures.py: the imported folder must equal the model each GGUF
// was written from (weights, config, logits), transformers' own GGUF loader where it handles the
// file, and mlx_lm's logits when mlx_lm is installed. Skipped (with the reason) without python3 +
// torch, transformers, accelerate and gguf.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>

#include "test_util.h"

namespace hlwq {
namespace {

TEST(ImportArchitectures, MatchesTransformersAndTheSourceModel) {
  if (!python_has("torch, transformers, accelerate, gguf, numpy"))
    GTEST_SKIP() << "python3 with torch, transformers, accelerate, gguf and numpy not available";
  TemporaryFolder folder;
  const std::string log = (folder.path() / "check.log").string();
  const std::string command = std::string("python3 ") + HLWQ_SOURCE_DIR +
                              "/scripts/check_import_architectures.py --hlwq " + HLWQ_BINARY + " > " + log +
                              " 2>&1";
  const int status = std::system(command.c_str());
  std::ifstream stream(log);
  const std::string text((std::istreambuf_iterator<char>(stream)), {});
  EXPECT_EQ(status, 0) << text;
  // Every supported architecture was checked against both references.
  for (const char* line : {"llama              vs truth          ok", "qwen2              vs truth          ok",
                           "qwen3              vs truth          ok", "llama              transformers GGUF ok",
                           "qwen2              transformers GGUF ok", "qwen3              transformers GGUF ok"}) {
    EXPECT_NE(text.find(line), std::string::npos) << "no '" << line << "' in:\n" << text;
  }
  EXPECT_NE(text.find(", 0 failed checks"), std::string::npos) << text;
}

}  // namespace
}  // namespace hlwq
