// The bit planes of an HLWQ block (docs/FORMAT.md) as compile-time geometry per code width, for
// the kernels that decode codes straight from the planes. A block of d codes of B bits is split,
// lowest bits first, into planes of 4, 2 and 1 bits; a plane of width w holds P = d w / 8 bytes,
// and field k of its byte j is bits of code j + k P. So a run of U bytes of the first plane at
// offset j gives, per field k, the codes j + k P0 .. j + k P0 + U - 1, and every other plane p has
// the matching bits in U bytes at offset j mod P_p, field j / P_p + k P0 / P_p (when U <= P_p).
#pragma once

#include <cstdint>

namespace hlwq::cuda::kernels {

struct PlaneGeometry {
  int count = 0;
  int width[3] = {0, 0, 0};       // bits per field
  int first_bit[3] = {0, 0, 0};   // lowest code bit the plane holds
};

__host__ __device__ constexpr PlaneGeometry plane_geometry(int bits) {
  PlaneGeometry geometry;
  int bit = 0;
  constexpr int kWidths[3] = {4, 2, 1};
  for (int width : kWidths) {
    while (bits - bit >= width) {
      geometry.width[geometry.count] = width;
      geometry.first_bit[geometry.count] = bit;
      ++geometry.count;
      bit += width;
    }
  }
  return geometry;
}

static_assert(plane_geometry(8).count == 2 && plane_geometry(8).width[1] == 4);
static_assert(plane_geometry(7).count == 3 && plane_geometry(7).width[2] == 1 && plane_geometry(7).first_bit[2] == 6);
static_assert(plane_geometry(3).count == 2 && plane_geometry(3).width[0] == 2 && plane_geometry(3).first_bit[1] == 2);

// Bytes of plane `index` in a block of `block` codes, and the plane's offset in the block.
__host__ __device__ constexpr int64_t plane_bytes(const PlaneGeometry& geometry, int index, int block) {
  return static_cast<int64_t>(block) * geometry.width[index] / 8;
}
__host__ __device__ constexpr int64_t plane_offset(const PlaneGeometry& geometry, int index, int block) {
  int64_t offset = 0;
  for (int i = 0; i < index; ++i) offset += plane_bytes(geometry, i, block);
  return offset;
}

// The unit (bytes of the first plane one thread decodes at a time) for a width and block: 16 bytes
// when every plane has at least 16 (one 16-byte load per plane), else the narrowest plane's bytes
// (Q3/Q5/Q7 at blocks 32 and 64, Q2/Q6 at 32).
constexpr int unit_bytes(int bits, int block) {
  const PlaneGeometry geometry = plane_geometry(bits);
  int64_t smallest = plane_bytes(geometry, 0, block);
  for (int i = 1; i < geometry.count; ++i) {
    if (plane_bytes(geometry, i, block) < smallest) smallest = plane_bytes(geometry, i, block);
  }
  return smallest >= 16 ? 16 : static_cast<int>(smallest);
}

// Whether a block size is a power of two in [smallest, largest] (the kernels index blocks by shifts).
constexpr bool power_of_two_block(int block, int smallest, int largest) {
  return block >= smallest && block <= largest && (block & (block - 1)) == 0;
}

// log2 of a power-of-two block.
constexpr int log2_of_block(int block) {
  int log = 0;
  while ((1 << log) < block) ++log;
  return log;
}

}  // namespace hlwq::cuda::kernels
