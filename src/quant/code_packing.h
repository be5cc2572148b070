// Bit packing of HLWQ codes: exactly `bits` bits per code, split into 4-, 2- and 1-bit planes so
// that a SIMD or GPU decoder unpacks whole vectors with one shift and mask per plane.
#pragma once

#include <cstddef>
#include <cstdint>
#include <array>
#include <span>

namespace hlwq {

// One plane of a packed block: bits [shift, shift + width) of every code.
struct CodePlane {
  int shift = 0;  // lowest code bit held by this plane
  int width = 0;  // 4, 2 or 1
};

// The planes of one code width (at most 3; a plain array so packing never allocates).
struct CodePlanes {
  std::array<CodePlane, 3> planes{};
  int count = 0;
  constexpr const CodePlane* begin() const { return planes.data(); }
  constexpr const CodePlane* end() const { return planes.data() + count; }
};

// Greedy split from the lowest bit upward: 8 = 4+4, 7 = 4+2+1, 6 = 4+2, 5 = 4+1, 4 = 4, 3 = 2+1,
// 2 = 2, 1 = 1. Inline: the SIMD kernels call it per block. bits outside 1..8 give no planes
// (the public functions below check bits first).
constexpr CodePlanes code_planes(int bits) {
  CodePlanes planes;
  if (bits < 1 || bits > 8) return planes;
  int shift = 0;
  for (int width : {4, 2, 1}) {
    while (bits - shift >= width) {
      planes.planes[static_cast<size_t>(planes.count++)] = {shift, width};
      shift += width;
    }
  }
  return planes;
}

// Bytes of one packed block of `block` codes (a multiple of 8): block * bits / 8.
size_t packed_block_bytes(int bits, int block);

// Packs codes.size() (= block, a multiple of 8) codes; bits above `bits` are ignored.
// In a plane of width w and B = block * w / 8 bytes, field k of byte j (bits [k w, k w + w))
// holds the plane's bits of code j + k B. Planes follow one another, lowest code bits first.
void pack_block_codes(int bits, std::span<const uint8_t> codes, std::span<uint8_t> packed);
void unpack_block_codes(int bits, std::span<const uint8_t> packed, std::span<uint8_t> codes);

}  // namespace hlwq
