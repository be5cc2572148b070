// StreamingDecoder: token bytes are held back until they complete a UTF-8 character, so a
// character split over several byte tokens (emoji, CJK under byte-level BPE) prints whole.
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace hlwq {
namespace {

constexpr std::string_view kReplacementUtf8 = "\xEF\xBF\xBD";

uint32_t expected_length(unsigned char lead) {
  if ((lead & 0xE0) == 0xC0) return 2;
  if ((lead & 0xF0) == 0xE0) return 3;
  if ((lead & 0xF8) == 0xF0) return 4;
  return 1;
}

// Whether bytes [position, end) could be the start of a valid character that is still incomplete.
bool is_incomplete_prefix(std::string_view text, size_t position) {
  const auto lead = static_cast<unsigned char>(text[position]);
  const uint32_t length = expected_length(lead);
  if (length == 1 || position + length <= text.size()) return false;
  for (size_t i = position + 1; i < text.size(); ++i) {
    if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) return false;
  }
  return true;
}

}  // namespace

std::string StreamingDecoder::push(int32_t id) {
  if (first_) {
    const int32_t ids[1] = {id};
    pending_ += tokenizer_->decode(ids);
    first_ = false;
  } else {
    pending_ += tokenizer_->token_piece(id);
  }
  std::string out;
  size_t position = 0;
  while (position < pending_.size()) {
    if (is_incomplete_prefix(pending_, position)) break;
    const DecodedCodePoint decoded = decode_utf8(pending_, position);
    const bool invalid = decoded.length == 1 && static_cast<unsigned char>(pending_[position]) >= 0x80;
    if (invalid) out += kReplacementUtf8;
    else out.append(pending_, position, decoded.length);
    position += decoded.length;
  }
  pending_.erase(0, position);
  return out;
}

std::string StreamingDecoder::flush() {
  // Only one incomplete character can be held back: everything before it was sent.
  std::string out = pending_.empty() ? "" : std::string(kReplacementUtf8);
  pending_.clear();
  return out;
}

}  // namespace hlwq
