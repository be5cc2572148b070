// The BPE model of a tokenizer.json: vocabulary, ranked merges and the merge loop that turns one
// pre-tokenized word into ids. Byte-level vocabularies (GPT-2's printable-byte alphabet) are
// stored as raw bytes so words are merged straight from the input text.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

namespace hlwq {

// std::hash over string_view, so maps keyed by std::string can be searched without a copy.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view text) const { return std::hash<std::string_view>{}(text); }
};
using StringMap = std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>>;

// Buffers the merge loop reuses from word to word (one per encode call, so encoding stays const
// and thread-safe).
struct BpeScratch {
  struct Symbol {
    int32_t id, previous, next;
  };
  struct Candidate {
    int32_t rank, position, result;
  };
  std::vector<Symbol> symbols;
  std::vector<Candidate> heap;
  // Ids of the short words seen so far: running text repeats most words, and a hit skips merging.
  StringMap cache;
};

// The largest id a tokenizer with `token_count` tokens may use. Ids may leave gaps, but not so many
// that the id-indexed tables outgrow the file: one hostile id of 2^30 would ask for 32 GB.
constexpr int64_t largest_token_id(size_t token_count) { return 2 * static_cast<int64_t>(token_count) + 1024; }

class BpeModel {
 public:
  // `model` is tokenizer.json's "model" (type BPE). With `byte_level`, vocabulary strings are in
  // GPT-2's byte alphabet and are decoded to raw bytes. Throws hlwq::Error naming `source_name`
  // for a missing vocabulary, merges naming unknown tokens or an unknown model type.
  static BpeModel from_json(const nlohmann::json& model, bool byte_level, std::string_view source_name);

  // Appends the ids of one word: raw bytes for byte-level models, normalized text otherwise.
  void encode_word(std::string_view word, BpeScratch& scratch, std::vector<int32_t>& ids) const;

  // The id of a vocabulary entry, given in the form encode_word takes.
  std::optional<int32_t> find(std::string_view token) const;

  // One past the largest id in the vocabulary.
  int32_t size() const { return static_cast<int32_t>(pieces_.size()); }

  // The bytes an id stands for: raw bytes for byte-level models; for SentencePiece-style ones,
  // with U+2581 as a space and "<0xNN>" as byte NN. Empty for ids the vocabulary skips.
  const std::string& piece(int32_t id) const { return pieces_[static_cast<size_t>(id)]; }

 private:
  struct Merge {
    int32_t rank, result;
  };
  static uint64_t pair_key(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
  }
  void initial_symbols(std::string_view word, BpeScratch& scratch) const;
  void merge_word(std::string_view word, BpeScratch& scratch, std::vector<int32_t>& ids) const;
  void encode_chunk(std::string_view word, BpeScratch& scratch, std::vector<int32_t>& ids) const;
  void push_candidate(BpeScratch& scratch, int32_t position) const;

  std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> ids_by_token_;
  std::vector<std::string> pieces_;
  std::unordered_map<uint64_t, Merge> merges_;
  std::array<int32_t, 256> byte_ids_{};  // byte-level: each byte's token; else "<0xNN>", or -1
  bool byte_level_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
  bool fuse_unknown_ = false;
  // SentencePiece-style vocabularies where no token has U+2581 right after another character
  // (true for Llama-2): no merge can cross the start of a "▁word", so a long word is merged one
  // such chunk at a time, with the same result and each chunk cacheable.
  bool splits_at_space_marker_ = false;
  std::optional<int32_t> unknown_id_;
};

// GPT-2's map from bytes to printable code points, and its inverse (-1 for other code points).
char32_t byte_to_printable(uint8_t byte);
int byte_from_printable(char32_t code_point);

}  // namespace hlwq
