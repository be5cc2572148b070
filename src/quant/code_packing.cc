// Plane-wise packing of HLWQ codes (layout in docs/FORMAT.md, "Packed HLWQ codes"). The loops run
// over contiguous bytes for one field at a time, which compilers vectorize.
#include "quant/code_packing.h"

#include <algorithm>

#include "core/error.h"

namespace hlwq {
namespace {

void check_block(int bits, size_t block, size_t packed_bytes) {
  check(bits >= 1 && bits <= 8, "internal: code bits must be 1..8, got ", bits);
  check(block > 0 && block % 8 == 0, "internal: packed block of ", block, " codes is not a multiple of 8");
  check(packed_bytes == block * static_cast<size_t>(bits) / 8, "internal: packed block of ", block, " ",
        bits, "-bit codes needs ", block * static_cast<size_t>(bits) / 8, " bytes, got ", packed_bytes);
}

}  // namespace

size_t packed_block_bytes(int bits, int block) {
  check(bits >= 1 && bits <= 8, "code bits must be 1..8, got ", bits);
  check(block > 0 && block % 8 == 0, "packed block of ", block, " codes is not a multiple of 8");
  return static_cast<size_t>(block) * static_cast<size_t>(bits) / 8;
}

void pack_block_codes(int bits, std::span<const uint8_t> codes, std::span<uint8_t> packed) {
  const size_t block = codes.size();
  check_block(bits, block, packed.size());
  std::fill(packed.begin(), packed.end(), uint8_t{0});
  uint8_t* plane_bytes = packed.data();
  for (const CodePlane& plane : code_planes(bits)) {
    const size_t width = static_cast<size_t>(plane.width);
    const size_t bytes = block * width / 8;
    const uint8_t mask = static_cast<uint8_t>((1u << width) - 1);
    for (size_t field = 0; field < 8 / width; ++field) {
      const uint8_t* source = codes.data() + field * bytes;
      for (size_t j = 0; j < bytes; ++j) {
        plane_bytes[j] |= static_cast<uint8_t>(((source[j] >> plane.shift) & mask) << (field * width));
      }
    }
    plane_bytes += bytes;
  }
}

void unpack_block_codes(int bits, std::span<const uint8_t> packed, std::span<uint8_t> codes) {
  const size_t block = codes.size();
  check_block(bits, block, packed.size());
  std::fill(codes.begin(), codes.end(), uint8_t{0});
  const uint8_t* plane_bytes = packed.data();
  for (const CodePlane& plane : code_planes(bits)) {
    const size_t width = static_cast<size_t>(plane.width);
    const size_t bytes = block * width / 8;
    const uint8_t mask = static_cast<uint8_t>((1u << width) - 1);
    for (size_t field = 0; field < 8 / width; ++field) {
      uint8_t* destination = codes.data() + field * bytes;
      for (size_t j = 0; j < bytes; ++j) {
        destination[j] |= static_cast<uint8_t>(((plane_bytes[j] >> (field * width)) & mask) << plane.shift);
      }
    }
    plane_bytes += bytes;
  }
}

}  // namespace hlwq
