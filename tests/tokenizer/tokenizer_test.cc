// Tokenizer against Hugging Face `tokenizers` (fixtures from scripts/make_tokenizer_fixtures.py)
// on the whole WikiText-2 test split and hard strings, against llama.cpp for the demo GGUF's
// tokenizer, plus decoding, streaming and error cases.
#include "tokenizer/tokenizer.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>

#include "core/error.h"
#include "io/gguf.h"
#include "io/gguf_tokenizer.h"
#include "test_util.h"
#include "tokenizer/unicode.h"

namespace hlwq {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

fs::path shared_data() { return fs::path(HLWQ_SOURCE_DIR) / ".." / "shared" / "data"; }
fs::path wikitext() { return shared_data() / "wikitext-2-raw" / "wiki.test.raw"; }
fs::path fixture_path(const std::string& name) { return fs::path(HLWQ_SOURCE_DIR) / "tests" / "fixtures" / name; }

std::string read_bytes(const fs::path& path) {
  std::ifstream stream(path, std::ios::binary);
  std::ostringstream contents;
  contents << stream.rdbuf();
  return contents.str();
}

// Fixtures are xz-compressed JSON; the xz tool unpacks them (no library dependency for tests).
json read_xz_json(const fs::path& path) {
  std::FILE* pipe = ::popen(("xz -dc '" + path.string() + "'").c_str(), "r");
  EXPECT_NE(pipe, nullptr);
  std::string text;
  char buffer[65536];
  for (size_t got; (got = std::fread(buffer, 1, sizeof buffer, pipe)) > 0;) text.append(buffer, got);
  EXPECT_EQ(::pclose(pipe), 0) << path;
  return json::parse(text);
}

// FNV-1a 64 of the ids as little-endian uint32, as the fixture script computes it.
std::string ids_fnv1a64(const std::vector<int32_t>& ids) {
  uint64_t value = 0xCBF29CE484222325ull;
  for (const int32_t id : ids) {
    for (int shift = 0; shift < 32; shift += 8) {
      value = (value ^ ((static_cast<uint32_t>(id) >> shift) & 0xFF)) * 0x100000001B3ull;
    }
  }
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(value));
  return text;
}

// Bytes of the valid UTF-8 character at `position`, 0 for an invalid or cut one.
size_t valid_character_length(std::string_view text, size_t position) {
  const DecodedCodePoint decoded = decode_utf8(text, position);
  return decoded.length == 1 && static_cast<unsigned char>(text[position]) >= 0x80 ? 0 : decoded.length;
}

// Index of the first difference, for readable failures.
size_t first_difference(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  size_t i = 0;
  while (i < a.size() && i < b.size() && a[i] == b[i]) ++i;
  return i;
}

class TokenizerMatchesHuggingFace : public testing::TestWithParam<const char*> {};

TEST_P(TokenizerMatchesHuggingFace, WikiTextAndHardStrings) {
  const std::string name = GetParam();
  const fs::path folder = shared_data() / "tokenizers" / name;
  if (!fs::exists(folder) || !fs::exists(wikitext())) GTEST_SKIP() << "no shared data at " << shared_data();
  const json fixture = read_xz_json(fixture_path("tokenizer/" + name + "_ids.json.xz"));
  const Tokenizer tokenizer = Tokenizer::from_folder(folder);
  const std::string text = read_bytes(wikitext());
  ASSERT_EQ(text.size(), fixture["text_bytes"].get<size_t>());

  const auto prefix_expected = fixture["prefix_ids"].get<std::vector<int32_t>>();
  const std::vector<int32_t> prefix = tokenizer.encode(std::string_view(text).substr(0, fixture["prefix_bytes"]));
  const size_t at = first_difference(prefix, prefix_expected);
  EXPECT_EQ(prefix, prefix_expected) << name << ": first difference at token " << at;

  const std::vector<int32_t> whole = tokenizer.encode(text);
  EXPECT_EQ(whole.size(), fixture["whole_count"].get<size_t>()) << name;
  EXPECT_EQ(ids_fnv1a64(whole), fixture["whole_fnv1a64"].get<std::string>()) << name;

  size_t checked = 0;
  for (const json& entry : fixture["strings"]) {
    const std::string string = entry["text"];
    const auto expected = entry["ids"].get<std::vector<int32_t>>();
    const std::vector<int32_t> ids = tokenizer.encode(string);
    EXPECT_EQ(ids, expected) << name << ": " << json(string).dump();
    EXPECT_EQ(tokenizer.decode(ids), entry["decoded"].get<std::string>()) << name << ": " << json(string).dump();
    ++checked;
  }
  EXPECT_GE(checked, 70u);
  std::printf("%s: %zu tokens for %zu bytes identical to HF tokenizers; %zu hard strings\n", name.c_str(),
              whole.size(), text.size(), checked);
}

