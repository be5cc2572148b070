// BPE vocabulary loading and the merge loop: the lowest-ranked adjacent pair merges first, the
// leftmost one among equals, as Hugging Face `tokenizers` does. A binary heap keeps a word of n
// symbols at O(n log n), which matters for SentencePiece-style models where a whole line (or a
// whole file) is one word.
#include "tokenizer/bpe_model.h"

#include <algorithm>
#include <array>

#include "core/error.h"
#include "tokenizer/unicode.h"

namespace hlwq {
namespace {

using nlohmann::json;

constexpr std::string_view kSpaceMarker = "\xE2\x96\x81";  // U+2581, SentencePiece's space

constexpr bool is_printable_byte(int byte) {
  return (byte >= 33 && byte <= 126) || (byte >= 161 && byte <= 172) || (byte >= 174 && byte <= 255);
}

// "<0xNN>" -> NN, or -1.
int byte_fallback_value(std::string_view token) {
  if (token.size() != 6 || token.substr(0, 3) != "<0x" || token[5] != '>') return -1;
  int value = 0;
  for (const char c : token.substr(3, 2)) {
    value *= 16;
    if (c >= '0' && c <= '9') value += c - '0';
    else if (c >= 'A' && c <= 'F') value += c - 'A' + 10;
    else if (c >= 'a' && c <= 'f') value += c - 'a' + 10;
    else return -1;
  }
  return value;
}

// A vocabulary string in the byte alphabet, as raw bytes. Characters outside the alphabet (none in
// real byte-level vocabularies) are kept as their UTF-8.
std::string bytes_of_byte_level_token(std::string_view token) {
  std::string bytes;
  for (size_t position = 0; position < token.size();) {
    const DecodedCodePoint decoded = decode_utf8(token, position);
    const int byte = byte_from_printable(decoded.value);
    if (byte >= 0) bytes += static_cast<char>(byte);
    else bytes.append(token.substr(position, decoded.length));
    position += decoded.length;
  }
  return bytes;
}

std::string piece_of_sentencepiece_token(std::string_view token) {
  if (const int byte = byte_fallback_value(token); byte >= 0) return std::string(1, static_cast<char>(byte));
  std::string piece;
  for (size_t position = 0; position < token.size();) {
    if (token.substr(position, kSpaceMarker.size()) == kSpaceMarker) {
      piece += ' ';
      position += kSpaceMarker.size();
    } else {
      piece += token[position++];
    }
  }
  return piece;
}

}  // namespace

namespace {

// GPT-2's alphabet: printable bytes stand for themselves, the other 68 bytes, in order, for
// U+0100 onwards. Both directions as tables, built at compile time.
struct ByteAlphabet {
  std::array<char32_t, 256> printable{};
  std::array<int16_t, 256 + 68> byte{};
  constexpr ByteAlphabet() {
    for (int16_t& value : byte) value = -1;
    int shifted = 0;
    for (int value = 0; value < 256; ++value) {
      printable[static_cast<size_t>(value)] =
          is_printable_byte(value) ? static_cast<char32_t>(value) : static_cast<char32_t>(256 + shifted++);
      byte[printable[static_cast<size_t>(value)]] = static_cast<int16_t>(value);
    }
  }
};
constexpr ByteAlphabet kByteAlphabet;

}  // namespace

char32_t byte_to_printable(uint8_t byte) { return kByteAlphabet.printable[byte]; }

int byte_from_printable(char32_t code_point) {
  return code_point < kByteAlphabet.byte.size() ? kByteAlphabet.byte[code_point] : -1;
}

BpeModel BpeModel::from_json(const json& model, bool byte_level, std::string_view source_name) {
  check(model.is_object() && model.value("type", std::string("BPE")) == "BPE",
        "only BPE tokenizer models are supported, ", source_name);
  check(model.contains("vocab") && model["vocab"].is_object(), "tokenizer model has no vocab, ", source_name);
  check(model.contains("merges") && model["merges"].is_array(), "tokenizer model has no merges, ", source_name);
  BpeModel result;
  result.byte_level_ = byte_level;
  result.byte_fallback_ = model.value("byte_fallback", false);
  result.ignore_merges_ = model.value("ignore_merges", false);
  result.fuse_unknown_ = model.value("fuse_unk", false);
  result.byte_ids_.fill(-1);

  // Ids as the file spells the tokens, for resolving merges; encode_word's keys may differ.
  std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> ids_as_spelled;
  const json& vocab = model["vocab"];
  ids_as_spelled.reserve(vocab.size());
  result.ids_by_token_.reserve(vocab.size());
  int32_t largest = -1;
  for (const auto& [token, id_value] : vocab.items()) {
    check(id_value.is_number_integer() && id_value.get<int64_t>() >= 0, "token ", token, " has a bad id, ", source_name);
    check(id_value.get<int64_t>() <= largest_token_id(vocab.size()), "token ", token, " has id ", id_value.get<int64_t>(),
          ", far past the ", vocab.size(), " tokens of the vocabulary, ", source_name);
    const auto id = id_value.get<int32_t>();
    largest = std::max(largest, id);
    ids_as_spelled.emplace(token, id);
  }
  result.pieces_.resize(static_cast<size_t>(largest + 1));
  for (const auto& [token, id] : ids_as_spelled) {
    std::string key = byte_level ? bytes_of_byte_level_token(token) : token;
    result.pieces_[static_cast<size_t>(id)] = byte_level ? key : piece_of_sentencepiece_token(token);
    if (byte_level && key.size() == 1) result.byte_ids_[static_cast<uint8_t>(key[0])] = id;
    if (!byte_level) {
      if (const int byte = byte_fallback_value(token); byte >= 0) result.byte_ids_[static_cast<size_t>(byte)] = id;
    }
    result.ids_by_token_.emplace(std::move(key), id);
  }
  if (!byte_level) {
    result.splits_at_space_marker_ = std::none_of(ids_as_spelled.begin(), ids_as_spelled.end(), [](const auto& entry) {
      const std::string_view token = entry.first;
      for (size_t at = token.find(kSpaceMarker, 1); at != std::string_view::npos; at = token.find(kSpaceMarker, at + 1)) {
        if (at < kSpaceMarker.size() || token.substr(at - kSpaceMarker.size(), kSpaceMarker.size()) != kSpaceMarker) return true;
      }
      return false;
    });
  }
  if (model.contains("unk_token") && model["unk_token"].is_string()) {
    const auto found = ids_as_spelled.find(model["unk_token"].get<std::string>());
    check(found != ids_as_spelled.end(), "unk_token is not in the vocabulary, ", source_name);
    result.unknown_id_ = found->second;
  }

  const json& merges = model["merges"];
  result.merges_.reserve(merges.size());
  const auto id_of = [&](std::string_view token) {
    const auto found = ids_as_spelled.find(token);
    check(found != ids_as_spelled.end(), "merge names token ", token, " that is not in the vocabulary, ", source_name);
    return found->second;
  };
  std::string joined;
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const json& merge = merges[rank];
    std::string_view left, right;
    if (merge.is_string()) {
      const std::string_view text = merge.get_ref<const std::string&>();
      const size_t space = text.find(' ', 1);
      check(space != std::string_view::npos, "merge ", text, " is not two tokens, ", source_name);
      left = text.substr(0, space);
      right = text.substr(space + 1);
    } else {
      check(merge.is_array() && merge.size() == 2 && merge[0].is_string() && merge[1].is_string(),
            "a merge is neither \"a b\" nor [a, b], ", source_name);
      left = merge[0].get_ref<const std::string&>();
      right = merge[1].get_ref<const std::string&>();
    }
    joined.assign(left).append(right);
    const int32_t result_id = id_of(joined);
    // The first occurrence of a pair keeps its rank, as in HF.
    result.merges_.emplace(pair_key(id_of(left), id_of(right)), Merge{static_cast<int32_t>(rank), result_id});
  }
  return result;
}

