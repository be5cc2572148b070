// Tokenizer: loading tokenizer.json, splitting out added tokens, normalizing, pre-tokenizing and
// BPE-merging each piece; decoding by concatenating token bytes.
#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <fstream>

#include "core/error.h"
#include "io/gguf.h"
#include "io/gguf_tokenizer.h"
#include "io/model_folder.h"
#include "tokenizer/unicode.h"

namespace hlwq {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

// Texts of the tokens that end a turn in the chat formats hlwq knows.
constexpr std::array<std::string_view, 8> kEndOfTurnTokens = {
    "<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<|end_of_text|>", "<|endoftext|>", "</s>", "<end_of_turn>", "<|end|>"};

// Rust's char::is_whitespace, which HF's lstrip/rstrip use: the White_Space property.
bool whitespace_before(std::string_view text, size_t position, size_t& start) {
  if (position == 0) return false;
  size_t begin = position - 1;
  while (begin > 0 && (static_cast<unsigned char>(text[begin]) & 0xC0) == 0x80) --begin;
  const DecodedCodePoint decoded = decode_utf8(text, begin);
  if (begin + decoded.length != position || !is_unicode_whitespace(decoded.value)) return false;
  start = begin;
  return true;
}

bool is_word_character(char32_t c) {
  return c == '_' || unicode_class(c) == UnicodeClass::kLetter || unicode_class(c) == UnicodeClass::kNumber;
}

// A token named in tokenizer_config.json: a string, {"content": ...}, or null.
std::optional<std::string> config_token(const json& config, const char* key) {
  if (!config.is_object() || !config.contains(key)) return std::nullopt;
  const json& value = config[key];
  if (value.is_string()) return value.get<std::string>();
  if (value.is_object() && value.contains("content") && value["content"].is_string()) {
    return value["content"].get<std::string>();
  }
  return std::nullopt;
}

json read_gpt2_files(const fs::path& folder) {
  const fs::path merges_path = folder / "vocab.bpe";
  json merges = json::array();
  std::ifstream stream(merges_path);
  check(stream.good(), "cannot read vocab.bpe, ", merges_path.string());
  std::string line;
  while (std::getline(stream, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line.starts_with("#version")) continue;
    merges.push_back(line);
  }
  json vocab = read_json_file(folder / "encoder.json");
  json tokenizer = {
      {"model", {{"type", "BPE"}, {"vocab", std::move(vocab)}, {"merges", std::move(merges)}}},
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
      {"decoder", {{"type", "ByteLevel"}}},
      {"added_tokens", json::array()},
  };
  const json& encoder = tokenizer["model"]["vocab"];
  if (encoder.contains("<|endoftext|>")) {
    tokenizer["added_tokens"].push_back(
        {{"id", encoder["<|endoftext|>"]}, {"content", "<|endoftext|>"}, {"special", true}});
  }
  return tokenizer;
}

}  // namespace

