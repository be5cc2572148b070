// Packs small unsigned codes into uint32 words as one LSB-first bit stream, the layout MLX
// (every bit width) and compressed-tensors' pack-quantized (4 bits) both store.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "core/error.h"

namespace hlwq {

// Code i occupies stream bits [i*bits, (i+1)*bits); stream bit b is bit (b % 32) of word b / 32.
// For 3, 5 and 6 bits a code may straddle two words: its low part ends one word, its high part
// starts the next. Requires codes.size() * bits == words.size() * 32; codes must be < 2^bits.
inline void pack_lsb_first(std::span<const uint8_t> codes, int bits, std::span<uint32_t> words) {
  check(bits >= 1 && bits <= 8 && codes.size() * static_cast<size_t>(bits) == words.size() * 32,
        "bit packing needs codes * bits == words * 32, got ", codes.size(), " codes of ", bits, " bits for ",
        words.size(), " words");
  uint64_t pending = 0;  // bits not yet written, lowest first
  int pending_bits = 0;
  size_t word = 0;
  for (const uint8_t code : codes) {
    pending |= static_cast<uint64_t>(code) << pending_bits;
    pending_bits += bits;
    if (pending_bits >= 32) {
      words[word++] = static_cast<uint32_t>(pending);
      pending >>= 32;
      pending_bits -= 32;
    }
  }
}

// Inverse of pack_lsb_first.
inline void unpack_lsb_first(std::span<const uint32_t> words, int bits, std::span<uint8_t> codes) {
  check(bits >= 1 && bits <= 8 && codes.size() * static_cast<size_t>(bits) == words.size() * 32,
        "bit unpacking needs codes * bits == words * 32, got ", codes.size(), " codes of ", bits,
        " bits for ", words.size(), " words");
  const uint64_t mask = (uint64_t{1} << bits) - 1;
  uint64_t available = 0;
  int available_bits = 0;
  size_t word = 0;
  for (uint8_t& code : codes) {
    if (available_bits < bits) {
      available |= static_cast<uint64_t>(words[word++]) << available_bits;
      available_bits += 32;
    }
    code = static_cast<uint8_t>(available & mask);
    available >>= bits;
    available_bits -= bits;
  }
}

}  // namespace hlwq