INSTANTIATE_TEST_SUITE_P(SharedTokenizers, TokenizerMatchesHuggingFace,
                         testing::Values("qwen3", "llama3", "llama2", "gpt2"));

TEST(TokenizerSpecialTokens, BosAndEndOfGeneration) {
  const fs::path data = shared_data() / "tokenizers";
  if (!fs::exists(data)) GTEST_SKIP() << "no shared data at " << shared_data();
  const Tokenizer llama2 = Tokenizer::from_folder(data / "llama2");
  const json fixture = read_xz_json(fixture_path("tokenizer/llama2_ids.json.xz"));
  EXPECT_TRUE(llama2.adds_bos_by_default());
  EXPECT_EQ(llama2.encode("Hello world", true), fixture["with_special"].get<std::vector<int32_t>>());
  EXPECT_EQ(llama2.bos_id(), 1);
  EXPECT_EQ(llama2.eos_id(), 2);
  EXPECT_TRUE(llama2.is_end_of_generation(2));
  EXPECT_FALSE(llama2.is_end_of_generation(1));

  const Tokenizer qwen3 = Tokenizer::from_folder(data / "qwen3");
  EXPECT_FALSE(qwen3.bos_id().has_value());
  EXPECT_FALSE(qwen3.adds_bos_by_default());
  EXPECT_EQ(qwen3.encode("hi", true), qwen3.encode("hi", false));
  EXPECT_EQ(qwen3.eos_id(), 151645);
  EXPECT_TRUE(qwen3.is_end_of_generation(151645));  // <|im_end|>
  EXPECT_TRUE(qwen3.is_end_of_generation(151643));  // <|endoftext|>
  EXPECT_FALSE(qwen3.is_end_of_generation(151644));
  EXPECT_EQ(qwen3.vocab_size(), 151669);

  const Tokenizer llama3 = Tokenizer::from_folder(data / "llama3");
  EXPECT_EQ(llama3.bos_id(), 128000);
  EXPECT_EQ(llama3.encode("x", true).front(), 128000);
  EXPECT_TRUE(llama3.is_end_of_generation(*llama3.added_token_id("<|eot_id|>")));
  EXPECT_TRUE(llama3.is_end_of_generation(128001));
}

// The demo GGUF's vocabulary, converted in C++, must give llama.cpp's ids (fixture made by
// scripts/check_tokenizer.py make-fixture) on the whole WikiText-2 test split, its first lines
// and the hard strings parsed with special tokens.
TEST(TokenizerDemoGguf, IdsMatchLlamaCpp) {
  const fs::path model = demo_gguf_path();
  if (model.empty()) GTEST_SKIP() << "demo model not downloaded (scripts/fetch_demo_model.sh)";
  if (!fs::exists(wikitext())) GTEST_SKIP() << "no shared data at " << shared_data();
  const json fixture = read_xz_json(fixture_path("smollm2_llama_cpp_tokens.json.xz"));
  const Tokenizer tokenizer = Tokenizer::from_file(model);
  const auto unpack = [](const std::string& base64) {
    // Standard base64 of little-endian uint32 ids.
    std::vector<uint8_t> bytes;
    uint32_t buffer = 0;
    int bits = 0;
    for (const char c : base64) {
      int value = -1;
      if (c >= 'A' && c <= 'Z') value = c - 'A';
      else if (c >= 'a' && c <= 'z') value = c - 'a' + 26;
      else if (c >= '0' && c <= '9') value = c - '0' + 52;
      else if (c == '+') value = 62;
      else if (c == '/') value = 63;
      if (value < 0) continue;
      buffer = (buffer << 6) | static_cast<uint32_t>(value);
      bits += 6;
      if (bits >= 8) {
        bits -= 8;
        bytes.push_back(static_cast<uint8_t>(buffer >> bits));
      }
    }
    std::vector<int32_t> ids(bytes.size() / 4);
    for (size_t i = 0; i < ids.size(); ++i) {
      ids[i] = static_cast<int32_t>(bytes[4 * i] | (bytes[4 * i + 1] << 8) | (bytes[4 * i + 2] << 16) |
                                    (static_cast<uint32_t>(bytes[4 * i + 3]) << 24));
    }
    return ids;
  };
  const std::string text = read_bytes(wikitext());
  ASSERT_EQ(text.size(), fixture["text_bytes"].get<size_t>());
  const std::vector<int32_t> expected = unpack(fixture["whole_text_ids"]);
  const std::vector<int32_t> whole = tokenizer.encode(text);
  EXPECT_EQ(whole.size(), expected.size());
  EXPECT_TRUE(whole == expected) << "first difference at token " << first_difference(whole, expected);

  std::istringstream lines(text);
  std::string line;
  size_t line_count = 0;
  for (const json& packed : fixture["line_ids"]) {
    ASSERT_TRUE(std::getline(lines, line));
    if (!lines.eof()) line += '\n';  // the fixture's lines keep their ends
    EXPECT_EQ(tokenizer.encode(line), unpack(packed)) << "line " << line_count;
    ++line_count;
  }
  size_t string_count = 0;
  for (const json& entry : fixture["strings"]) {
    if (!entry["special"].get<bool>()) continue;  // encode always parses special tokens
    EXPECT_EQ(tokenizer.encode(entry["text"].get<std::string>()), entry["ids"].get<std::vector<int32_t>>())
        << json(entry["text"]).dump();
    ++string_count;
  }
  const json& with_bos = fixture["with_bos"];
  EXPECT_EQ(tokenizer.encode(with_bos["text"].get<std::string>(), tokenizer.adds_bos_by_default()),
            with_bos["ids"].get<std::vector<int32_t>>());
  EXPECT_TRUE(tokenizer.is_end_of_generation(*tokenizer.added_token_id("<|im_end|>")));
  std::printf("demo GGUF: %zu tokens identical to llama.cpp; %zu lines, %zu strings\n", whole.size(), line_count,
              string_count);
}