// Keys of the wrong type (a string where a flag belongs) make nlohmann's value() and get() throw
// its own exceptions; the function-try-block turns them into the one-line error.
Tokenizer Tokenizer::from_json(const json& tokenizer_json, const json& tokenizer_config, std::string_view source_name) try {
  check(tokenizer_json.is_object() && tokenizer_json.contains("model"), "tokenizer has no model, ", source_name);
  Tokenizer tokenizer;

  const json& normalizer = tokenizer_json.value("normalizer", json());
  std::vector<json> normalizer_steps;
  if (normalizer.is_object() && normalizer.value("type", "") == "Sequence") {
    check(normalizer.contains("normalizers") && normalizer["normalizers"].is_array(),
          "normalizer Sequence without normalizers, ", source_name);
    for (const json& step : normalizer["normalizers"]) normalizer_steps.push_back(step);
  } else if (!normalizer.is_null()) {
    normalizer_steps.push_back(normalizer);
  }
  // How many times longer the steps can make a text in UTF-8 bytes, at most: Replace steps multiply,
  // and a handful of "a" -> "aaaaaaaa" would ask for gigabytes per line. Llama-2's Prepend + Replace
  // is 12-fold.
  constexpr int64_t kLargestGrowth = 256;
  int64_t growth = 1;
  for (const json& step : normalizer_steps) {
    const std::string type = step.is_object() ? step.value("type", "") : "";
    if (type == "NFC") {
      tokenizer.normalizer_.push_back({NormalizerStep::kNfc, "", ""});
      growth *= 3;
    } else if (type == "Prepend" && step.contains("prepend") && step["prepend"].is_string()) {
      tokenizer.normalizer_.push_back({NormalizerStep::kPrepend, "", step["prepend"]});
      growth += static_cast<int64_t>(tokenizer.normalizer_.back().to.size());
    } else if (type == "Replace" && step.contains("pattern") && step["pattern"].contains("String") &&
               step["pattern"]["String"].is_string() && step.contains("content") && step["content"].is_string() &&
               !step["pattern"]["String"].get<std::string>().empty()) {
      tokenizer.normalizer_.push_back({NormalizerStep::kReplace, step["pattern"]["String"], step["content"]});
      const NormalizerStep& replace = tokenizer.normalizer_.back();
      growth *= std::max<int64_t>(1, static_cast<int64_t>((replace.to.size() + replace.from.size() - 1) /
                                                           replace.from.size()));
    } else {
      fail("unsupported normalizer ", type.empty() ? step.dump() : type,
           " (supported: NFC, Prepend, Replace of a string), ", source_name);
    }
    check(growth <= kLargestGrowth, "the normalizer can make a text more than ", kLargestGrowth, " times longer, ",
          source_name);
  }

  bool byte_level = false;
  tokenizer.splits_ = parse_pre_tokenizer(tokenizer_json.value("pre_tokenizer", json()), byte_level, source_name);
  tokenizer.model_ = BpeModel::from_json(tokenizer_json["model"], byte_level, source_name);

  tokenizer.pieces_.resize(static_cast<size_t>(tokenizer.model_.size()));
  for (int32_t id = 0; id < tokenizer.model_.size(); ++id) tokenizer.pieces_[static_cast<size_t>(id)] = tokenizer.model_.piece(id);
  const json& added = tokenizer_json.value("added_tokens", json::array());
  check(added.is_array(), "added_tokens is not a list, ", source_name);
  for (const json& entry : added) {
    check(entry.is_object() && entry.contains("id") && entry["id"].is_number_integer() && entry.contains("content") &&
              entry["content"].is_string(),
          "an added token has no id or content, ", source_name);
    const int64_t id = entry["id"];
    const std::string content = entry["content"];
    check(id >= 0, "added token ", content, " has a bad id, ", source_name);
    check(id <= largest_token_id(static_cast<size_t>(tokenizer.model_.size()) + added.size()), "added token ", content,
          " has id ", id, ", far past the ", tokenizer.model_.size() + added.size(), " tokens of the vocabulary, ",
          source_name);
    check(!content.empty(), "an added token is empty, ", source_name);
    tokenizer.added_.push_back({content, static_cast<int32_t>(id), entry.value("lstrip", false),
                                entry.value("rstrip", false), entry.value("single_word", false)});
    if (static_cast<size_t>(id) >= tokenizer.pieces_.size()) tokenizer.pieces_.resize(static_cast<size_t>(id) + 1);
    tokenizer.pieces_[static_cast<size_t>(id)] = content;
  }
  std::stable_sort(tokenizer.added_.begin(), tokenizer.added_.end(),
                   [](const AddedToken& a, const AddedToken& b) { return a.content.size() > b.content.size(); });
  for (uint32_t index = 0; index < tokenizer.added_.size(); ++index) {
    tokenizer.added_by_first_byte_[static_cast<uint8_t>(tokenizer.added_[index].content[0])].push_back(index);
  }

  const json& decoder = tokenizer_json.value("decoder", json());
  if (!byte_level && decoder.is_object()) {
    std::vector<json> steps;
    if (decoder.value("type", "") == "Sequence" && decoder.contains("decoders")) {
      for (const json& step : decoder["decoders"]) steps.push_back(step);
    } else {
      steps.push_back(decoder);
    }
    for (const json& step : steps) {
      if (step.is_object() && step.value("type", "") == "Strip" && step.value("start", 0) >= 1) {
        tokenizer.strips_leading_space_ = true;
      }
    }
  }

  const auto token_id = [&](const std::string& text) -> std::optional<int32_t> {
    if (const auto id = tokenizer.added_token_id(text)) return id;
    return tokenizer.model_.find(text);
  };
  if (const auto bos = config_token(tokenizer_config, "bos_token")) tokenizer.bos_id_ = token_id(*bos);
  if (const auto eos = config_token(tokenizer_config, "eos_token")) tokenizer.eos_id_ = token_id(*eos);
  const json& post = tokenizer_json.value("post_processor", json());
  if (post.is_object() && post.value("type", "") == "TemplateProcessing" && post.contains("single") &&
      post["single"].is_array() && !post["single"].empty() && post["single"][0].contains("SpecialToken")) {
    const json& special = post["single"][0]["SpecialToken"];
    if (special.contains("id") && special["id"].is_string()) {
      const auto id = token_id(special["id"].get<std::string>());
      if (!tokenizer.bos_id_) tokenizer.bos_id_ = id;
      tokenizer.adds_bos_by_default_ = id.has_value() && id == tokenizer.bos_id_;
    }
  }
  if (tokenizer_config.is_object() && tokenizer_config.contains("add_bos_token") &&
      tokenizer_config["add_bos_token"].is_boolean()) {
    tokenizer.adds_bos_by_default_ = tokenizer_config["add_bos_token"].get<bool>() && tokenizer.bos_id_.has_value();
  }
  if (tokenizer.eos_id_) tokenizer.end_of_generation_ids_.push_back(*tokenizer.eos_id_);
  for (const std::string_view text : kEndOfTurnTokens) {
    if (const auto id = tokenizer.added_token_id(text)) tokenizer.end_of_generation_ids_.push_back(*id);
  }

  if (tokenizer_config.is_object() && tokenizer_config.contains("chat_template")) {
    const json& chat_template = tokenizer_config["chat_template"];
    if (chat_template.is_string()) {
      tokenizer.chat_template_ = chat_template;
    } else if (chat_template.is_array()) {
      for (const json& named : chat_template) {
        if (named.is_object() && named.value("name", "") == "default" && named.contains("template") &&
            named["template"].is_string()) {
          tokenizer.chat_template_ = named["template"];
        }
      }
    }
  }
  return tokenizer;
} catch (const nlohmann::json::exception& error) {
  fail("malformed tokenizer (", error.what(), "), ", source_name);
}

