// llama.cpp's own tokenizer test suite (models/ggml-vocab-*.gguf with .inp strings and the .out
// ids llama.cpp produced, fetched by scripts/fetch_llama_cpp_vocab_suite.sh): hlwq must give
// llama.cpp's ids for every string of every BPE and SentencePiece vocabulary. Vocabularies of a
// tokenizer model hlwq does not have are listed as such, not counted as passed.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "core/error.h"
#include "io/gguf.h"
#include "tokenizer/tokenizer.h"

namespace hlwq {
namespace {

namespace fs = std::filesystem;

fs::path suite_folder() {
  if (const char* folder = std::getenv("HLWQ_LLAMA_CPP_VOCAB_DIR"); folder != nullptr && *folder != '\0') return folder;
  return fs::path(HLWQ_SOURCE_DIR) / "models" / "llama-cpp-vocab";
}

std::string read_file(const fs::path& path) {
  std::ifstream stream(path, std::ios::binary);
  std::ostringstream contents;
  contents << stream.rdbuf();
  return contents.str();
}

// The .inp file: strings separated by "\n__ggml_vocab_test__\n"; the last runs to the end.
std::vector<std::string> read_strings(const fs::path& path) {
  const std::string text = read_file(path);
  const std::string separator = "\n__ggml_vocab_test__\n";
  std::vector<std::string> strings;
  for (size_t position = 0; position < text.size();) {
    const size_t next = text.find(separator, position);
    if (next == std::string::npos) {
      strings.push_back(text.substr(position));
      break;
    }
    strings.push_back(text.substr(position, next - position));
    position = next + separator.size();
  }
  return strings;
}

// The .out file: one line of space-separated ids per string.
std::vector<std::vector<int32_t>> read_ids(const fs::path& path) {
  std::ifstream stream(path);
  std::vector<std::vector<int32_t>> all;
  for (std::string line; std::getline(stream, line);) {
    std::istringstream numbers(line);
    std::vector<int32_t> ids;
    for (int64_t id; numbers >> id;) ids.push_back(static_cast<int32_t>(id));
    all.push_back(std::move(ids));
  }
  return all;
}

std::string metadata_string(const nlohmann::json& metadata, const char* key) {
  const auto found = metadata.find(key);
  return found != metadata.end() && found->is_string() ? found->get<std::string>() : "";
}

TEST(LlamaCppVocabSuite, EveryBpeAndSentencePieceVocabularyMatches) {
  const fs::path folder = suite_folder();
  if (!fs::is_directory(folder)) {
    GTEST_SKIP() << "llama.cpp's vocabulary suite is not at " << folder.string()
                 << " (scripts/fetch_llama_cpp_vocab_suite.sh fetches it)";
  }
  std::vector<fs::path> models;
  for (const auto& entry : fs::directory_iterator(folder)) {
    const std::string name = entry.path().filename().string();
    if (name.starts_with("ggml-vocab-") && name.ends_with(".gguf")) models.push_back(entry.path());
  }
  std::sort(models.begin(), models.end());
  ASSERT_FALSE(models.empty()) << "no ggml-vocab-*.gguf in " << folder.string();

  std::set<std::string> passed;
  size_t failed = 0, unsupported = 0, strings_checked = 0;
  for (const fs::path& model : models) {
    const std::string name = model.filename().string();
    const fs::path inputs = fs::path(model.string() + ".inp"), outputs = fs::path(model.string() + ".out");
    const nlohmann::json metadata = GgufFile::open(model).metadata();
    const std::string tokenizer_model = metadata_string(metadata, "tokenizer.ggml.model");
    const std::string pre = metadata_string(metadata, "tokenizer.ggml.pre");
    const std::string label = name + " (" + tokenizer_model + (pre.empty() ? "" : ", " + pre) + ")";
    if (!fs::exists(inputs) || !fs::exists(outputs)) {
      std::printf("%-50s no test strings in the suite\n", label.c_str());
      continue;
    }
    if (tokenizer_model != "gpt2" && tokenizer_model != "llama") {
      std::printf("%-50s UNSUPPORTED tokenizer model '%s' (not counted)\n", label.c_str(), tokenizer_model.c_str());
      ++unsupported;
      continue;
    }
    const std::vector<std::string> strings = read_strings(inputs);
    const std::vector<std::vector<int32_t>> expected = read_ids(outputs);
    ASSERT_EQ(strings.size(), expected.size()) << name << ": .inp and .out disagree on the number of strings";
    size_t same = 0;
    std::string first_failure;
    try {
      const Tokenizer tokenizer = Tokenizer::from_file(model);
      for (size_t i = 0; i < strings.size(); ++i) {
        const std::vector<int32_t> ids = tokenizer.encode(strings[i]);
        EXPECT_EQ(ids, expected[i]) << name << ": " << testing::PrintToString(strings[i]);
        if (ids == expected[i]) {
          ++same;
        } else if (first_failure.empty()) {
          first_failure = testing::PrintToString(strings[i]);
        }
      }
    } catch (const Error& error) {
      ADD_FAILURE() << name << ": " << error.what();
      first_failure = error.what();
    }
    strings_checked += strings.size();
    if (same == strings.size()) {
      passed.insert(name);
      std::printf("%-50s PASSED %zu/%zu strings\n", label.c_str(), same, strings.size());
    } else {
      ++failed;
      std::printf("%-50s FAILED %zu/%zu strings (first: %s)\n", label.c_str(), same, strings.size(),
                  first_failure.c_str());
    }
  }
  std::printf("llama.cpp vocabulary suite: %zu passed, %zu failed, %zu unsupported tokenizer models; %zu strings\n",
              passed.size(), failed, unsupported, strings_checked);
  // The vocabularies the pre-tokenizer work is about must be among those checked.
  for (const char* required : {"ggml-vocab-qwen35.gguf", "ggml-vocab-deepseek-coder.gguf", "ggml-vocab-deepseek-llm.gguf",
                               "ggml-vocab-falcon.gguf", "ggml-vocab-llama-bpe.gguf", "ggml-vocab-llama-spm.gguf"}) {
    EXPECT_TRUE(passed.count(required) != 0) << required << " did not pass (or is missing from " << folder.string() << ")";
  }
  EXPECT_EQ(failed, 0u);
}

}  // namespace
}  // namespace hlwq