// Qwen3.5's vocabulary from llama.cpp's tokenizer suite (scripts/fetch_llama_cpp_vocab_suite.sh),
// whose pre-tokenizer regex runs on the general PCRE2 path: llama.cpp's ids (fixture made by
// scripts/make_qwen35_tokenizer_fixture.py) on the whole WikiText-2 test split as one text, on
// every one of its lines alone, on its first 50 KB in full, and on the hard strings.
TEST(TokenizerQwen35Gguf, IdsMatchLlamaCpp) {
  const fs::path model = fs::path(HLWQ_SOURCE_DIR) / "models" / "llama-cpp-vocab" / "ggml-vocab-qwen35.gguf";
  if (!fs::exists(model)) GTEST_SKIP() << "no " << model.string() << " (scripts/fetch_llama_cpp_vocab_suite.sh)";
  if (!fs::exists(wikitext())) GTEST_SKIP() << "no shared data at " << shared_data();
  const json fixture = read_xz_json(fixture_path("tokenizer/qwen35_llama_cpp_ids.json.xz"));
  const Tokenizer tokenizer = Tokenizer::from_file(model);
  const std::string text = read_bytes(wikitext());
  ASSERT_EQ(text.size(), fixture["text_bytes"].get<size_t>());

  const auto prefix_expected = fixture["prefix_ids"].get<std::vector<int32_t>>();
  const std::vector<int32_t> prefix = tokenizer.encode(std::string_view(text).substr(0, fixture["prefix_bytes"]));
  EXPECT_EQ(prefix, prefix_expected) << "first difference at token " << first_difference(prefix, prefix_expected);

  const std::vector<int32_t> whole = tokenizer.encode(text);
  EXPECT_EQ(whole.size(), fixture["whole_count"].get<size_t>());
  EXPECT_EQ(ids_fnv1a64(whole), fixture["whole_fnv1a64"].get<std::string>());

  // Lines as Python's splitlines(keepends=True) cuts them (\n, \r\n, \r and the other breaks).
  std::vector<int32_t> line_ids;
  size_t line_count = 0;
  for (size_t start = 0; start < text.size();) {
    size_t end = start;
    while (end < text.size() && text[end] != '\n' && text[end] != '\r') ++end;
    if (end < text.size()) end += (text[end] == '\r' && end + 1 < text.size() && text[end + 1] == '\n') ? 2 : 1;
    const std::vector<int32_t> ids = tokenizer.encode(std::string_view(text).substr(start, end - start));
    line_ids.insert(line_ids.end(), ids.begin(), ids.end());
    ++line_count;
    start = end;
  }
  EXPECT_EQ(line_count, fixture["line_count"].get<size_t>());
  EXPECT_EQ(line_ids.size(), fixture["lines_token_count"].get<size_t>());
  EXPECT_EQ(ids_fnv1a64(line_ids), fixture["lines_fnv1a64"].get<std::string>());

  size_t strings = 0;
  for (const json& entry : fixture["strings"]) {
    const std::string string = entry["text"];
    EXPECT_EQ(tokenizer.encode(string), entry["ids"].get<std::vector<int32_t>>()) << json(string).dump();
    ++strings;
  }
  EXPECT_GE(strings, 120u);
  std::printf("qwen35 GGUF: %zu tokens for %zu bytes and %zu lines / %zu tokens, %zu strings: %s llama.cpp's\n",
              whole.size(), text.size(), line_count, line_ids.size(), strings,
              HasFailure() ? "NOT all identical to" : "identical to");
}