Tokenizer Tokenizer::from_folder(const fs::path& model_folder) {
  const fs::path tokenizer_path = model_folder / "tokenizer.json";
  if (!fs::exists(tokenizer_path) && fs::exists(model_folder / "encoder.json") &&
      fs::exists(model_folder / "vocab.bpe")) {
    const json config = {{"bos_token", "<|endoftext|>"}, {"eos_token", "<|endoftext|>"}};
    return from_json(read_gpt2_files(model_folder), config, (model_folder / "encoder.json").string());
  }
  check(fs::exists(tokenizer_path), "no tokenizer.json (or encoder.json + vocab.bpe) in the model folder, ",
        model_folder.string());
  return from_file(tokenizer_path);
}

Tokenizer Tokenizer::from_file(const fs::path& path) {
  check(fs::is_regular_file(path), "tokenizer file not found, ", path.string());
  if (path.extension() == ".gguf") {
    const GgufFile gguf = GgufFile::open(path);
    const HfTokenizerFiles files = gguf_to_hf_tokenizer(gguf.metadata(), path.string());
    return from_json(files.tokenizer, files.tokenizer_config, path.string());
  }
  const json tokenizer = read_json_file(path);
  const fs::path config_path = path.parent_path() / "tokenizer_config.json";
  const json config = fs::exists(config_path) ? read_json_file(config_path) : json();
  return from_json(tokenizer, config, path.string());
}

std::optional<int32_t> Tokenizer::added_token_id(std::string_view content) const {
  for (const AddedToken& token : added_) {
    if (token.content == content) return token.id;
  }
  return std::nullopt;
}

