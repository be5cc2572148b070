// Per-target SIMD packing and unpacking of one block of HLWQ codes, byte-identical to
// pack_block_codes / unpack_block_codes (layout in code_packing.h and docs/FORMAT.md). Every
// field of a plane is a contiguous run of codes, so one vector of plane bytes takes one shift,
// mask and OR per field. Include inside a Highway target loop, like any -inl.h header.

// Per-target include guard: re-included once per SIMD target.
#if defined(HLWQ_QUANT_CODE_PACKING_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef HLWQ_QUANT_CODE_PACKING_INL_H_
#undef HLWQ_QUANT_CODE_PACKING_INL_H_
#else
#define HLWQ_QUANT_CODE_PACKING_INL_H_
#endif

#include <cstddef>
#include <cstdint>

#include "hwy/highway.h"
#include "quant/code_packing.h"

HWY_BEFORE_NAMESPACE();
namespace hlwq {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// One plane of `bytes` bytes (a multiple of Lanes(d)): byte j gets field k = bits [shift, shift + width)
// of code j + k * bytes, at bit k * width.
template <class D>
HWY_INLINE void PackPlane(D d, const uint8_t* HWY_RESTRICT codes, size_t bytes, int shift, int width,
                          uint8_t* HWY_RESTRICT plane) {
  const auto mask = hn::Set(d, static_cast<uint8_t>((1u << width) - 1));
  const size_t fields = static_cast<size_t>(8 / width);
  for (size_t j = 0; j < bytes; j += hn::Lanes(d)) {
    auto packed = hn::Zero(d);
    for (size_t field = 0; field < fields; ++field) {
      const auto bits = hn::And(hn::ShiftRightSame(hn::LoadU(d, codes + field * bytes + j), shift), mask);
      packed = hn::Or(packed, hn::ShiftLeftSame(bits, static_cast<int>(field) * width));
    }
    hn::StoreU(packed, d, plane + j);
  }
}

// The inverse for one plane; the first plane (shift 0) stores, later planes OR into the codes.
template <class D>
HWY_INLINE void UnpackPlane(D d, const uint8_t* HWY_RESTRICT plane, size_t bytes, int shift, int width,
                            uint8_t* HWY_RESTRICT codes) {
  const auto mask = hn::Set(d, static_cast<uint8_t>((1u << width) - 1));
  const size_t fields = static_cast<size_t>(8 / width);
  for (size_t j = 0; j < bytes; j += hn::Lanes(d)) {
    const auto packed = hn::LoadU(d, plane + j);
    for (size_t field = 0; field < fields; ++field) {
      auto bits = hn::ShiftLeftSame(hn::And(hn::ShiftRightSame(packed, static_cast<int>(field) * width), mask), shift);
      uint8_t* destination = codes + field * bytes + j;
      if (shift != 0) bits = hn::Or(bits, hn::LoadU(d, destination));
      hn::StoreU(bits, d, destination);
    }
  }
}

// Codes of one block (block a multiple of 32, codes < 2^bits) into packed_block_bytes(bits, block) bytes.
HWY_INLINE void PackBlockCodes(int bits, const uint8_t* HWY_RESTRICT codes, size_t block,
                               uint8_t* HWY_RESTRICT packed) {
  const hn::ScalableTag<uint8_t> d_full;
  const hn::CappedTag<uint8_t, 16> d_medium;
  const hn::CappedTag<uint8_t, 4> d_small;  // every plane has a multiple of 4 bytes
  for (const CodePlane& plane : code_planes(bits)) {
    const size_t bytes = block * static_cast<size_t>(plane.width) / 8;
    if (bytes % hn::Lanes(d_full) == 0) {
      PackPlane(d_full, codes, bytes, plane.shift, plane.width, packed);
    } else if (bytes % hn::Lanes(d_medium) == 0) {
      PackPlane(d_medium, codes, bytes, plane.shift, plane.width, packed);
    } else {
      PackPlane(d_small, codes, bytes, plane.shift, plane.width, packed);
    }
    packed += bytes;
  }
}

HWY_INLINE void UnpackBlockCodes(int bits, const uint8_t* HWY_RESTRICT packed, size_t block,
                                 uint8_t* HWY_RESTRICT codes) {
  const hn::ScalableTag<uint8_t> d_full;
  const hn::CappedTag<uint8_t, 16> d_medium;
  const hn::CappedTag<uint8_t, 4> d_small;
  for (const CodePlane& plane : code_planes(bits)) {
    const size_t bytes = block * static_cast<size_t>(plane.width) / 8;
    if (bytes % hn::Lanes(d_full) == 0) {
      UnpackPlane(d_full, packed, bytes, plane.shift, plane.width, codes);
    } else if (bytes % hn::Lanes(d_medium) == 0) {
      UnpackPlane(d_medium, packed, bytes, plane.shift, plane.width, codes);
    } else {
      UnpackPlane(d_small, packed, bytes, plane.shift, plane.width, codes);
    }
    packed += bytes;
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace hlwq
HWY_AFTER_NAMESPACE();

#endif  // HLWQ_QUANT_CODE_PACKING_INL_H_
