// GGUF tokenizer metadata -> Hugging Face tokenizer files. The target is llama.cpp's behaviour
// with the same GGUF (src/llama-vocab.cpp), expressed with stock `tokenizers` components:
//  - byte-level BPE ("gpt2"): Split regexes per tokenizer.ggml.pre, ByteLevel, BPE with the
//    file's merges (ignore_merges where llama.cpp looks whole pieces up first);
//  - SentencePiece BPE ("llama"): Prepend("▁") + Replace(" ", "▁") normalizer and a BPE with
//    byte fallback whose merge ranks reproduce llama.cpp's "highest score first" order;
//  - tokens llama.cpp matches in raw text before splitting (control, user-defined, unknown)
//    become HF added tokens, matched the same way.
#include "io/gguf_tokenizer.h"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/file_writer.h"
#include "io/gguf_pre_tokenizer.h"

namespace hlwq {
namespace {

using nlohmann::json;

// tokenizer.ggml.token_type values (llama.h's llama_token_type).
enum class TokenType : int64_t {
  kUndefined = 0, kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6,
};

// How a token is matched in raw text before the model sees the rest (llama.cpp's
// cache_special_tokens); HF calls these added tokens.
enum class AddedKind { kNone, kSpecial, kUserDefined };

struct AddedTokenRule {
  AddedKind kind = AddedKind::kNone;
  bool strips_left = false;   // whitespace before the token is dropped (llama.cpp LSTRIP)
  bool strips_right = false;  // whitespace after the token is dropped (llama.cpp RSTRIP)
};

constexpr std::string_view kSpaceMarker = "\xe2\x96\x81";  // U+2581, SentencePiece's space

// Texts llama.cpp turns into control tokens whatever the file says (end-of-generation and
// end-of-turn markers), so that they are cut out of raw text as special tokens.
constexpr std::string_view kForcedControlTexts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
    "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
    "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
    "<\xef\xbd\x9c" "end\xe2\x96\x81" "of\xe2\x96\x81" "sentence\xef\xbd\x9c>", "[e~[",
};
// Texts llama.cpp makes user-defined (matched in raw text even when special tokens are not
// parsed): the harmony chat format's structural markers.
constexpr std::string_view kForcedUserDefinedTexts[] = {
    "<|channel|>", "<|message|>", "<|start|>", "<|constrain|>",
};

struct FillInMiddleRole {
  std::string_view id_key;  // when the file names the token, llama.cpp does not guess
  std::vector<std::string_view> texts;
};

// Fill-in-the-middle markers llama.cpp recognises by text when the file has no id for them.
const std::vector<FillInMiddleRole>& fill_in_middle_roles() {
  static const std::vector<FillInMiddleRole> roles = {
      {"tokenizer.ggml.fim_pre_token_id",
       {"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>",
        "<\xef\xbd\x9c" "fim\xe2\x96\x81" "begin\xef\xbd\x9c>", "<PRE>", "\xe2\x96\x81<PRE>",
        "<|code_prefix|>", "<|prefix|>"}},
      {"tokenizer.ggml.fim_suf_token_id",
       {"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>",
        "<\xef\xbd\x9c" "fim\xe2\x96\x81" "hole\xef\xbd\x9c>", "<SUF>", "\xe2\x96\x81<SUF>",
        "<|code_suffix|>", "<|suffix|>"}},
      {"tokenizer.ggml.fim_mid_token_id",
       {"<|fim_middle|>", "<fim-middle>", "<fim_middle>",
        "<\xef\xbd\x9c" "fim\xe2\x96\x81" "end\xef\xbd\x9c>", "<MID>", "\xe2\x96\x81<MID>",
        "<|code_middle|>", "<|middle|>"}},
      {"tokenizer.ggml.fim_pad_token_id", {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"}},
      {"tokenizer.ggml.fim_rep_token_id",
       {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"}},
      {"tokenizer.ggml.fim_sep_token_id", {"<|file_sep|>"}},
  };
  return roles;
}

// Bytes in a UTF-8 sequence from its first byte; 0 for a byte that cannot start one.
size_t utf8_sequence_length(unsigned char first) {
  if (first < 0x80) return 1;
  if (first >= 0xC2 && first <= 0xDF) return 2;
  if (first >= 0xE0 && first <= 0xEF) return 3;
  if (first >= 0xF0 && first <= 0xF4) return 4;
  return 0;
}

// Strict UTF-8 (no overlong forms, surrogates or code points past U+10FFFF): what
// nlohmann::json::dump accepts without throwing.
bool is_valid_utf8(std::string_view text) {
  size_t position = 0;
  while (position < text.size()) {
    const auto first = static_cast<unsigned char>(text[position]);
    const size_t length = utf8_sequence_length(first);
    if (length == 0 || position + length > text.size()) return false;
    for (size_t k = 1; k < length; ++k) {
      if ((static_cast<unsigned char>(text[position + k]) & 0xC0) != 0x80) return false;
    }
    if (length >= 3) {
      const auto second = static_cast<unsigned char>(text[position + 1]);
      if (first == 0xE0 && second < 0xA0) return false;  // overlong
      if (first == 0xED && second > 0x9F) return false;  // surrogate
      if (first == 0xF0 && second < 0x90) return false;  // overlong
      if (first == 0xF4 && second > 0x8F) return false;  // past U+10FFFF
    }
    position += length;
  }
  return true;
}

size_t count_code_points(std::string_view text) {
  size_t count = 0;
  for (char byte : text) count += (static_cast<unsigned char>(byte) & 0xC0) != 0x80;
  return count;
}

// The tokenizer part of the metadata, checked and typed.
struct GgufVocabulary {
  std::string model;
  std::string pre;
  std::vector<std::string> tokens;
  std::vector<TokenType> types;  // kNormal for every token when the file has none
  std::vector<float> scores;     // empty when the file has none
  std::vector<std::string> merges;
  bool has_merges = false;
  std::optional<int64_t> bos_id, eos_id, unknown_id, padding_id;
  std::optional<bool> add_bos, add_eos, add_space_prefix;
  std::optional<std::string> chat_template;
  std::optional<int64_t> context_length;
  std::string architecture;  // general.architecture, for llama.cpp's per-model token rules
  std::string model_name;    // general.name, lower case, likewise
};

class MetadataReader {
 public:
  MetadataReader(const json& metadata, std::string_view source) : metadata_(metadata), source_(source) {}

  std::string_view source() const { return source_; }

  const json* find(const std::string& key) const {
    const auto found = metadata_.find(key);
    return found == metadata_.end() ? nullptr : &*found;
  }

  const json& require(const std::string& key) const {
    const json* value = find(key);
    if (value == nullptr) fail("missing ", key, ", ", source_);
    return *value;
  }

  std::optional<std::string> optional_string(const std::string& key) const {
    const json* value = find(key);
    if (value == nullptr) return std::nullopt;
    check(value->is_string(), key, " is not a string, ", source_);
    return value->get<std::string>();
  }

  std::optional<bool> optional_bool(const std::string& key) const {
    const json* value = find(key);
    if (value == nullptr) return std::nullopt;
    check(value->is_boolean(), key, " is not a boolean, ", source_);
    return value->get<bool>();
  }

  std::optional<int64_t> optional_integer(const std::string& key) const {
    const json* value = find(key);
    if (value == nullptr) return std::nullopt;
    check(value->is_number_integer(), key, " is not an integer, ", source_);
    if (value->is_number_unsigned()) {
      const uint64_t number = value->get<uint64_t>();
      check(number <= uint64_t{INT64_MAX}, key, " is out of range, ", source_);
      return static_cast<int64_t>(number);
    }
    return value->get<int64_t>();
  }

  const json& array(const std::string& key) const {
    const json& value = require(key);
    check(value.is_array(), key, " is not an array, ", source_);
    return value;
  }

  std::vector<std::string> string_array(const std::string& key) const {
    const json& values = array(key);
    std::vector<std::string> strings;
    strings.reserve(values.size());
    for (size_t i = 0; i < values.size(); ++i) {
      check(values[i].is_string(), key, "[", i, "] is not a string, ", source_);
      strings.push_back(values[i].get_ref<const std::string&>());
    }
    return strings;
  }

 private:
  const json& metadata_;
  std::string_view source_;
};

GgufVocabulary read_vocabulary(const MetadataReader& reader) {
  const std::string_view source = reader.source();
  GgufVocabulary vocabulary;
  const json& model = reader.require("tokenizer.ggml.model");
  check(model.is_string(), "tokenizer.ggml.model is not a string, ", source);
  vocabulary.model = model.get<std::string>();
  vocabulary.pre = reader.optional_string("tokenizer.ggml.pre").value_or("");
  vocabulary.tokens = reader.string_array("tokenizer.ggml.tokens");
  const size_t count = vocabulary.tokens.size();
  check(count > 0, "tokenizer.ggml.tokens is empty, ", source);
  check(count <= size_t{INT32_MAX}, "tokenizer.ggml.tokens has too many entries, ", source);

  vocabulary.types.assign(count, TokenType::kNormal);
  if (reader.find("tokenizer.ggml.token_type") != nullptr) {
    const json& types = reader.array("tokenizer.ggml.token_type");
    check(types.size() == count, "tokenizer.ggml.token_type has ", types.size(),
          " entries for ", count, " tokens, ", source);
    for (size_t i = 0; i < count; ++i) {
      check(types[i].is_number_integer(), "tokenizer.ggml.token_type[", i, "] is not an integer, ", source);
      const int64_t type = types[i].get<int64_t>();
      check(type >= 0 && type <= 6, "tokenizer.ggml.token_type[", i, "] is ", type,
            ", not a token type (0 to 6), ", source);
      vocabulary.types[i] = static_cast<TokenType>(type);
    }
  }
  if (reader.find("tokenizer.ggml.scores") != nullptr) {
    const json& scores = reader.array("tokenizer.ggml.scores");
    check(scores.size() == count, "tokenizer.ggml.scores has ", scores.size(), " entries for ",
          count, " tokens, ", source);
    vocabulary.scores.reserve(count);
    for (size_t i = 0; i < count; ++i) {
      check(scores[i].is_number(), "tokenizer.ggml.scores[", i, "] is not a number, ", source);
      vocabulary.scores.push_back(scores[i].get<float>());
    }
  }
  if (reader.find("tokenizer.ggml.merges") != nullptr) {
    vocabulary.merges = reader.string_array("tokenizer.ggml.merges");
    vocabulary.has_merges = true;
  }
  vocabulary.bos_id = reader.optional_integer("tokenizer.ggml.bos_token_id");
  vocabulary.eos_id = reader.optional_integer("tokenizer.ggml.eos_token_id");
  vocabulary.unknown_id = reader.optional_integer("tokenizer.ggml.unknown_token_id");
  vocabulary.padding_id = reader.optional_integer("tokenizer.ggml.padding_token_id");
  vocabulary.add_bos = reader.optional_bool("tokenizer.ggml.add_bos_token");
  vocabulary.add_eos = reader.optional_bool("tokenizer.ggml.add_eos_token");
  vocabulary.add_space_prefix = reader.optional_bool("tokenizer.ggml.add_space_prefix");
  vocabulary.chat_template = reader.optional_string("tokenizer.chat_template");
  if (vocabulary.chat_template) {
    check(is_valid_utf8(*vocabulary.chat_template), "tokenizer.chat_template is not valid UTF-8, ", source);
  }
  vocabulary.architecture = reader.optional_string("general.architecture").value_or("");
  if (!vocabulary.architecture.empty()) {
    const std::string key = vocabulary.architecture + ".context_length";
    if (reader.find(key) != nullptr) vocabulary.context_length = reader.optional_integer(key);
  }
  vocabulary.model_name = reader.optional_string("general.name").value_or("");
  std::transform(vocabulary.model_name.begin(), vocabulary.model_name.end(), vocabulary.model_name.begin(),
                 [](char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); });
  return vocabulary;
}

// Token text -> id. llama.cpp renames empty tokens and requires the rest to be unique.
std::unordered_map<std::string_view, int64_t> index_tokens(std::vector<std::string>& tokens,
                                                           std::string_view source) {
  std::unordered_map<std::string_view, int64_t> ids;
  ids.reserve(tokens.size());
  for (size_t id = 0; id < tokens.size(); ++id) {
    std::string& text = tokens[id];
    if (text.empty()) text = concat("[EMPTY_", id, "]");
    check(is_valid_utf8(text), "token ", id, " is not valid UTF-8, ", source);
  }
  for (size_t id = 0; id < tokens.size(); ++id) {
    const auto [where, inserted] = ids.emplace(tokens[id], static_cast<int64_t>(id));
    check(inserted, "token ", id, " '", tokens[id], "' repeats token ", where->second, ", ", source);
  }
  return ids;
}

bool contains_any(std::string_view text, std::initializer_list<std::string_view> parts) {
  return std::any_of(parts.begin(), parts.end(),
                     [&](std::string_view part) { return text.find(part) != std::string_view::npos; });
}

std::vector<AddedTokenRule> classify_added_tokens(const GgufVocabulary& vocabulary,
                                                  const std::unordered_map<std::string_view, int64_t>& ids,
                                                  const MetadataReader& reader) {
  std::vector<AddedTokenRule> rules(vocabulary.tokens.size());
  for (size_t id = 0; id < rules.size(); ++id) {
    switch (vocabulary.types[id]) {
      case TokenType::kControl:
      case TokenType::kUnknown: rules[id].kind = AddedKind::kSpecial; break;
      case TokenType::kUserDefined: rules[id].kind = AddedKind::kUserDefined; break;
      default: break;
    }
  }
  auto rule_for = [&](std::string_view text) -> AddedTokenRule* {
    const auto found = ids.find(text);
    return found == ids.end() ? nullptr : &rules[found->second];
  };
  auto force = [&](std::string_view text, AddedKind kind) {
    if (AddedTokenRule* rule = rule_for(text)) rule->kind = kind;
  };
  for (const FillInMiddleRole& role : fill_in_middle_roles()) {
    if (reader.find(std::string(role.id_key)) != nullptr) continue;
    for (std::string_view text : role.texts) force(text, AddedKind::kSpecial);
  }
  for (std::string_view text : kForcedControlTexts) force(text, AddedKind::kSpecial);
  for (std::string_view text : kForcedUserDefinedTexts) force(text, AddedKind::kUserDefined);

  // Whitespace llama.cpp strips next to special tokens of a few models, picked by name.
  if (contains_any(vocabulary.pre, {"jina-v2-de", "jina-v2-es", "jina-v2-code"}) ||
      contains_any(vocabulary.architecture, {"nomic-bert-moe", "jina-bert-v3"})) {
    if (AddedTokenRule* rule = rule_for("<mask>")) rule->strips_left = true;
  } else if (contains_any(vocabulary.model_name, {"phi-3", "phi3"})) {
    for (AddedTokenRule& rule : rules) rule.strips_right = rule.kind != AddedKind::kNone;
    if (AddedTokenRule* rule = rule_for("</s>")) rule->strips_right = true;
    for (std::string_view text : {"<unk>", "<s>", "<|endoftext|>"}) {
      if (AddedTokenRule* rule = rule_for(text)) rule->strips_right = false;
    }
  } else if (contains_any(vocabulary.model_name, {"modern-bert"})) {
    if (AddedTokenRule* rule = rule_for("[MASK]")) rule->strips_left = true;
  }
  return rules;
}

void check_token_id(const std::optional<int64_t>& id, std::string_view key, size_t count,
                    std::string_view source) {
  if (!id) return;
  check(*id >= 0 && static_cast<uint64_t>(*id) < count, key, " ", *id,
        " is outside the vocabulary of ", count, " tokens, ", source);
}

// Merges in the order `tokenizers` ranks them, as [left, right] pairs; checked the way HF loads
// them (both parts and their concatenation must be tokens). Repeats are dropped: llama.cpp
// keeps the first rank of a pair, HF would keep the last.
std::vector<std::pair<std::string_view, std::string_view>> parse_merges(
    const GgufVocabulary& vocabulary, const std::unordered_map<std::string_view, int64_t>& ids,
    std::string_view source) {
  std::vector<std::pair<std::string_view, std::string_view>> pairs;
  pairs.reserve(vocabulary.merges.size());
  std::unordered_set<std::string_view> seen;
  seen.reserve(vocabulary.merges.size());
  std::string joined;
  for (size_t i = 0; i < vocabulary.merges.size(); ++i) {
    const std::string& merge = vocabulary.merges[i];
    // llama.cpp splits at the first space after the first byte.
    const size_t space = merge.size() > 1 ? merge.find(' ', 1) : std::string::npos;
    check(space != std::string::npos && space + 1 < merge.size(), "tokenizer.ggml.merges[", i,
          "] '", merge, "' is not two tokens separated by a space, ", source);
    const std::string_view whole(merge);
    const std::string_view left = whole.substr(0, space);
    const std::string_view right = whole.substr(space + 1);
    check(ids.count(left) != 0, "tokenizer.ggml.merges[", i, "] '", merge, "': '", left,
          "' is not a token, ", source);
    check(ids.count(right) != 0, "tokenizer.ggml.merges[", i, "] '", merge, "': '", right,
          "' is not a token, ", source);
    joined.assign(left);
    joined.append(right);
    check(ids.count(joined) != 0, "tokenizer.ggml.merges[", i, "] '", merge, "' makes '", joined,
          "', which is not a token, ", source);
    if (!seen.insert(whole).second) continue;
    pairs.emplace_back(left, right);
  }
  return pairs;
}

// SentencePiece BPE as llama.cpp runs it: repeatedly join the adjacent pair whose joined text is
// the token with the highest score. As HF BPE merges, every way to cut a token into two tokens
// is a merge ranked by the token's score (ties: longer left part, longer right part, then token
// id and part ids, which is also the order transformers' own GGUF converter produces). Texts
// with a plain space cannot be reached (llama.cpp replaces spaces by U+2581 first).
std::vector<std::pair<std::string_view, std::string_view>> merges_from_scores(
    const GgufVocabulary& vocabulary, const std::unordered_map<std::string_view, int64_t>& ids) {
  struct Candidate {
    float score;
    size_t left_length, right_length;  // in code points
    int64_t token, left, right;
    std::string_view left_text, right_text;
  };
  std::vector<Candidate> candidates;
  for (size_t id = 0; id < vocabulary.tokens.size(); ++id) {
    const std::string_view text = vocabulary.tokens[id];
    if (text.find(' ') != std::string_view::npos) continue;
    size_t cut = utf8_sequence_length(static_cast<unsigned char>(text[0]));
    while (cut > 0 && cut < text.size()) {
      const std::string_view left = text.substr(0, cut);
      const std::string_view right = text.substr(cut);
      const auto left_id = ids.find(left);
      const auto right_id = ids.find(right);
      if (left_id != ids.end() && right_id != ids.end()) {
        candidates.push_back({vocabulary.scores[id], count_code_points(left), count_code_points(right),
                              static_cast<int64_t>(id), left_id->second, right_id->second, left, right});
      }
      cut += utf8_sequence_length(static_cast<unsigned char>(text[cut]));
    }
  }
  std::sort(candidates.begin(), candidates.end(), [](const Candidate& a, const Candidate& b) {
    if (a.score != b.score) return a.score > b.score;
    if (a.left_length != b.left_length) return a.left_length > b.left_length;
    if (a.right_length != b.right_length) return a.right_length > b.right_length;
    if (a.token != b.token) return a.token < b.token;
    if (a.left != b.left) return a.left < b.left;
    return a.right < b.right;
  });
  std::vector<std::pair<std::string_view, std::string_view>> pairs;
  pairs.reserve(candidates.size());
  for (const Candidate& candidate : candidates) pairs.emplace_back(candidate.left_text, candidate.right_text);
  return pairs;
}

// "a b" strings where no part holds a space (readable by every `tokenizers` version), otherwise
// [a, b] pairs (tokenizers >= 0.20).
json merges_json(const std::vector<std::pair<std::string_view, std::string_view>>& pairs) {
  const bool needs_pairs = std::any_of(pairs.begin(), pairs.end(), [](const auto& pair) {
    return pair.first.find(' ') != std::string_view::npos || pair.second.find(' ') != std::string_view::npos;
  });
  json merges = json::array();
  for (const auto& [left, right] : pairs) {
    if (needs_pairs) {
      merges.push_back(json::array({std::string(left), std::string(right)}));
    } else {
      std::string text;
      text.reserve(left.size() + 1 + right.size());
      text.append(left).append(" ").append(right);
      merges.push_back(std::move(text));
    }
  }
  return merges;
}

json bpe_model_json(const GgufVocabulary& vocabulary, json merges, bool sentencepiece, bool ignore_merges) {
  json vocab = json::object();
  for (size_t id = 0; id < vocabulary.tokens.size(); ++id) vocab[vocabulary.tokens[id]] = id;
  json unknown = nullptr;
  if (sentencepiece && vocabulary.unknown_id) unknown = vocabulary.tokens[*vocabulary.unknown_id];
  return {
      {"type", "BPE"},
      {"dropout", nullptr},
      {"unk_token", unknown},
      {"continuing_subword_prefix", nullptr},
      {"end_of_word_suffix", nullptr},
      {"fuse_unk", sentencepiece},
      {"byte_fallback", sentencepiece},
      {"ignore_merges", ignore_merges},
      {"vocab", std::move(vocab)},
      {"merges", std::move(merges)},
  };
}

// One added token as tokenizer.json and tokenizer_config.json spell it.
json added_token_entry(const std::string& content, const AddedTokenRule& rule) {
  return {{"content", content},
          {"lstrip", rule.strips_left},
          {"normalized", false},
          {"rstrip", rule.strips_right},
          {"single_word", false},
          {"special", rule.kind != AddedKind::kUserDefined}};
}

json added_tokens_json(const GgufVocabulary& vocabulary, const std::vector<AddedTokenRule>& rules) {
  json added = json::array();
  for (size_t id = 0; id < rules.size(); ++id) {
    if (rules[id].kind == AddedKind::kNone) continue;
    json entry = added_token_entry(vocabulary.tokens[id], rules[id]);
    entry["id"] = id;
    added.push_back(std::move(entry));
  }
  return added;
}

// BOS/EOS around every encoded sequence, as llama.cpp adds them when asked for special tokens.
json post_processor_json(const GgufVocabulary& vocabulary, bool add_bos, bool add_eos) {
  if (!add_bos && !add_eos) return nullptr;
  json special_tokens = json::object();
  auto special = [&](int64_t id, int type_id) {
    const std::string& text = vocabulary.tokens[id];
    special_tokens[text] = {{"id", text}, {"ids", {id}}, {"tokens", {text}}};
    return json{{"SpecialToken", {{"id", text}, {"type_id", type_id}}}};
  };
  auto sequence = [](const char* name, int type_id) {
    return json{{"Sequence", {{"id", name}, {"type_id", type_id}}}};
  };
  json single = json::array();
  json pair = json::array();
  if (add_bos) single.push_back(special(*vocabulary.bos_id, 0));
  single.push_back(sequence("A", 0));
  if (add_eos) single.push_back(special(*vocabulary.eos_id, 0));
  pair = single;
  if (add_bos) pair.push_back(special(*vocabulary.bos_id, 1));
  pair.push_back(sequence("B", 1));
  if (add_eos) pair.push_back(special(*vocabulary.eos_id, 1));
  return {{"type", "TemplateProcessing"}, {"single", single}, {"pair", pair},
          {"special_tokens", special_tokens}};
}

json byte_level_pre_tokenizer_json(const GgufPreTokenizer& splitting) {
  json steps = json::array();
  for (std::string_view regex : splitting.split_regexes) {
    steps.push_back({{"type", "Split"},
                     {"pattern", {{"Regex", std::string(regex)}}},
                     {"behavior", "Isolated"},
                     {"invert", false}});
  }
  steps.push_back({{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false},
                   {"use_regex", false}});
  return {{"type", "Sequence"}, {"pretokenizers", std::move(steps)}};
}

json sentencepiece_normalizer_json(bool add_space_prefix) {
  json steps = json::array();
  if (add_space_prefix) steps.push_back({{"type", "Prepend"}, {"prepend", kSpaceMarker}});
  steps.push_back({{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", kSpaceMarker}});
  return {{"type", "Sequence"}, {"normalizers", std::move(steps)}};
}

json sentencepiece_decoder_json(bool add_space_prefix) {
  json steps = json::array();
  steps.push_back({{"type", "Replace"}, {"pattern", {{"String", kSpaceMarker}}}, {"content", " "}});
  steps.push_back({{"type", "ByteFallback"}});
  steps.push_back({{"type", "Fuse"}});
  if (add_space_prefix) {
    steps.push_back({{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}});
  }
  return {{"type", "Sequence"}, {"decoders", std::move(steps)}};
}

// The pieces of tokenizer.json that differ between the two model families.
json sentencepiece_parts(const GgufVocabulary& vocabulary, const std::unordered_map<std::string_view, int64_t>& ids,
                         bool add_space_prefix, std::string_view source) {
  std::vector<std::pair<std::string_view, std::string_view>> merges;
  if (!vocabulary.scores.empty()) {
    merges = merges_from_scores(vocabulary, ids);
  } else {
    check(vocabulary.has_merges, "missing tokenizer.ggml.scores, ", source);
    merges = parse_merges(vocabulary, ids, source);
  }
  return {{"normalizer", sentencepiece_normalizer_json(add_space_prefix)},
          {"pre_tokenizer", nullptr},
          {"decoder", sentencepiece_decoder_json(add_space_prefix)},
          {"model", bpe_model_json(vocabulary, merges_json(merges), true, false)}};
}

json byte_level_parts(const GgufVocabulary& vocabulary, const std::unordered_map<std::string_view, int64_t>& ids,
                      const GgufPreTokenizer& splitting, std::string_view source) {
  check(vocabulary.has_merges, "missing tokenizer.ggml.merges, ", source);
  return {{"normalizer", nullptr},
          {"pre_tokenizer", byte_level_pre_tokenizer_json(splitting)},
          {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false},
                       {"use_regex", false}}},
          {"model", bpe_model_json(vocabulary, merges_json(parse_merges(vocabulary, ids, source)), false,
                                   splitting.ignore_merges)}};
}

// The token roles a tokenizer_config.json names, with the ids the file gives them.
std::vector<std::pair<const char*, std::optional<int64_t>>> token_roles(const GgufVocabulary& vocabulary) {
  return {{"bos_token", vocabulary.bos_id},
          {"eos_token", vocabulary.eos_id},
          {"unk_token", vocabulary.unknown_id},
          {"pad_token", vocabulary.padding_id}};
}

struct SpecialTokenUse {
  bool add_bos = false;
  bool add_eos = false;
  bool cleans_up_spaces = false;
};

json tokenizer_config_json(const GgufVocabulary& vocabulary, const std::vector<AddedTokenRule>& rules,
                           const SpecialTokenUse& use) {
  json config = {{"tokenizer_class", "PreTrainedTokenizerFast"},
                 {"add_bos_token", use.add_bos},
                 {"add_eos_token", use.add_eos},
                 {"clean_up_tokenization_spaces", use.cleans_up_spaces}};
  for (const auto& [name, id] : token_roles(vocabulary)) {
    config[name] = id ? json(vocabulary.tokens[*id]) : json(nullptr);
  }
  if (vocabulary.context_length) config["model_max_length"] = *vocabulary.context_length;
  if (vocabulary.chat_template) config["chat_template"] = *vocabulary.chat_template;
  json decoder = json::object();
  for (size_t id = 0; id < rules.size(); ++id) {
    if (rules[id].kind == AddedKind::kNone) continue;
    decoder[std::to_string(id)] = added_token_entry(vocabulary.tokens[id], rules[id]);
  }
  config["added_tokens_decoder"] = std::move(decoder);
  return config;
}

json special_tokens_map_json(const GgufVocabulary& vocabulary) {
  json map = json::object();
  for (const auto& [name, id] : token_roles(vocabulary)) {
    if (id) map[name] = added_token_entry(vocabulary.tokens[*id], {AddedKind::kSpecial});
  }
  return map;
}

}  // namespace

HfTokenizerFiles gguf_to_hf_tokenizer(const nlohmann::json& gguf_metadata, std::string_view source_name) {
  check(gguf_metadata.is_object(), "metadata is not an object, ", source_name);
  const MetadataReader reader(gguf_metadata, source_name);
  GgufVocabulary vocabulary = read_vocabulary(reader);
  const bool sentencepiece = vocabulary.model == "llama";
  check(sentencepiece || vocabulary.model == "gpt2", "unsupported tokenizer model '", vocabulary.model,
        "' (supported: gpt2, llama), ", source_name);
  const auto ids = index_tokens(vocabulary.tokens, source_name);
  const size_t count = vocabulary.tokens.size();
  if (sentencepiece) {
    // llama.cpp's defaults for a SentencePiece vocabulary, dropped when outside the vocabulary.
    auto default_id = [&](std::optional<int64_t>& id, int64_t fallback) {
      if (!id && static_cast<uint64_t>(fallback) < count) id = fallback;
    };
    default_id(vocabulary.bos_id, 1);
    default_id(vocabulary.eos_id, 2);
    default_id(vocabulary.unknown_id, 0);
  }
  check_token_id(vocabulary.bos_id, "tokenizer.ggml.bos_token_id", count, source_name);
  check_token_id(vocabulary.eos_id, "tokenizer.ggml.eos_token_id", count, source_name);
  check_token_id(vocabulary.unknown_id, "tokenizer.ggml.unknown_token_id", count, source_name);
  check_token_id(vocabulary.padding_id, "tokenizer.ggml.padding_token_id", count, source_name);

  SpecialTokenUse use;
  use.add_eos = vocabulary.add_eos.value_or(false);
  json parts;
  if (sentencepiece) {
    use.add_bos = vocabulary.add_bos.value_or(true);
    parts = sentencepiece_parts(vocabulary, ids, vocabulary.add_space_prefix.value_or(true), source_name);
  } else {
    const auto splitting = find_gguf_pre_tokenizer(vocabulary.pre);
    check(splitting.has_value(), "unsupported tokenizer.ggml.pre '", vocabulary.pre, "' (supported: ",
          supported_gguf_pre_tokenizer_names(), "), ", source_name);
    use.add_bos = vocabulary.add_bos.value_or(splitting->adds_bos_by_default);
    use.cleans_up_spaces = splitting->cleans_up_spaces;
    parts = byte_level_parts(vocabulary, ids, *splitting, source_name);
  }
  check(!use.add_bos || vocabulary.bos_id.has_value(),
        "the tokenizer adds a BOS token but tokenizer.ggml.bos_token_id is missing, ", source_name);
  check(!use.add_eos || vocabulary.eos_id.has_value(),
        "tokenizer.ggml.add_eos_token is set but tokenizer.ggml.eos_token_id is missing, ", source_name);

  const std::vector<AddedTokenRule> rules = classify_added_tokens(vocabulary, ids, reader);
  HfTokenizerFiles files;
  files.tokenizer = std::move(parts);
  files.tokenizer["version"] = "1.0";
  files.tokenizer["truncation"] = nullptr;
  files.tokenizer["padding"] = nullptr;
  files.tokenizer["added_tokens"] = added_tokens_json(vocabulary, rules);
  files.tokenizer["post_processor"] = post_processor_json(vocabulary, use.add_bos, use.add_eos);
  files.tokenizer_config = tokenizer_config_json(vocabulary, rules, use);
  files.special_tokens_map = special_tokens_map_json(vocabulary);
  return files;
}

void write_hf_tokenizer_files(const HfTokenizerFiles& files, const std::filesystem::path& folder) {
  write_text_file(folder / "tokenizer.json", files.tokenizer.dump(2) + "\n");
  write_text_file(folder / "tokenizer_config.json", files.tokenizer_config.dump(2) + "\n");
  write_text_file(folder / "special_tokens_map.json", files.special_tokens_map.dump(2) + "\n");
}

}  // namespace hlwq