bool Tokenizer::is_end_of_generation(int32_t id) const {
  return std::find(end_of_generation_ids_.begin(), end_of_generation_ids_.end(), id) != end_of_generation_ids_.end();
}

std::string Tokenizer::normalize(std::string_view text) const {
  std::string out(text);
  for (const NormalizerStep& step : normalizer_) {
    if (step.kind == NormalizerStep::kNfc) {
      out = nfc_normalize(out);
    } else if (step.kind == NormalizerStep::kPrepend) {
      if (!out.empty()) out.insert(0, step.to);
    } else {
      std::string replaced;
      replaced.reserve(out.size() + out.size() / 2);
      for (size_t position = 0;;) {
        const size_t found = out.find(step.from, position);
        replaced.append(out, position, found == std::string::npos ? std::string::npos : found - position);
        if (found == std::string::npos) break;
        replaced += step.to;
        position = found + step.from.size();
      }
      out = std::move(replaced);
    }
  }
  return out;
}

Tokenizer::AddedMatch Tokenizer::next_added_token(std::string_view text, size_t position) const {
  for (; position < text.size(); ++position) {
    const auto& candidates = added_by_first_byte_[static_cast<uint8_t>(text[position])];
    for (const uint32_t index : candidates) {
      const AddedToken& token = added_[index];
      if (text.substr(position, token.content.size()) != token.content) continue;
      size_t begin = position, end = position + token.content.size();
      if (token.single_word) {
        size_t before = 0;
        if (position > 0) {
          before = position - 1;
          while (before > 0 && (static_cast<unsigned char>(text[before]) & 0xC0) == 0x80) --before;
        }
        if (position > 0 && is_word_character(decode_utf8(text, before).value)) continue;
        if (end < text.size() && is_word_character(decode_utf8(text, end).value)) continue;
      }
      if (token.left_strip) {
        size_t start = begin;
        while (whitespace_before(text, begin, start)) begin = start;
      }
      if (token.right_strip) {
        while (end < text.size()) {
          const DecodedCodePoint decoded = decode_utf8(text, end);
          if (!is_unicode_whitespace(decoded.value)) break;
          end += decoded.length;
        }
      }
      return {begin, end, token.id};
    }
  }
  return {text.size(), text.size(), -1};
}

void Tokenizer::encode_segment(std::string_view text, BpeScratch& scratch, std::vector<int32_t>& ids) const {
  std::vector<TextRange> pieces = {{0, text.size()}}, next;
  for (const SplitStep& step : splits_) {
    next.clear();
    for (const TextRange& range : pieces) split_text(step, text, range, next);
    pieces.swap(next);
  }
  for (const TextRange& range : pieces) model_.encode_word(text.substr(range.first, range.second - range.first), scratch, ids);
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_bos) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  if (add_bos && bos_id_) ids.push_back(*bos_id_);
  BpeScratch scratch;
  for (size_t position = 0; position < text.size();) {
    // A previous token's lstrip may not reach back past where the last segment ended.
    const AddedMatch match = next_added_token(text, position);
    const size_t segment_end = std::max(match.begin, position);
    if (segment_end > position) {
      const std::string_view segment = text.substr(position, segment_end - position);
      if (normalizer_.empty()) {
        encode_segment(segment, scratch, ids);
      } else {
        encode_segment(normalize(segment), scratch, ids);
      }
    }
    if (match.id < 0) break;
    ids.push_back(match.id);
    position = match.end;
  }
  return ids;
}

std::string Tokenizer::token_piece(int32_t id) const {
  if (id < 0 || id >= vocab_size()) return {};
  return pieces_[static_cast<size_t>(id)];
}

std::string Tokenizer::decode(std::span<const int32_t> ids) const {
  std::string text;
  for (const int32_t id : ids) {
    if (id >= 0 && id < vocab_size()) text += pieces_[static_cast<size_t>(id)];
  }
  if (strips_leading_space_ && !text.empty() && text[0] == ' ') text.erase(0, 1);
  return text;
}

}  // namespace hlwq
