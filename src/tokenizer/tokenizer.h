// The runtime tokenizer: text to ids and back for byte-level BPE (GPT-2, Llama-3, Qwen2/3,
// SmolLM) and SentencePiece-style BPE with byte fallback (Llama-2), loaded from a Hugging Face
// tokenizer.json (a GGUF vocabulary goes through gguf_to_hf_tokenizer first).
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "tokenizer/bpe_model.h"
#include "tokenizer/pre_tokenizer.h"

namespace hlwq {

class Tokenizer {
 public:
  // `tokenizer_config` (tokenizer_config.json) may be null; it names bos/eos and the chat
  // template. Throws hlwq::Error naming `source_name` for anything it cannot use.
  static Tokenizer from_json(const nlohmann::json& tokenizer_json, const nlohmann::json& tokenizer_config,
                             std::string_view source_name);
  // A folder with tokenizer.json (+ tokenizer_config.json), or GPT-2's encoder.json + vocab.bpe.
  static Tokenizer from_folder(const std::filesystem::path& model_folder);
  // A tokenizer.json (with tokenizer_config.json beside it, if any) or a .gguf file.
  static Tokenizer from_file(const std::filesystem::path& path);

  // Added and special tokens written in the text are parsed as such. `add_bos` prepends the BOS
  // id where the tokenizer has one.
  std::vector<int32_t> encode(std::string_view text, bool add_bos = false) const;
  // The tokens' bytes concatenated (special tokens included), then SentencePiece's leading space
  // removed where the decoder asks for it. The result may end inside a UTF-8 character.
  std::string decode(std::span<const int32_t> ids) const;
  // The raw bytes of one token (an added token's text; "" for ids outside the vocabulary).
  std::string token_piece(int32_t id) const;

  int32_t vocab_size() const { return static_cast<int32_t>(pieces_.size()); }
  std::optional<int32_t> bos_id() const { return bos_id_; }
  std::optional<int32_t> eos_id() const { return eos_id_; }
  // Whether the tokenizer's own post-processing (or tokenizer_config add_bos_token) adds BOS.
  bool adds_bos_by_default() const { return adds_bos_by_default_; }
  // eos and the end-of-turn tokens models stop at: <|im_end|>, <|eot_id|>, <|endoftext|>, ...
  bool is_end_of_generation(int32_t id) const;
  // An added token's id by its text.
  std::optional<int32_t> added_token_id(std::string_view content) const;
  // tokenizer_config.json's chat_template ("" when none).
  const std::string& chat_template() const { return chat_template_; }
  // Whether decoding drops the leading space SentencePiece-style normalization put in front.
  bool strips_leading_space() const { return strips_leading_space_; }

 private:
  struct AddedToken {
    std::string content;
    int32_t id;
    bool left_strip, right_strip, single_word;
  };
  struct NormalizerStep {
    enum Kind { kNfc, kPrepend, kReplace } kind;
    std::string from, to;
  };
  std::string normalize(std::string_view text) const;
  // Finds the next added token at or after `position`: its [begin, end) including stripped
  // whitespace, and its id; begin == text.size() when none.
  struct AddedMatch {
    size_t begin, end;
    int32_t id;
  };
  AddedMatch next_added_token(std::string_view text, size_t position) const;
  void encode_segment(std::string_view text, BpeScratch& scratch, std::vector<int32_t>& ids) const;

  BpeModel model_;
  std::vector<SplitStep> splits_;
  std::vector<NormalizerStep> normalizer_;
  std::vector<AddedToken> added_;                     // longest first
  std::array<std::vector<uint32_t>, 256> added_by_first_byte_;
  std::vector<std::string> pieces_;                   // every id's bytes, added tokens included
  std::vector<int32_t> end_of_generation_ids_;
  std::optional<int32_t> bos_id_, eos_id_;
  bool adds_bos_by_default_ = false;
  bool strips_leading_space_ = false;
  std::string chat_template_;
};

// Streams valid UTF-8: feed ids one at a time, get the complete characters so far. Bytes that
// cannot start or continue a character come out as U+FFFD.
class StreamingDecoder {
 public:
  explicit StreamingDecoder(const Tokenizer& tokenizer) : tokenizer_(&tokenizer) {}
  std::string push(int32_t id);
  // Whatever is held back (an incomplete character) as U+FFFD replacements.
  std::string flush();

 private:
  const Tokenizer* tokenizer_;
  std::string pending_;
  bool first_ = true;
};

}  // namespace hlwq