// Feeding ids one by one must give back exactly decode() of all of them whenever that is valid
// UTF-8, never a partial character, across random multilingual text.
TEST(StreamingDecoder, StreamsWholeCharacters) {
  const fs::path folder = shared_data() / "tokenizers";
  if (!fs::exists(folder)) GTEST_SKIP() << "no shared data at " << shared_data();
  const std::vector<std::string> alphabet = {"a", " ", "é", "日本", "🦙", "\xD5\xA1", "\n", "Ω", "👍🏽", "x1"};
  std::mt19937 random(20261127);
  for (const char* name : {"qwen3", "llama2", "gpt2"}) {
    const Tokenizer tokenizer = Tokenizer::from_folder(folder / name);
    for (int trial = 0; trial < 50; ++trial) {
      std::string text;
      const int length = 1 + static_cast<int>(random() % 40);
      for (int i = 0; i < length; ++i) text += alphabet[random() % alphabet.size()];
      const std::vector<int32_t> ids = tokenizer.encode(text);
      StreamingDecoder decoder(tokenizer);
      std::string streamed;
      for (const int32_t id : ids) {
        const std::string part = decoder.push(id);
        // Every chunk is whole characters: it must survive a UTF-8 round trip through our decoder.
        for (size_t position = 0; position < part.size();) {
          const size_t length_here = valid_character_length(part, position);
          ASSERT_GT(length_here, 0u) << name << " chunk " << json(part).dump(-1, ' ', false, json::error_handler_t::replace);
          position += length_here;
        }
        streamed += part;
      }
      streamed += decoder.flush();
      EXPECT_EQ(streamed, tokenizer.decode(ids)) << name;
      // Decoding drops only the space SentencePiece normalization added, so the text comes back.
      EXPECT_EQ(streamed, text) << name;
    }
  }
}

// Arbitrary bytes, invalid UTF-8 included, never crash and come back exactly from byte-level
// models and from Llama-2's byte fallback (which also restores spaces).
TEST(TokenizerRobustness, RandomBytesRoundTrip) {
  const fs::path folder = shared_data() / "tokenizers";
  if (!fs::exists(folder)) GTEST_SKIP() << "no shared data at " << shared_data();
  std::mt19937 random(11);
  for (const char* name : {"llama3", "llama2", "gpt2"}) {
    const Tokenizer tokenizer = Tokenizer::from_folder(folder / name);
    for (int trial = 0; trial < 200; ++trial) {
      std::string text;
      const size_t length = random() % 64;
      for (size_t i = 0; i < length; ++i) {
        const uint32_t choice = random() % 4;
        text += choice == 0 ? static_cast<char>(random() % 256) : choice == 1 ? ' ' : static_cast<char>('a' + random() % 26);
      }
      const std::vector<int32_t> ids = tokenizer.encode(text);
      for (const int32_t id : ids) ASSERT_TRUE(id >= 0 && id < tokenizer.vocab_size());
      // Random bytes may spell a special token ("<s>", "<|...|>") only by a vanishing chance.
      EXPECT_EQ(tokenizer.decode(ids), text) << name << " " << trial;
    }
  }
}