std::optional<int32_t> BpeModel::find(std::string_view token) const {
  const auto found = ids_by_token_.find(token);
  if (found == ids_by_token_.end()) return std::nullopt;
  return found->second;
}

void BpeModel::initial_symbols(std::string_view word, BpeScratch& scratch) const {
  auto& symbols = scratch.symbols;
  symbols.clear();
  const auto append = [&](int32_t id) {
    const auto index = static_cast<int32_t>(symbols.size());
    symbols.push_back({id, index - 1, index + 1});
  };
  if (byte_level_) {
    for (const char c : word) {
      const int32_t id = byte_ids_[static_cast<uint8_t>(c)];
      if (id >= 0) append(id);
      else if (unknown_id_) append(*unknown_id_);
    }
  } else {
    bool previous_unknown = false;
    for (size_t position = 0; position < word.size();) {
      const uint32_t length = decode_utf8(word, position).length;
      const auto found = ids_by_token_.find(word.substr(position, length));
      if (found != ids_by_token_.end()) {
        append(found->second);
        previous_unknown = false;
      } else {
        bool all_bytes = byte_fallback_;
        for (uint32_t i = 0; i < length && all_bytes; ++i) {
          all_bytes = byte_ids_[static_cast<uint8_t>(word[position + i])] >= 0;
        }
        if (all_bytes) {
          for (uint32_t i = 0; i < length; ++i) append(byte_ids_[static_cast<uint8_t>(word[position + i])]);
          previous_unknown = false;
        } else if (unknown_id_) {
          if (!(fuse_unknown_ && previous_unknown)) append(*unknown_id_);
          previous_unknown = true;
        }
      }
      position += length;
    }
  }
  if (!symbols.empty()) symbols.back().next = -1;
}

