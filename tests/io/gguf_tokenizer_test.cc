#include "io/gguf_tokenizer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "test_util.h"

namespace hlwq {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const std::string kSpace = "\xe2\x96\x81";  // U+2581

// Byte-level BPE metadata small enough to check by hand.
json tiny_byte_level_metadata() {
  return {
      {"general.architecture", "llama"},
      {"llama.context_length", 2048},
      {"tokenizer.ggml.model", "gpt2"},
      {"tokenizer.ggml.pre", "qwen2"},
      {"tokenizer.ggml.tokens", {"<|endoftext|>", "a", "b", "ab", "\xc4\xa0", "\xc4\xa0" "ab", "<think>"}},
      {"tokenizer.ggml.token_type", {3, 1, 1, 1, 1, 1, 4}},
      {"tokenizer.ggml.merges", {"a b", "\xc4\xa0 ab"}},
      {"tokenizer.ggml.eos_token_id", 0},
      {"tokenizer.ggml.padding_token_id", 0},
      {"tokenizer.ggml.add_bos_token", false},
      {"tokenizer.chat_template", "{{ messages }}"},
  };
}

// SentencePiece metadata; the scores fix the merge order checked below.
json tiny_sentencepiece_metadata() {
  return {
      {"tokenizer.ggml.model", "llama"},
      {"tokenizer.ggml.tokens",
       {"<unk>", "<s>", "</s>", "<0x41>", kSpace, "a", "b", "ab", kSpace + "ab", "ba", "aa", "aab"}},
      {"tokenizer.ggml.token_type", {2, 3, 3, 6, 1, 1, 1, 1, 1, 1, 1, 1}},
      {"tokenizer.ggml.scores", {0.0, 0.0, 0.0, 0.0, -10.0, -11.0, -12.0, -1.0, -2.0, -3.0, -4.0, -5.0}},
  };
}

void expect_error(const json& metadata, const std::string& expected_part) {
  try {
    gguf_to_hf_tokenizer(metadata, "test.gguf");
    ADD_FAILURE() << "no error, expected one containing: " << expected_part;
  } catch (const Error& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find(expected_part), std::string::npos) << message;
    EXPECT_NE(message.find("test.gguf"), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
}

TEST(GgufTokenizer, ByteLevelStructure) {
  const HfTokenizerFiles files = gguf_to_hf_tokenizer(tiny_byte_level_metadata());
  const json& model = files.tokenizer["model"];
  EXPECT_EQ(model["type"], "BPE");
  EXPECT_EQ(model["vocab"].size(), 7u);
  EXPECT_EQ(model["vocab"]["\xc4\xa0" "ab"], 5);
  EXPECT_EQ(model["vocab"]["<think>"], 6);
  EXPECT_EQ(model["merges"], json({"a b", "\xc4\xa0 ab"}));
  EXPECT_EQ(model["byte_fallback"], false);
  EXPECT_EQ(model["ignore_merges"], false);
  EXPECT_TRUE(model["unk_token"].is_null());
  EXPECT_TRUE(files.tokenizer["normalizer"].is_null());
  EXPECT_TRUE(files.tokenizer["post_processor"].is_null());

  const json& steps = files.tokenizer["pre_tokenizer"]["pretokenizers"];
  ASSERT_EQ(steps.size(), 2u);
  EXPECT_EQ(steps[0]["type"], "Split");
  EXPECT_EQ(steps[0]["behavior"], "Isolated");
  EXPECT_NE(steps[0]["pattern"]["Regex"].get<std::string>().find(R"(\p{N}|)"), std::string::npos);
  EXPECT_EQ(steps[1]["type"], "ByteLevel");
  EXPECT_EQ(steps[1]["use_regex"], false);
  EXPECT_EQ(files.tokenizer["decoder"]["type"], "ByteLevel");

  const json& added = files.tokenizer["added_tokens"];
  ASSERT_EQ(added.size(), 2u);
  EXPECT_EQ(added[0]["id"], 0);
  EXPECT_EQ(added[0]["content"], "<|endoftext|>");
  EXPECT_EQ(added[0]["special"], true);
  EXPECT_EQ(added[0]["normalized"], false);
  EXPECT_EQ(added[1]["id"], 6);
  EXPECT_EQ(added[1]["special"], false);

  const json& config = files.tokenizer_config;
  EXPECT_EQ(config["eos_token"], "<|endoftext|>");
  EXPECT_EQ(config["pad_token"], "<|endoftext|>");
  EXPECT_TRUE(config["bos_token"].is_null());
  EXPECT_TRUE(config["unk_token"].is_null());
  EXPECT_EQ(config["add_bos_token"], false);
  EXPECT_EQ(config["add_eos_token"], false);
  EXPECT_EQ(config["clean_up_tokenization_spaces"], false);
  EXPECT_EQ(config["chat_template"], "{{ messages }}");
  EXPECT_EQ(config["model_max_length"], 2048);
  EXPECT_EQ(config["added_tokens_decoder"]["6"]["content"], "<think>");
  EXPECT_EQ(files.special_tokens_map["eos_token"]["content"], "<|endoftext|>");
  EXPECT_FALSE(files.special_tokens_map.contains("bos_token"));
  EXPECT_NO_THROW(files.tokenizer.dump());
}

TEST(GgufTokenizer, LlamaBpeLooksUpWholePiecesAndAddsBos) {
  json metadata = tiny_byte_level_metadata();
  metadata["tokenizer.ggml.pre"] = "llama-bpe";
  metadata.erase("tokenizer.ggml.add_bos_token");
  metadata["tokenizer.ggml.bos_token_id"] = 3;
  const HfTokenizerFiles files = gguf_to_hf_tokenizer(metadata);
  EXPECT_EQ(files.tokenizer["model"]["ignore_merges"], true);
  EXPECT_EQ(files.tokenizer_config["add_bos_token"], true);
  EXPECT_EQ(files.tokenizer_config["bos_token"], "ab");
  const json& processor = files.tokenizer["post_processor"];
  EXPECT_EQ(processor["type"], "TemplateProcessing");
  EXPECT_EQ(processor["single"][0]["SpecialToken"]["id"], "ab");
  EXPECT_EQ(processor["special_tokens"]["ab"]["ids"], json({3}));
  EXPECT_EQ(processor["pair"].size(), 4u);
}

TEST(GgufTokenizer, SmollmSplitsDigitsFirst) {
  json metadata = tiny_byte_level_metadata();
  metadata["tokenizer.ggml.pre"] = "smollm";
  const json steps = gguf_to_hf_tokenizer(metadata).tokenizer["pre_tokenizer"]["pretokenizers"];
  ASSERT_EQ(steps.size(), 3u);
  EXPECT_EQ(steps[0]["pattern"]["Regex"], R"(\p{N})");
}

TEST(GgufTokenizer, SentencePieceStructure) {
  const HfTokenizerFiles files = gguf_to_hf_tokenizer(tiny_sentencepiece_metadata());
  const json& model = files.tokenizer["model"];
  EXPECT_EQ(model["byte_fallback"], true);
  EXPECT_EQ(model["fuse_unk"], true);
  EXPECT_EQ(model["unk_token"], "<unk>");
  // Highest score first; the two cuts of "aab" tie and the longer left part goes first.
  EXPECT_EQ(model["merges"], json({"a b", kSpace + " ab", "b a", "a a", "aa b", "a ab"}));
  const json& normalizers = files.tokenizer["normalizer"]["normalizers"];
  ASSERT_EQ(normalizers.size(), 2u);
  EXPECT_EQ(normalizers[0]["type"], "Prepend");
  EXPECT_EQ(normalizers[0]["prepend"], kSpace);
  EXPECT_EQ(normalizers[1]["type"], "Replace");
  EXPECT_TRUE(files.tokenizer["pre_tokenizer"].is_null());
  const json& decoders = files.tokenizer["decoder"]["decoders"];
  ASSERT_EQ(decoders.size(), 4u);
  EXPECT_EQ(decoders[1]["type"], "ByteFallback");
  EXPECT_EQ(decoders[3]["type"], "Strip");

  // llama.cpp's defaults for SentencePiece: BOS 1 added, EOS 2, UNK 0.
  EXPECT_EQ(files.tokenizer_config["bos_token"], "<s>");
  EXPECT_EQ(files.tokenizer_config["eos_token"], "</s>");
  EXPECT_EQ(files.tokenizer_config["unk_token"], "<unk>");
  EXPECT_EQ(files.tokenizer_config["add_bos_token"], true);
  EXPECT_EQ(files.tokenizer["post_processor"]["single"][0]["SpecialToken"]["id"], "<s>");
  const json& added = files.tokenizer["added_tokens"];
  ASSERT_EQ(added.size(), 3u);  // unknown and control; byte tokens are plain vocabulary
  for (const json& token : added) EXPECT_EQ(token["special"], true);
}

TEST(GgufTokenizer, SentencePieceWithoutSpacePrefix) {
  json metadata = tiny_sentencepiece_metadata();
  metadata["tokenizer.ggml.add_space_prefix"] = false;
  metadata["tokenizer.ggml.add_bos_token"] = false;
  const HfTokenizerFiles files = gguf_to_hf_tokenizer(metadata);
  EXPECT_EQ(files.tokenizer["normalizer"]["normalizers"].size(), 1u);
  EXPECT_EQ(files.tokenizer["decoder"]["decoders"].size(), 3u);
  EXPECT_TRUE(files.tokenizer["post_processor"].is_null());
}

TEST(GgufTokenizer, EndOfTurnMarkersBecomeSpecialAsInLlamaCpp) {
  json metadata = tiny_byte_level_metadata();
  metadata["tokenizer.ggml.tokens"][5] = "<|im_end|>";  // typed normal (1) in the file
  metadata["tokenizer.ggml.merges"] = {"a b"};
  const HfTokenizerFiles files = gguf_to_hf_tokenizer(metadata);
  const json& added = files.tokenizer["added_tokens"];
  ASSERT_EQ(added.size(), 3u);
  EXPECT_EQ(added[1]["content"], "<|im_end|>");
  EXPECT_EQ(added[1]["special"], true);
}

TEST(GgufTokenizer, RepeatedMergesKeepTheirFirstRank) {
  json metadata = tiny_byte_level_metadata();
  metadata["tokenizer.ggml.merges"] = {"a b", "\xc4\xa0 ab", "a b"};
  EXPECT_EQ(gguf_to_hf_tokenizer(metadata).tokenizer["model"]["merges"].size(), 2u);
}

// llama.cpp cuts a merge at its first space, so only the right part can hold one; "a b" text
// would then be ambiguous and the merges are written as pairs.
TEST(GgufTokenizer, MergesWithSpacesAreWrittenAsPairs) {
  json metadata = tiny_byte_level_metadata();
  metadata["tokenizer.ggml.tokens"][4] = "y z";
  metadata["tokenizer.ggml.tokens"][5] = "ay z";
  metadata["tokenizer.ggml.merges"] = {"a b", "a y z"};
  EXPECT_EQ(gguf_to_hf_tokenizer(metadata).tokenizer["model"]["merges"],
            json::array({json::array({"a", "b"}), json::array({"a", "y z"})}));
}

TEST(GgufTokenizer, RejectsBadMetadata) {
  expect_error(json::object(), "missing tokenizer.ggml.model");
  {
    json metadata = tiny_byte_level_metadata();
    metadata.erase("tokenizer.ggml.tokens");
    expect_error(metadata, "missing tokenizer.ggml.tokens");
  }
  {
    json metadata = tiny_byte_level_metadata();
    metadata["tokenizer.ggml.model"] = "rwkv";
    expect_error(metadata, "unsupported tokenizer model 'rwkv' (supported: gpt2, llama)");
  }
  {
    json metadata = tiny_byte_level_metadata();
    metadata["tokenizer.ggml.pre"] = "no-such-pre";
    expect_error(metadata, "unsupported tokenizer.ggml.pre 'no-such-pre'");
  }
  {
    json metadata = tiny_byte_level_metadata();
    metadata.erase("tokenizer.ggml.merges");
    expect_error(metadata, "missing tokenizer.ggml.merges");
  }
  {
    json metadata = tiny_byte_level_metadata();
    metadata["tokenizer.ggml.merges"] = {"a c"};
    expect_error(metadata, "'c' is not a token");
  }
  {
    json metadata = tiny_byte_level_metadata();
    metadata["tokenizer.ggml.merges"] = {"b a"};
    expect_error(metadata, "makes 'ba', which is not a token");
  }
  {
    json metadata = tiny_byte_level_metadata();
    metadata["tokenizer.ggml.merges"] = {"ab"};
    expect_error(metadata, "is not two tokens separated by a space");
  }
  {
    json metadata = tiny_byte_level_metadata();
    metadata["tokenizer.ggml.token_type"].erase(0);
    expect_error(metadata, "tokenizer.ggml.token_type has 6 entries for 7 tokens");
  }
  {
    json metadata = tiny_byte_level_metadata();
    metadata["tokenizer.ggml.token_type"][2] = 9;
    expect_error(metadata, "tokenizer.ggml.token_type[2] is 9");
  }
  {
    json metadata = tiny_sentencepiece_metadata();
    metadata["tokenizer.ggml.scores"].push_back(-1.0);
    expect_error(metadata, "tokenizer.ggml.scores has 13 entries for 12 tokens");
  }
  {
    json metadata = tiny_sentencepiece_metadata();
    metadata.erase("tokenizer.ggml.scores");
    expect_error(metadata, "missing tokenizer.ggml.scores");
  }
  {
    json metadata = tiny_byte_level_metadata();
    metadata["tokenizer.ggml.eos_token_id"] = 7;
    expect_error(metadata, "tokenizer.ggml.eos_token_id 7 is outside the vocabulary of 7 tokens");
  }
  {
    json metadata = tiny_byte_level_metadata();
    metadata["tokenizer.ggml.bos_token_id"] = -1;
    expect_error(metadata, "tokenizer.ggml.bos_token_id -1 is outside the vocabulary");
  }
  {
    json metadata = tiny_byte_level_metadata();
    metadata["tokenizer.ggml.padding_token_id"] = "zero";
    expect_error(metadata, "tokenizer.ggml.padding_token_id is not an integer");
  }
  {
    json metadata = tiny_byte_level_metadata();
    metadata["tokenizer.ggml.tokens"][2] = "a";
    expect_error(metadata, "token 2 'a' repeats token 1");
  }
  {
    json metadata = tiny_byte_level_metadata();
    metadata["tokenizer.ggml.tokens"][2] = 5;
    expect_error(metadata, "tokenizer.ggml.tokens[2] is not a string");
  }
  {
    json metadata = tiny_byte_level_metadata();
    metadata["tokenizer.ggml.tokens"] = json::array();
    expect_error(metadata, "tokenizer.ggml.tokens is empty");
  }
  {
    json metadata = tiny_byte_level_metadata();
    metadata["tokenizer.ggml.pre"] = "llama-bpe";
    metadata.erase("tokenizer.ggml.add_bos_token");
    expect_error(metadata, "tokenizer.ggml.bos_token_id is missing");
  }
  {
    json metadata = tiny_byte_level_metadata();
    metadata["tokenizer.ggml.add_eos_token"] = true;
    metadata.erase("tokenizer.ggml.eos_token_id");
    expect_error(metadata, "tokenizer.ggml.eos_token_id is missing");
  }
}

TEST(GgufTokenizer, RejectsTextThatIsNotUtf8InsteadOfAlteringIt) {
  // Lone continuation byte, overlong '/', UTF-16 surrogate, past U+10FFFF, truncated sequence.
  for (const std::string bad : {"\x80", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "a\xe2\x96"}) {
    json metadata = tiny_byte_level_metadata();
    metadata["tokenizer.ggml.tokens"][6] = bad;
    expect_error(metadata, "token 6 is not valid UTF-8");
  }
  json metadata = tiny_byte_level_metadata();
  metadata["tokenizer.chat_template"] = std::string("{{ \xff }}");
  expect_error(metadata, "tokenizer.chat_template is not valid UTF-8");
  // The largest code point and a 4-byte emoji are fine, and the result dumps.
  metadata = tiny_byte_level_metadata();
  metadata["tokenizer.ggml.tokens"][6] = "\xf4\x8f\xbf\xbf\xf0\x9f\xa6\x99";
  EXPECT_NO_THROW(gguf_to_hf_tokenizer(metadata).tokenizer.dump());
}

// Any value of any type under any key either converts or raises hlwq::Error (never another
// exception, a crash, or output that cannot be dumped).
TEST(GgufTokenizer, RandomlyDamagedMetadataFailsCleanly) {
  std::mt19937 random(7);
  const std::vector<json> replacements = {
      nullptr, true, -1, 0, 3, 1000000, 4294967295u, 2.5, "", "a", "\xff",
      json::array(), json::array({1, 2}), json::array({"a", "b"}), json::array({nullptr}),
      json::object(), json::array({json::array({"a"})}),
  };
  size_t converted = 0;
  for (int trial = 0; trial < 400; ++trial) {
    json metadata = trial % 2 == 0 ? tiny_byte_level_metadata() : tiny_sentencepiece_metadata();
    std::vector<std::string> keys;
    for (const auto& [key, value] : metadata.items()) keys.push_back(key);
    const std::string key = keys[std::uniform_int_distribution<size_t>(0, keys.size() - 1)(random)];
    const json& replacement = replacements[std::uniform_int_distribution<size_t>(0, replacements.size() - 1)(random)];
    json& target = metadata[key];
    if (target.is_array() && !target.empty() && random() % 2 == 0) {
      target[std::uniform_int_distribution<size_t>(0, target.size() - 1)(random)] = replacement;
    } else {
      target = replacement;
    }
    try {
      const HfTokenizerFiles files = gguf_to_hf_tokenizer(metadata);
      EXPECT_NO_THROW(files.tokenizer.dump());
      EXPECT_NO_THROW(files.tokenizer_config.dump());
      ++converted;
    } catch (const Error&) {
    } catch (const std::exception& other) {
      ADD_FAILURE() << "key " << key << " = " << replacement.dump() << ": " << other.what();
    }
  }
  EXPECT_GT(converted, 0u);
}

TEST(GgufTokenizer, EmptyTokensAreRenamedAsLlamaCppDoes) {
  json metadata = tiny_byte_level_metadata();
  metadata["tokenizer.ggml.tokens"][6] = "";
  EXPECT_EQ(gguf_to_hf_tokenizer(metadata).tokenizer["model"]["vocab"]["[EMPTY_6]"], 6);
}

// --- Merge order: plain reference implementations of both algorithms -------------------------

std::vector<std::string> utf8_characters(const std::string& text) {
  std::vector<std::string> characters;
  for (size_t i = 0; i < text.size();) {
    const auto first = static_cast<unsigned char>(text[i]);
    const size_t length = first < 0x80 ? 1 : first < 0xE0 ? 2 : first < 0xF0 ? 3 : 4;
    characters.push_back(text.substr(i, length));
    i += length;
  }
  return characters;
}

// llama.cpp's SentencePiece BPE: join the adjacent pair whose joined text is the token with the
// highest score, leftmost first on ties, until no pair joins into a token.
std::vector<std::string> sentencepiece_reference(const std::map<std::string, float>& scores,
                                                 const std::string& text) {
  std::vector<std::string> symbols = utf8_characters(text);
  while (true) {
    int best = -1;
    float best_score = 0;
    for (size_t i = 0; i + 1 < symbols.size(); ++i) {
      const auto found = scores.find(symbols[i] + symbols[i + 1]);
      if (found != scores.end() && (best < 0 || found->second > best_score)) {
        best = static_cast<int>(i);
        best_score = found->second;
      }
    }
    if (best < 0) return symbols;
    symbols[best] += symbols[best + 1];
    symbols.erase(symbols.begin() + best + 1);
  }
}

// Hugging Face BPE: join the adjacent pair with the lowest merge rank, leftmost first on ties.
std::vector<std::string> bpe_reference(const std::map<std::pair<std::string, std::string>, size_t>& ranks,
                                       const std::string& text) {
  std::vector<std::string> symbols = utf8_characters(text);
  while (true) {
    int best = -1;
    size_t best_rank = 0;
    for (size_t i = 0; i + 1 < symbols.size(); ++i) {
      const auto found = ranks.find({symbols[i], symbols[i + 1]});
      if (found != ranks.end() && (best < 0 || found->second < best_rank)) {
        best = static_cast<int>(i);
        best_rank = found->second;
      }
    }
    if (best < 0) return symbols;
    symbols[best] += symbols[best + 1];
    symbols.erase(symbols.begin() + best + 1);
  }
}

// Random SentencePiece-like vocabularies (each token the join of two earlier ones, distinct
// scores): the merges rebuilt from scores must make HF's BPE cut text exactly like llama.cpp.
TEST(GgufTokenizer, MergesFromScoresReproduceSentencePieceOrder) {
  const std::vector<std::string> alphabet = {"a", "b", "c", kSpace, "\xc3\xa9"};
  for (uint32_t seed = 1; seed <= 20; ++seed) {
    std::mt19937 random(seed);
    std::vector<std::string> tokens = alphabet;
    while (tokens.size() < 60) {
      std::uniform_int_distribution<size_t> pick(0, tokens.size() - 1);
      std::string joined = tokens[pick(random)] + tokens[pick(random)];
      if (utf8_characters(joined).size() <= 6 &&
          std::find(tokens.begin(), tokens.end(), joined) == tokens.end()) {
        tokens.push_back(joined);
      }
    }
    std::vector<float> scores(tokens.size());
    std::map<std::string, float> score_of;
    for (size_t i = 0; i < tokens.size(); ++i) {
      scores[i] = i < alphabet.size() ? -1000.0f - static_cast<float>(i)
                                      : -std::uniform_real_distribution<float>(0.0f, 100.0f)(random);
      score_of[tokens[i]] = scores[i];
    }
    const json metadata = {{"tokenizer.ggml.model", "llama"}, {"tokenizer.ggml.tokens", tokens},
                           {"tokenizer.ggml.scores", scores}};
    const json merges = gguf_to_hf_tokenizer(metadata).tokenizer["model"]["merges"];
    std::map<std::pair<std::string, std::string>, size_t> ranks;
    for (size_t rank = 0; rank < merges.size(); ++rank) {
      const std::string merge = merges[rank];
      const size_t space = merge.find(' ');
      ranks.emplace(std::make_pair(merge.substr(0, space), merge.substr(space + 1)), rank);
    }
    for (int sample = 0; sample < 200; ++sample) {
      std::string text;
      const int length = std::uniform_int_distribution<int>(1, 24)(random);
      for (int k = 0; k < length; ++k) {
        text += alphabet[std::uniform_int_distribution<size_t>(0, alphabet.size() - 1)(random)];
      }
      ASSERT_EQ(bpe_reference(ranks, text), sentencepiece_reference(score_of, text))
          << "seed " << seed << " text " << text;
    }
  }
}

// --- Cross-checks with Hugging Face `tokenizers` and llama.cpp --------------------------------

CommandResult run_command(const std::string& command) {
  CommandResult result;
  std::FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return result;
  char buffer[4096];
  size_t got;
  while ((got = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) result.output.append(buffer, got);
  const int status = ::pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

std::string shell_quoted(const fs::path& path) { return "'" + path.string() + "'"; }

std::string python_missing(const std::string& modules) {
  const CommandResult result = run_command("python3 -c 'import " + modules + "'");
  return result.exit_code == 0 ? "" : "python3 with " + modules + " is not available";
}

fs::path shared_data() { return fs::path(HLWQ_SOURCE_DIR) / ".." / "shared" / "data"; }
fs::path script(const char* name) { return fs::path(HLWQ_SOURCE_DIR) / "scripts" / name; }
fs::path wikitext() { return shared_data() / "wikitext-2-raw" / "wiki.test.raw"; }

json read_json(const fs::path& path) {
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  return json::parse(text.str());
}

struct RoundTripCase {
  const char* name;  // folder under shared/data/tokenizers
  const char* pre;   // tokenizer.ggml.pre convert_hf_to_gguf.py writes for it
};

class GgufTokenizerRoundTrip : public testing::TestWithParam<RoundTripCase> {};

// HF tokenizer -> GGUF metadata (as llama.cpp's converter writes it) -> our tokenizer.json must
// give the original tokenizer's ids on WikiText-2 test (line by line and whole) and hard strings.
TEST_P(GgufTokenizerRoundTrip, IdsMatchTheOriginalTokenizer) {
  if (const std::string missing = python_missing("tokenizers"); !missing.empty()) GTEST_SKIP() << missing;
  const fs::path original = shared_data() / "tokenizers" / GetParam().name;
  if (!fs::exists(original) || !fs::exists(wikitext())) GTEST_SKIP() << "no shared data at " << shared_data();
  TemporaryFolder folder;
  const fs::path metadata_path = folder.path() / "metadata.json";
  const CommandResult made = run_command("python3 " + shell_quoted(script("tokenizer_gguf_metadata.py")) + " hf " +
                                         shell_quoted(original) + " --pre " + GetParam().pre + " " +
                                         shell_quoted(metadata_path));
  ASSERT_EQ(made.exit_code, 0) << made.output;
  const fs::path output = folder.path() / "hf";
  fs::create_directory(output);
  write_hf_tokenizer_files(gguf_to_hf_tokenizer(read_json(metadata_path)), output);
  const CommandResult checked = run_command("python3 " + shell_quoted(script("check_tokenizer.py")) + " compare " +
                                            shell_quoted(output) + " " + shell_quoted(original) + " --text " +
                                            shell_quoted(wikitext()) + " --whole-bytes 300000");
  EXPECT_EQ(checked.exit_code, 0) << checked.output;
  std::printf("%s: %s", GetParam().name, checked.output.c_str());
}

INSTANTIATE_TEST_SUITE_P(SharedTokenizers, GgufTokenizerRoundTrip,
                         testing::Values(RoundTripCase{"qwen3", "qwen2"}, RoundTripCase{"llama3", "llama-bpe"},
                                         RoundTripCase{"llama2", "default"}, RoundTripCase{"gpt2", "gpt-2"}),
                         [](const testing::TestParamInfo<RoundTripCase>& info) { return std::string(info.param.name); });

// The demo GGUF's own tokenizer, converted, must give llama.cpp's ids on the whole WikiText-2
// test split, its first 600 lines and the hard strings (with and without special-token
// parsing), and transformers' AutoTokenizer must load the folder and agree. The fixture was made
// with llama-cpp-python 0.3.36 (vocab only):
//   python3 scripts/check_tokenizer.py make-fixture models/SmolLM2-135M-Instruct.Q4_1.gguf
//       tests/fixtures/smollm2_llama_cpp_tokens.json.xz --text ../shared/data/wikitext-2-raw/wiki.test.raw
TEST(GgufTokenizerDemo, IdsMatchLlamaCpp) {
  if (const std::string missing = python_missing("tokenizers, gguf"); !missing.empty()) GTEST_SKIP() << missing;
  const fs::path model = demo_gguf_path();
  if (model.empty()) GTEST_SKIP() << "demo model not downloaded (scripts/fetch_demo_model.sh)";
  if (!fs::exists(wikitext())) GTEST_SKIP() << "no shared data at " << shared_data();
  const fs::path fixture = fs::path(HLWQ_SOURCE_DIR) / "tests" / "fixtures" / "smollm2_llama_cpp_tokens.json.xz";
  TemporaryFolder folder;
  const fs::path metadata_path = folder.path() / "metadata.json";
  const CommandResult made = run_command("python3 " + shell_quoted(script("tokenizer_gguf_metadata.py")) + " gguf " +
                                         shell_quoted(model) + " " + shell_quoted(metadata_path));
  ASSERT_EQ(made.exit_code, 0) << made.output;
  const fs::path output = folder.path() / "hf";
  fs::create_directory(output);
  write_hf_tokenizer_files(gguf_to_hf_tokenizer(read_json(metadata_path), model.filename().string()), output);
  const json config = read_json(output / "tokenizer_config.json");
  EXPECT_EQ(config["eos_token"], "<|im_end|>");
  EXPECT_EQ(config["model_max_length"], 8192);
  EXPECT_NE(config["chat_template"].get<std::string>().find("<|im_start|>"), std::string::npos);
  const CommandResult checked = run_command("python3 " + shell_quoted(script("check_tokenizer.py")) + " fixture " +
                                            shell_quoted(output) + " " + shell_quoted(fixture) + " --text " +
                                            shell_quoted(wikitext()) + " --transformers");
  EXPECT_EQ(checked.exit_code, 0) << checked.output;
  std::printf("%s", checked.output.c_str());
}

// Any GGUF files listed (colon-separated) in HLWQ_LLAMA_CPP_VOCABS, e.g. llama.cpp's
// models/ggml-vocab-*.gguf, checked against llama.cpp run now (llama-cpp-python) on the first
// 200 KB of WikiText-2 test, its first lines and the hard strings. Off unless asked for: it
// needs llama.cpp built and files that are not part of this project.
TEST(GgufTokenizerLlamaCpp, ListedVocabularies) {
  const char* listed = std::getenv("HLWQ_LLAMA_CPP_VOCABS");
  if (listed == nullptr || *listed == '\0') GTEST_SKIP() << "HLWQ_LLAMA_CPP_VOCABS is not set";
  if (const std::string missing = python_missing("tokenizers, gguf, llama_cpp"); !missing.empty()) {
    GTEST_SKIP() << missing;
  }
  if (!fs::exists(wikitext())) GTEST_SKIP() << "no shared data at " << shared_data();
  std::stringstream paths(listed);
  std::string path;
  while (std::getline(paths, path, ':')) {
    SCOPED_TRACE(path);
    TemporaryFolder folder;
    const fs::path metadata_path = folder.path() / "metadata.json";
    const CommandResult made = run_command("python3 " + shell_quoted(script("tokenizer_gguf_metadata.py")) + " gguf " +
                                           shell_quoted(path) + " " + shell_quoted(metadata_path));
    ASSERT_EQ(made.exit_code, 0) << made.output;
    const fs::path output = folder.path() / "hf";
    fs::create_directory(output);
    try {
      write_hf_tokenizer_files(gguf_to_hf_tokenizer(read_json(metadata_path), path), output);
    } catch (const Error& error) {
      std::printf("%s: not converted: %s\n", path.c_str(), error.what());
      continue;
    }
    const CommandResult checked = run_command("python3 " + shell_quoted(script("check_tokenizer.py")) + " live " +
                                              shell_quoted(output) + " " + shell_quoted(path) + " --text " +
                                              shell_quoted(wikitext()) + " --text-bytes 200000");
    EXPECT_EQ(checked.exit_code, 0) << checked.output;
    std::printf("%s: %s", path.c_str(), checked.output.c_str());
  }
}

}  // namespace
}  // namespace hlwq