TEST(TokenizerErrors, OneLineNamingTheFile) {
  TemporaryFolder folder;
  const auto expect_error = [](const auto& load, const std::string& part) {
    try {
      load();
      ADD_FAILURE() << "no error";
    } catch (const Error& error) {
      const std::string message = error.what();
      EXPECT_NE(message.find(part), std::string::npos) << message;
      EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    }
  };
  expect_error([&] { Tokenizer::from_folder(folder.path()); }, folder.path().string());
  const fs::path broken = folder.path() / "tokenizer.json";
  std::ofstream(broken) << "{\"model\": ";
  expect_error([&] { Tokenizer::from_folder(folder.path()); }, broken.string());
  const json model = {{"type", "BPE"}, {"vocab", {{"a", 0}, {"b", 1}}}, {"merges", {"a b"}}};
  expect_error([&] { Tokenizer::from_json({{"model", model}}, nullptr, "t.json"); }, "ab");
  const json tiny = {{"type", "BPE"}, {"vocab", {{"a", 0}, {"b", 1}, {"ab", 2}}}, {"merges", {"a b"}}};
  const json bad_split = {{"type", "Split"}, {"pattern", {{"Regex", "(\\w+"}}}, {"behavior", "Isolated"}};
  expect_error([&] { Tokenizer::from_json({{"model", tiny}, {"pre_tokenizer", bad_split}}, nullptr, "t.json"); },
               "t.json");
  const json unknown_step = {{"type", "Metaspace"}};
  expect_error([&] { Tokenizer::from_json({{"model", tiny}, {"pre_tokenizer", unknown_step}}, nullptr, "t.json"); },
               "supported");
  expect_error([&] { Tokenizer::from_json({{"model", tiny}, {"normalizer", {{"type", "NFKC"}}}}, nullptr, "t.json"); },
               "t.json");
  // A minimal valid tokenizer works, merging as told.
  const Tokenizer ok = Tokenizer::from_json({{"model", tiny}}, nullptr, "t.json");
  EXPECT_EQ(ok.encode("abab"), (std::vector<int32_t>{2, 2}));
  EXPECT_EQ(ok.encode("ba"), (std::vector<int32_t>{1, 0}));
}

// Inputs fuzz/tokenizer_fuzz.cc found (or that reading the parser found and the fuzz target confirmed), reduced:
// each used to end the process (an exception other than hlwq::Error, or a multi-gigabyte allocation)
// and must now be a one-line error naming the file.
TEST(TokenizerErrors, MalformedFilesAreErrorsNotCrashes) {
  const json tiny = {{"type", "BPE"}, {"vocab", {{"a", 0}, {"b", 1}, {"ab", 2}}}, {"merges", {"a b"}}};
  const auto with_model = [&](json model) { return json{{"model", std::move(model)}}; };
  const auto with = [&](const char* key, json value) { return json{{"model", tiny}, {key, std::move(value)}}; };
  const auto added = [](json id, const char* flag, json flag_value) {
    return json::array({{{"id", std::move(id)}, {"content", "<x>"}, {flag, std::move(flag_value)}}});
  };
  json byte_fallback_text = tiny, huge_id = tiny;
  byte_fallback_text["byte_fallback"] = "true";
  huge_id["vocab"]["<0x1D>"] = (1 << 30) - 1;
  json growing = {{"type", "Sequence"}, {"normalizers", json::array()}};
  for (int step = 0; step < 12; ++step) {
    growing["normalizers"].push_back({{"type", "Replace"}, {"pattern", {{"String", "a"}}}, {"content", "aaaaaaaa"}});
  }
  const std::vector<std::pair<json, std::string>> cases = {
      {with("added_tokens", added(3, "rstrip", json::array())), "type must be boolean"},
      {with("added_tokens", added(3, "lstrip", "yes")), "type must be boolean"},
      {with("normalizer", {{"type", 5}}), "type must be string"},
      {with("decoder", {{"type", "Strip"}, {"start", "1"}}), "type must be number"},
      {with("pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", "no"}}), "type must be boolean"},
      {with_model(byte_fallback_text), "type must be boolean"},
      {with_model(huge_id), "has id 1073741823, far past the 4 tokens"},
      {with("added_tokens", added(1 << 29, "lstrip", false)), "far past"},
      {with("normalizer", growing), "more than 256 times longer"},
  };
  for (const auto& [tokenizer, part] : cases) {
    try {
      (void)Tokenizer::from_json(tokenizer, nullptr, "t.json");
      ADD_FAILURE() << "no error for " << tokenizer.dump();
    } catch (const Error& error) {
      const std::string message = error.what();
      EXPECT_NE(message.find(part), std::string::npos) << message;
      EXPECT_TRUE(message.ends_with(", t.json")) << message;
      EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    }
  }
  // Gaps between ids stay allowed, as do the normalizers real tokenizers have (Llama-2's).
  json sparse = tiny;
  sparse["vocab"]["z"] = 40;
  EXPECT_EQ(Tokenizer::from_json(with_model(sparse), nullptr, "t.json").vocab_size(), 41);
  const json llama2_normalizer = {
      {"type", "Sequence"},
      {"normalizers",
       {{{"type", "Prepend"}, {"prepend", "\xE2\x96\x81"}},
        {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\xE2\x96\x81"}}}}};
  EXPECT_NO_THROW(Tokenizer::from_json(with("normalizer", llama2_normalizer), nullptr, "t.json"));
}

}  // namespace
}  // namespace hlwq