void BpeModel::push_candidate(BpeScratch& scratch, int32_t position) const {
  const BpeScratch::Symbol& left = scratch.symbols[static_cast<size_t>(position)];
  if (left.next < 0) return;
  const auto found = merges_.find(pair_key(left.id, scratch.symbols[static_cast<size_t>(left.next)].id));
  if (found == merges_.end()) return;
  scratch.heap.push_back({found->second.rank, position, found->second.result});
  std::push_heap(scratch.heap.begin(), scratch.heap.end(), [](const auto& a, const auto& b) {
    return a.rank != b.rank ? a.rank > b.rank : a.position > b.position;
  });
}

void BpeModel::encode_word(std::string_view word, BpeScratch& scratch, std::vector<int32_t>& ids) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    if (const auto found = ids_by_token_.find(word); found != ids_by_token_.end()) {
      ids.push_back(found->second);
      return;
    }
  }
  if (!splits_at_space_marker_) {
    encode_chunk(word, scratch, ids);
    return;
  }
  // Chunks start at each U+2581 that follows another character.
  size_t chunk_start = 0;
  for (size_t at = word.find(kSpaceMarker, 1); at != std::string_view::npos; at = word.find(kSpaceMarker, at + 1)) {
    if (at >= kSpaceMarker.size() && word.substr(at - kSpaceMarker.size(), kSpaceMarker.size()) == kSpaceMarker) continue;
    encode_chunk(word.substr(chunk_start, at - chunk_start), scratch, ids);
    chunk_start = at;
  }
  encode_chunk(word.substr(chunk_start), scratch, ids);
}

void BpeModel::encode_chunk(std::string_view word, BpeScratch& scratch, std::vector<int32_t>& ids) const {
  if (word.empty()) return;
  // Long words (a SentencePiece line) rarely repeat; caching them would only cost memory.
  constexpr size_t kLongestCachedWord = 64;
  if (word.size() > kLongestCachedWord) {
    merge_word(word, scratch, ids);
    return;
  }
  if (const auto cached = scratch.cache.find(word); cached != scratch.cache.end()) {
    ids.insert(ids.end(), cached->second.begin(), cached->second.end());
    return;
  }
  const size_t first = ids.size();
  merge_word(word, scratch, ids);
  scratch.cache.emplace(std::string(word), std::vector<int32_t>(ids.begin() + static_cast<std::ptrdiff_t>(first), ids.end()));
}

void BpeModel::merge_word(std::string_view word, BpeScratch& scratch, std::vector<int32_t>& ids) const {
  initial_symbols(word, scratch);
  auto& symbols = scratch.symbols;
  scratch.heap.clear();
  const auto later = [](const BpeScratch::Candidate& a, const BpeScratch::Candidate& b) {
    return a.rank != b.rank ? a.rank > b.rank : a.position > b.position;
  };
  // All initial pairs at once: building the heap in O(n) beats n pushes for long words.
  for (size_t position = 0; position + 1 < symbols.size(); ++position) {
    const auto found = merges_.find(pair_key(symbols[position].id, symbols[position + 1].id));
    if (found != merges_.end()) scratch.heap.push_back({found->second.rank, static_cast<int32_t>(position), found->second.result});
  }
  std::make_heap(scratch.heap.begin(), scratch.heap.end(), later);
  constexpr int32_t kMerged = -1;  // id of a symbol absorbed into its left neighbour
  while (!scratch.heap.empty()) {
    std::pop_heap(scratch.heap.begin(), scratch.heap.end(), later);
    const BpeScratch::Candidate top = scratch.heap.back();
    scratch.heap.pop_back();
    BpeScratch::Symbol& left = symbols[static_cast<size_t>(top.position)];
    if (left.id == kMerged || left.next < 0) continue;
    BpeScratch::Symbol& right = symbols[static_cast<size_t>(left.next)];
    const auto found = merges_.find(pair_key(left.id, right.id));
    if (found == merges_.end() || found->second.result != top.result) continue;  // stale entry
    left.id = top.result;
    left.next = right.next;
    right.id = kMerged;
    if (left.next >= 0) symbols[static_cast<size_t>(left.next)].previous = top.position;
    if (left.previous >= 0) push_candidate(scratch, left.previous);
    push_candidate(scratch, top.position);
  }
  for (int32_t position = symbols.empty() ? -1 : 0; position >= 0; position = symbols[static_cast<size_t>(position)].next) {
    ids.push_back(symbols[static_cast<size_t>(position)].id);
  }
}

}  // namespace hlwq
