// config.json and tokenizer.json that are broken or hostile, given to the commands that read
// them (`hlwq run`, `hlwq tokenize`): one error line naming the file, exit status 1.
#include <gtest/gtest.h>

#include <fstream>

#include "core/file_writer.h"
#include "engine/engine_fixture.h"
#include "test_util.h"

namespace hlwq {
namespace {

namespace fs = std::filesystem;

size_t line_count(const std::string& text) { return std::count(text.begin(), text.end(), '\n'); }

void expect_one_line_error(const CommandResult& result, const std::string& expected, const std::string& context) {
  EXPECT_EQ(result.exit_code, 1) << context << ": " << result.output;
  EXPECT_EQ(result.output.rfind("hlwq: error: ", 0), 0u) << context << ": " << result.output;
  EXPECT_EQ(line_count(result.output), 1u) << context << ": " << result.output;
  EXPECT_NE(result.output.find(expected), std::string::npos) << context << ": " << result.output;
}

// The tiny llama fixture (hidden 64, 4 heads of 16, vocab 160) with one config.json key changed.
TEST(HostileInputs, ConfigSizesThatAreMissingNegativeZeroOrAbsurd) {
  TemporaryFolder folder;
  const fs::path model = folder.path() / "llama";
  fs::copy(engine_fixture("llama"), model);
  const nlohmann::json original = nlohmann::json::parse(std::ifstream(model / "config.json"));
  const std::string config_path = (model / "config.json").string();
  struct Case {
    const char* key;
    nlohmann::json value;  // null: the key removed
  };
  const std::vector<Case> cases = {
      {"hidden_size", nullptr},
      {"hidden_size", -64},
      {"hidden_size", 0},
      {"hidden_size", int64_t{1} << 40},
      {"num_attention_heads", 0},
      {"num_attention_heads", 3},          // heads that do not divide the kv heads (and hidden)
      {"num_key_value_heads", 3},
      {"num_hidden_layers", -2},
      {"num_hidden_layers", int64_t{1} << 40},
      {"intermediate_size", 0},
      {"vocab_size", int64_t{1} << 40},    // the embedding holds 160 rows
      {"vocab_size", -1},
      {"vocab_size", "160"},
      {"head_dim", 0},
      {"head_dim", int64_t{1} << 40},
      {"max_position_embeddings", -1},
      {"max_position_embeddings", int64_t{1} << 62},
  };
  for (const Case& change : cases) {
    nlohmann::json config = original;
    if (change.value.is_null()) {
      config.erase(change.key);
    } else {
      config[change.key] = change.value;
    }
    write_text_file(model / "config.json", config.dump());
    const std::string context = std::string(change.key) + " = " + change.value.dump();
    const CommandResult result = run_hlwq("run -m " + model.string() + " --ids 1,2,3 -n 2 --threads 2");
    expect_one_line_error(result, model.string(), context);
  }
  write_text_file(model / "config.json", original.dump());
  EXPECT_EQ(run_hlwq("run -m " + model.string() + " --ids 1,2,3 -n 2 --threads 2").exit_code, 0);
}

TEST(HostileInputs, TokenizersWithUnknownModelTypesOrBrokenMerges) {
  TemporaryFolder folder;
  const fs::path file = folder.path() / "tokenizer.json";
  const std::vector<std::string> tokenizers = {
      R"({"model": {"type": "Unigram", "vocab": [["a", 0.0]]}})",
      R"({"model": {"type": "WordLevel", "vocab": {"a": 0}}})",
      R"({"model": {"type": 42}})",
      R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a"]}})",            // one piece
      R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a b c"]}})",        // three pieces
      R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": [["a"]]}})",
      R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": [7]}})",
      R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": {"a": "b"}}})",
      R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["x y"]}})",          // pieces not in vocab
      R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a b"]}})",          // merge result not in vocab
      R"({"model": {"type": "BPE", "vocab": {"a": -1}, "merges": []}})",
      R"({"model": {"type": "BPE", "vocab": {"a": 4294967296}, "merges": []}})",
      R"({"model": {"type": "BPE", "vocab": "a", "merges": []}})",
  };
  for (const std::string& text : tokenizers) {
    write_text_file(file, text);
    expect_one_line_error(run_hlwq("tokenize --tokenizer " + file.string() + " -p 'ab ba'"), file.string(), text);
  }
}

}  // namespace
}  // namespace hlwq
