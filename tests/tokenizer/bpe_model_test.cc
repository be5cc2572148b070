// The heap-based merge loop against a plain one (scan for the lowest-ranked pair, leftmost on
// ties, merge, repeat) on random vocabularies and words, plus byte fallback and unknown fusing.
#include "tokenizer/bpe_model.h"

#include <gtest/gtest.h>

#include <map>
#include <random>

namespace hlwq {
namespace {

using nlohmann::json;

// The plain reference: O(n^2) per word, written from the definition of BPE merging.
std::vector<std::string> reference_merge(const std::string& word, const std::vector<std::pair<std::string, std::string>>& merges) {
  std::vector<std::string> symbols;
  for (const char c : word) symbols.emplace_back(1, c);
  for (;;) {
    size_t best_rank = merges.size(), best_position = 0;
    for (size_t i = 0; i + 1 < symbols.size(); ++i) {
      for (size_t rank = 0; rank < best_rank; ++rank) {
        if (merges[rank].first == symbols[i] && merges[rank].second == symbols[i + 1]) {
          best_rank = rank;
          best_position = i;
          break;
        }
      }
    }
    if (best_rank == merges.size()) return symbols;
    symbols[best_position] += symbols[best_position + 1];
    symbols.erase(symbols.begin() + static_cast<std::ptrdiff_t>(best_position) + 1);
  }
}

TEST(BpeModel, MatchesPlainMergingOnRandomVocabularies) {
  std::mt19937 random(7);
  for (int trial = 0; trial < 40; ++trial) {
    // Alphabet a-d; merges built from random pairs of existing tokens, so ranks need not follow
    // creation order (as in vocabularies rebuilt from SentencePiece scores).
    std::vector<std::string> tokens = {"a", "b", "c", "d"};
    std::vector<std::pair<std::string, std::string>> merges;
    std::map<std::string, int> ids = {{"a", 0}, {"b", 1}, {"c", 2}, {"d", 3}};
    for (int i = 0; i < 30; ++i) {
      const std::string& left = tokens[random() % tokens.size()];
      const std::string& right = tokens[random() % tokens.size()];
      const std::string joined = left + right;
      if (joined.size() > 6 || ids.count(joined)) continue;
      merges.emplace_back(left, right);
      ids[joined] = static_cast<int>(tokens.size());
      tokens.push_back(joined);
    }
    std::shuffle(merges.begin(), merges.end(), random);
    json vocab = json::object();
    for (const auto& [token, id] : ids) vocab[token] = id;
    json merge_list = json::array();
    for (const auto& [left, right] : merges) merge_list.push_back(left + " " + right);
    const BpeModel model = BpeModel::from_json({{"type", "BPE"}, {"vocab", vocab}, {"merges", merge_list}}, false, "t");
    BpeScratch scratch;
    for (int word_index = 0; word_index < 50; ++word_index) {
      std::string word;
      const size_t length = 1 + random() % 80;  // past the cache limit too
      for (size_t i = 0; i < length; ++i) word += static_cast<char>('a' + random() % 4);
      std::vector<int32_t> expected;
      for (const std::string& symbol : reference_merge(word, merges)) expected.push_back(ids.at(symbol));
      std::vector<int32_t> got;
      model.encode_word(word, scratch, got);
      ASSERT_EQ(got, expected) << word;
      got.clear();
      model.encode_word(word, scratch, got);  // a second time, from the cache
      ASSERT_EQ(got, expected) << word;
    }
  }
}

TEST(BpeModel, ByteFallbackAndUnknown) {
  json vocab = {{"<unk>", 0}, {"a", 1}, {"\xE2\x96\x81", 2}};
  for (int byte = 0; byte < 256; ++byte) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", byte);
    vocab[name] = 3 + byte;
  }
  const BpeModel fallback = BpeModel::from_json(
      {{"type", "BPE"}, {"vocab", vocab}, {"merges", json::array()}, {"byte_fallback", true}, {"unk_token", "<unk>"}}, false, "t");
  BpeScratch scratch;
  std::vector<int32_t> ids;
  fallback.encode_word("a\xC3\xA9", scratch, ids);  // é is not in the vocabulary: its two bytes
  EXPECT_EQ(ids, (std::vector<int32_t>{1, 3 + 0xC3, 3 + 0xA9}));
  EXPECT_EQ(fallback.piece(3 + 0xC3), "\xC3");
  EXPECT_EQ(fallback.piece(2), " ");

  const BpeModel fused = BpeModel::from_json(
      {{"type", "BPE"}, {"vocab", {{"<unk>", 0}, {"a", 1}}}, {"merges", json::array()}, {"fuse_unk", true}, {"unk_token", "<unk>"}},
      false, "t");
  ids.clear();
  fused.encode_word("xya\xC3\xA9z", scratch, ids);
  EXPECT_EQ(ids, (std::vector<int32_t>{0, 1, 0}));
}

// Merging "▁word" chunks separately is only allowed when no token has ▁ after another character.
TEST(BpeModel, SpaceMarkerChunksOnlyWhenNoTokenCrossesThem) {
  const std::string marker = "\xE2\x96\x81";
  const json chunkable = {{"a", 0}, {marker, 1}, {marker + "a", 2}};
  const BpeModel split = BpeModel::from_json(
      {{"type", "BPE"}, {"vocab", chunkable}, {"merges", {marker + " a"}}}, false, "t");
  BpeScratch scratch;
  std::vector<int32_t> ids;
  split.encode_word(marker + "a" + marker + "a" + marker + marker + "a", scratch, ids);
  EXPECT_EQ(ids, (std::vector<int32_t>{2, 2, 1, 2}));
  // With "a▁" ranked first, a merge crosses the chunk start: [a▁, a], not [a, ▁a].
  const json crossing = {{"a", 0}, {marker, 1}, {marker + "a", 2}, {"a" + marker, 3}};
  const BpeModel whole = BpeModel::from_json(
      {{"type", "BPE"}, {"vocab", crossing}, {"merges", {"a " + marker, marker + " a"}}}, false, "t");
  ids.clear();
  whole.encode_word("a" + marker + "a", scratch, ids);
  EXPECT_EQ(ids, (std::vector<int32_t>{3, 0}));
}

TEST(BpeModel, ByteAlphabetRoundTrips) {
  for (int byte = 0; byte < 256; ++byte) {
    EXPECT_EQ(byte_from_printable(byte_to_printable(static_cast<uint8_t>(byte))), byte);
  }
  EXPECT_EQ(byte_to_printable(' '), 0x120u);  // GPT-2's "Ġ"
  EXPECT_EQ(byte_to_printable('\n'), 0x10Au);  // "Ċ"
  EXPECT_EQ(byte_from_printable(0x3000), -1);
}

}  // namespace
}  // namespace hlwq
