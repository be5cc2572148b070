// HLWQ linear product without dequantizing: the activations are rotated once per call into the
// codes' domain (x' = H(s * x_block), orthonormal; x' = x for rotation none), then each weight row
// is its codes' centroids (decoded with SIMD shifts, masks and lane permutations) times the block
// gains / sqrt(d), dotted with x'. One kernel for every codebook and rotation.
#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstring>
#include <memory>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/error.h"
#include "hwy/aligned_allocator.h"
#include "hwy/cache_control.h"
#include "ops/cpu/hlwq_q8_byte_lookup.h"
#include "ops/cpu/linear_kernels.h"
#include "ops/cpu/parallel_rows.h"
#include "quant/code_packing.h"
#include "quant/hadamard.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "ops/cpu/hlwq_linear.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "ops/cpu/row_product-inl.h"
#include "quant/code_packing-inl.h"

HWY_BEFORE_NAMESPACE();
namespace hlwq {
namespace HWY_NAMESPACE {

constexpr size_t kMaxBlock = 1024;
// How far ahead of the block being decoded its codes are prefetched.
constexpr size_t kPrefetchBytes = 1024;

// The codebook zero-padded to 256 entries plus a vector, so table vectors and gathers stay inside.
struct Centroids {
  HWY_ALIGN float values[256 + 64];
  size_t levels;
  explicit Centroids(const std::vector<float>& centroids) : levels(centroids.size()) {
    std::fill(std::copy(centroids.begin(), centroids.end(), values), values + 256 + 64, 0.0f);
  }
};

// fp16 bits to float, inline: a call per block inside the kernels would make the compiler keep
// every vector accumulator in memory (all vector registers are caller-saved). Shifting exponent
// and mantissa into float position and multiplying by 2^112 rebiases normals and subnormals alike.
HWY_INLINE float HalfToFloat(uint16_t half) {
  const uint32_t magnitude = half & 0x7fffu;
  const uint32_t sign = static_cast<uint32_t>(half & 0x8000u) << 16;
  const uint32_t bits = magnitude >= 0x7c00u  // infinity or NaN: all-ones exponent
                            ? 0x7f800000u | ((magnitude & 0x3ffu) << 13)
                            : std::bit_cast<uint32_t>(std::bit_cast<float>(magnitude << 13) * 0x1p112f);
  return std::bit_cast<float>(bits | sign);
}

// How c[code] is looked up, fixed per call so the inner loops carry no branch: one lane
// permutation when the codebook fits a vector (Q4 on AVX-512), two vectors (AVX-512: one
// two-table permutation, vpermt2ps, for Q5; elsewhere two permutations and a blend, e.g. Q4 on
// AVX2), four vectors on AVX-512 (Q6: two vpermt2ps and a blend), a gather otherwise (Q7 and Q8;
// Q6 on AVX2). The four-vector lookup made Q6 decode 1.5x faster than the gather on the development
// VM's Xeon; for Q8, eight vpermt2ps and seven blends were 10% slower than the gather, and CPUs with
// AVX-512 VBMI take Q8 elsewhere (hlwq_q8_byte_lookup.cc: byte planes, 64 codes a permutation).
enum class Lookup { kOneVector, kTwoVectors, kFourVectors, kGather };

HWY_INLINE Lookup LookupFor(const Centroids& table, size_t lanes) {
  if (table.levels <= lanes) return Lookup::kOneVector;
  if (table.levels <= 2 * lanes) return Lookup::kTwoVectors;
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
  if (lanes == 16 && table.levels <= 64) return Lookup::kFourVectors;
#endif
  return Lookup::kGather;
}

#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
// c[index] for indices below 64 in 512-bit registers: vpermt2ps reads the low 5 bits, so each
// pair of table vectors gives one half's candidates, and bit 5 picks between them.
HWY_INLINE __m512 LookupFourVectors(const float* HWY_RESTRICT table, __m512i index) {
  const __m512 low = _mm512_permutex2var_ps(_mm512_load_ps(table), index, _mm512_load_ps(table + 16));
  const __m512 high = _mm512_permutex2var_ps(_mm512_load_ps(table + 32), index, _mm512_load_ps(table + 48));
  return _mm512_mask_blend_ps(_mm512_test_epi32_mask(index, _mm512_set1_epi32(32)), low, high);
}
#endif

template <Lookup kLookup, class D>
HWY_INLINE hn::Vec<D> LookupCentroids(D d, const Centroids& table, hn::Vec<hn::RebindToSigned<D>> code) {
  const hn::RebindToSigned<D> di;
  const size_t lanes = hn::Lanes(d);
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
  // 8-lane vectors on AVX-512 (blocks whose planes do not hold whole 16-lane vectors, e.g. Q7 at
  // block 64): the lookup kind was chosen for 16 lanes, so permute within 512-bit tables and keep
  // the lower half. The upper index lanes are undefined and their results unused.
  if constexpr (kLookup == Lookup::kFourVectors) {  // no other target takes it
    if constexpr (sizeof(hn::Vec<D>) == 32) {
      return hn::Vec<D>{_mm512_castps512_ps256(LookupFourVectors(table.values, _mm512_castsi256_si512(code.raw)))};
    } else {
      return hn::Vec<D>{LookupFourVectors(table.values, code.raw)};
    }
  } else if constexpr (sizeof(hn::Vec<D>) == 32 && kLookup != Lookup::kGather) {
    const __m512i index = _mm512_castsi256_si512(code.raw);
    const __m512 low_table = _mm512_load_ps(table.values);
    if constexpr (kLookup == Lookup::kOneVector) {
      return hn::Vec<D>{_mm512_castps512_ps256(_mm512_permutexvar_ps(index, low_table))};
    } else {
      return hn::Vec<D>{_mm512_castps512_ps256(
          _mm512_permutex2var_ps(low_table, index, _mm512_load_ps(table.values + 16)))};
    }
  }
#endif
  if constexpr (kLookup == Lookup::kOneVector) {
    return hn::TableLookupLanes(hn::Load(d, table.values), hn::IndicesFromVec(d, code));
  } else if constexpr (kLookup == Lookup::kTwoVectors) {
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
    if constexpr (sizeof(hn::Vec<D>) == 64) {
      return hn::Vec<D>{_mm512_permutex2var_ps(hn::Load(d, table.values).raw, code.raw,
                                               hn::Load(d, table.values + lanes).raw)};
    }
#endif
    const auto lane = hn::IndicesFromVec(d, hn::And(code, hn::Set(di, static_cast<int32_t>(lanes - 1))));
    const auto in_upper = hn::RebindMask(d, hn::Gt(code, hn::Set(di, static_cast<int32_t>(lanes - 1))));
    return hn::IfThenElse(in_upper, hn::TableLookupLanes(hn::Load(d, table.values + lanes), lane),
                          hn::TableLookupLanes(hn::Load(d, table.values), lane));
  } else {
    return hn::GatherIndex(d, table.values, code);
  }
}

// Any codebook size, with a branch per vector (the 2- and 3-bit decode, whose codebooks fit one
// vector on every target but the scalar one).
template <class D>
HWY_INLINE hn::Vec<D> LookupCentroids(D d, const Centroids& table, hn::Vec<hn::RebindToSigned<D>> code) {
  switch (LookupFor(table, hn::Lanes(d))) {
    case Lookup::kOneVector: return LookupCentroids<Lookup::kOneVector>(d, table, code);
    case Lookup::kTwoVectors: return LookupCentroids<Lookup::kTwoVectors>(d, table, code);
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
    case Lookup::kFourVectors: return LookupCentroids<Lookup::kFourVectors>(d, table, code);
#endif
    default: return LookupCentroids<Lookup::kGather>(d, table, code);
  }
}

// Row r in the rotated domain: norm_b / sqrt(d) * c[q] for every code of every block (padding included).
template <Lookup kLookup>
void DecodeRotatedRow(const HlwqCodec& codec, const Centroids& centroids, const uint8_t* HWY_RESTRICT codes_row,
                      const uint16_t* HWY_RESTRICT norms_row, float* HWY_RESTRICT out) {
  const hn::ScalableTag<float> d;
  const hn::RebindToSigned<decltype(d)> di;
  const hn::Rebind<uint8_t, decltype(d)> du8;
  const size_t lanes = hn::Lanes(d);
  const HlwqParams& params = codec.params();
  const size_t block = static_cast<size_t>(params.block);
  const size_t packed_bytes = packed_block_bytes(params.bits, params.block);
  const float inverse_root = static_cast<float>(1.0 / std::sqrt(static_cast<double>(block)));
  HWY_ALIGN uint8_t codes[kMaxBlock];
  for (int64_t b = 0; b < codec.layout().blocks; ++b) {
    UnpackBlockCodes(params.bits, codes_row + b * packed_bytes, block, codes);
    const auto scale = hn::Set(d, HalfToFloat(norms_row[b]) * inverse_root);
    float* block_out = out + b * block;
    for (size_t i = 0; i < block; i += lanes) {
      const auto code = hn::PromoteTo(di, hn::LoadU(du8, codes + i));
      hn::StoreU(hn::Mul(LookupCentroids<kLookup>(d, centroids, code), scale), d, block_out + i);
    }
  }
}

// True when every plane of a block holds whole vectors of codes (d * width / 8 bytes a multiple of
// the lane count): then a vector of codes is one widening load, shift and mask per plane.
HWY_INLINE bool PlanesHoldWholeVectors(const HlwqParams& params, size_t lanes) {
  for (const CodePlane& plane : code_planes(params.bits)) {
    if ((static_cast<size_t>(params.block) * static_cast<size_t>(plane.width) / 8) % lanes != 0) return false;
  }
  return true;
}

// Where vector v of a block's codes sits in each plane: code i's bits of a plane are field
// i / P of byte i mod P (docs/FORMAT.md), and a run of `lanes` codes stays in one field when P is
// a multiple of lanes. Computed once per call so the inner loop has no division.
struct PlaneWalk {
  static constexpr size_t kMaxVectors = kMaxBlock / 4;  // a block of 1024 in 4-lane vectors
  int plane_count = 0;
  uint32_t masks[3] = {};
  int shifts_left[3] = {};
  uint16_t byte_offsets[kMaxVectors][3] = {};  // from the block start
  uint8_t shifts_right[kMaxVectors][3] = {};

  PlaneWalk(const HlwqParams& params, size_t lanes) {
    const size_t block = static_cast<size_t>(params.block);
    size_t plane_start = 0;
    for (const CodePlane& plane : code_planes(params.bits)) {
      const size_t plane_bytes = block * static_cast<size_t>(plane.width) / 8;
      masks[plane_count] = (1u << plane.width) - 1;
      shifts_left[plane_count] = plane.shift;
      for (size_t v = 0; v * lanes < block && v < kMaxVectors; ++v) {
        byte_offsets[v][plane_count] = static_cast<uint16_t>(plane_start + (v * lanes) % plane_bytes);
        shifts_right[v][plane_count] = static_cast<uint8_t>((v * lanes) / plane_bytes * plane.width);
      }
      plane_start += plane_bytes;
      ++plane_count;
    }
  }
};

// Codes v * lanes .. v * lanes + lanes - 1 of a packed block: per plane one widening load, shift,
// mask and OR.
template <class D>
HWY_INLINE hn::Vec<hn::RebindToSigned<D>> BlockCodeVector(D /*tag*/, const PlaneWalk& walk,
                                                          const uint8_t* HWY_RESTRICT packed, size_t v) {
  const hn::RebindToUnsigned<D> du;
  const hn::Rebind<uint8_t, D> du8;
  auto code = hn::ShiftRightSame(hn::PromoteTo(du, hn::LoadU(du8, packed + walk.byte_offsets[v][0])),
                                 walk.shifts_right[v][0]);
  code = hn::And(code, hn::Set(du, walk.masks[0]));
  for (int p = 1; p < walk.plane_count; ++p) {
    const auto bytes = hn::PromoteTo(du, hn::LoadU(du8, packed + walk.byte_offsets[v][p]));
    const auto bits = hn::And(hn::ShiftRightSame(bytes, walk.shifts_right[v][p]), hn::Set(du, walk.masks[p]));
    code = hn::Or(code, hn::ShiftLeftSame(bits, walk.shifts_left[p]));
  }
  return hn::BitCast(hn::RebindToSigned<D>(), code);
}

// Byte offset of plane `plane` of a packed block: the planes before it, one after another.
constexpr size_t PlaneStart(int bits, size_t block, size_t plane) {
  size_t start = 0;
  for (size_t p = 0; p < plane; ++p) start += block * static_cast<size_t>(code_planes(bits).planes[p].width) / 8;
  return start;
}

#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
// Plane kPlane's bits of codes kV * lanes .. of a block, shifted into place, with the geometry
// known at compile time (2 and 3 bits at blocks of 64 and 128): offsets and shifts are immediates,
// and the loads of one plane that several vectors share are one load after inlining. A plane of
// half a vector (Q3's 8-byte 1-bit plane at block 64 in 16 lanes) is loaded into both halves of
// one vector, and lane k takes field (kV lanes + k) / P by a per-lane shift.
template <int kBits, size_t kBlock, size_t kV, size_t kPlane, class D>
HWY_INLINE hn::Vec<hn::RebindToUnsigned<D>> FixedPlaneBits(D /*tag*/, const uint8_t* HWY_RESTRICT packed) {
  const hn::RebindToUnsigned<D> du;
  const hn::Rebind<uint8_t, D> du8;
  constexpr size_t kLanes = hn::MaxLanes(D());
  constexpr CodePlane kCodePlane = code_planes(kBits).planes[kPlane];
  constexpr size_t kWidth = static_cast<size_t>(kCodePlane.width);
  constexpr size_t kBytes = kBlock * kWidth / 8;
  constexpr size_t kStart = PlaneStart(kBits, kBlock, kPlane);
  hn::Vec<decltype(du)> bytes;
  if constexpr (kBytes >= kLanes) {
    static_assert(kBytes % kLanes == 0, "a run of codes stays in one field");
    constexpr int kField = static_cast<int>(kV * kLanes / kBytes * kWidth);
    bytes = hn::ShiftRight<kField>(hn::PromoteTo(du, hn::LoadU(du8, packed + kStart + kV * kLanes % kBytes)));
  } else {
    static_assert(2 * kBytes == kLanes, "half a vector");
    static constexpr auto kFields = [] {
      std::array<uint32_t, kLanes> fields{};
      for (size_t k = 0; k < kLanes; ++k) fields[k] = static_cast<uint32_t>((kV * kLanes + k) / kBytes * kWidth);
      return fields;
    }();
    const hn::Half<decltype(du8)> dh8;
    const auto half = hn::LoadU(dh8, packed + kStart);
    bytes = hn::Shr(hn::PromoteTo(du, hn::Combine(du8, half, half)), hn::LoadU(du, kFields.data()));
  }
  return hn::ShiftLeft<kCodePlane.shift>(hn::And(bytes, hn::Set(du, (1u << kWidth) - 1)));
}

template <int kBits, size_t kBlock, size_t kV, class D>
HWY_INLINE hn::Vec<hn::RebindToSigned<D>> FixedBlockCodeVector(D d, const uint8_t* HWY_RESTRICT packed) {
  static_assert(code_planes(kBits).count <= 2, "2 and 3 bits");
  auto code = FixedPlaneBits<kBits, kBlock, kV, 0>(d, packed);
  if constexpr (code_planes(kBits).count == 2) code = hn::Or(code, FixedPlaneBits<kBits, kBlock, kV, 1>(d, packed));
  return hn::BitCast(hn::RebindToSigned<D>(), code);
}
#endif

// Decode-time product for one tile of kTile activation rows (2 and 3 bits; 4..8 bits take
// FusedRowsWide): per block, sum_i c[q_i] x'_i in
// vectors (two chains per row so the multiply-add latency overlaps), then times the block's
// norm / sqrt(d). No weight is ever stored. kFixedBits and kFixedBlock (both or neither) give
// the geometry at compile time, and `walk` is then null: the walk's table lookups and variable shifts made Q3 at block 64
// (its 8-byte 1-bit plane held no whole vector and went through scratch rows) decode at a sixth of
// the bandwidth on AVX-512.
template <class D, size_t kTile, Lookup kLookup, int kFixedBits = 0, size_t kFixedBlock = 0>
void FusedRowTile(const HlwqCodec& codec, const Centroids& centroids, const PlaneWalk* walk, const uint8_t* HWY_RESTRICT codes_row,
                  const uint16_t* HWY_RESTRICT norms_row, const float* HWY_RESTRICT x, size_t x_stride,
                  float* HWY_RESTRICT out, size_t out_stride) {
  const D d;
  const size_t lanes = hn::Lanes(d);
  const HlwqParams& params = codec.params();
  const size_t block = kFixedBlock != 0 ? kFixedBlock : static_cast<size_t>(params.block);
  const size_t packed_bytes = packed_block_bytes(params.bits, params.block);
  const float inverse_root = static_cast<float>(1.0 / std::sqrt(static_cast<double>(block)));
  hn::Vec<decltype(d)> totals[kTile];
  for (size_t t = 0; t < kTile; ++t) totals[t] = hn::Zero(d);
  for (int64_t b = 0; b < codec.layout().blocks; ++b) {
    const uint8_t* packed = codes_row + b * packed_bytes;
    const float* block_x = x + b * block;
    hn::Vec<decltype(d)> sums[kTile][2];
    for (size_t t = 0; t < kTile; ++t) sums[t][0] = sums[t][1] = hn::Zero(d);
    const auto accumulate = [&](hn::Vec<decltype(d)> c0, hn::Vec<decltype(d)> c1, size_t i) {
      for (size_t t = 0; t < kTile; ++t) {
        sums[t][0] = hn::MulAdd(c0, hn::LoadU(d, block_x + t * x_stride + i), sums[t][0]);
        sums[t][1] = hn::MulAdd(c1, hn::LoadU(d, block_x + t * x_stride + i + lanes), sums[t][1]);
      }
    };
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
    if constexpr (kFixedBlock != 0) {
      constexpr size_t kLanes = hn::MaxLanes(D());
      [&]<size_t... kPair>(std::index_sequence<kPair...>) {
        // Vectors 2 kPair and 2 kPair + 1 of the block, every index a constant.
        (accumulate(
             LookupCentroids<kLookup>(d, centroids, FixedBlockCodeVector<kFixedBits, kFixedBlock, 2 * kPair>(d, packed)),
             LookupCentroids<kLookup>(d, centroids,
                                      FixedBlockCodeVector<kFixedBits, kFixedBlock, 2 * kPair + 1>(d, packed)),
             2 * kPair * kLanes),
         ...);
      }(std::make_index_sequence<kFixedBlock / (2 * kLanes)>());
    } else
#endif
    {
      for (size_t i = 0, v = 0; i < block; i += 2 * lanes, v += 2) {  // block is a multiple of 2 * lanes
        accumulate(LookupCentroids<kLookup>(d, centroids, BlockCodeVector(d, *walk, packed, v)),
                   LookupCentroids<kLookup>(d, centroids, BlockCodeVector(d, *walk, packed, v + 1)), i);
      }
    }
    const auto scale = hn::Set(d, HalfToFloat(norms_row[b]) * inverse_root);
    for (size_t t = 0; t < kTile; ++t) totals[t] = hn::MulAdd(hn::Add(sums[t][0], sums[t][1]), scale, totals[t]);
  }
  for (size_t t = 0; t < kTile; ++t) out[t * out_stride] = hn::GetLane(hn::SumOfLanes(d, totals[t]));
}

// The planes of a block for the walk below, with each step's byte offset and field shift per plane
// precomputed: computing j mod P and j / P in the step itself cost an integer division per step
// (P is only known at run time), which made Q5 twice as slow as Q4.
struct WidePlanes {
  static constexpr size_t kMaxSteps = kMaxBlock / 2;  // half a block, one lane per step (scalar target)
  size_t start[3] = {}, bytes[3] = {};
  uint32_t masks[3] = {};
  int widths[3] = {}, shifts[3] = {};
  uint16_t offsets[kMaxSteps][3] = {};  // step v (codes v * lanes ..): plane p's byte, from the block start
  uint8_t fields[kMaxSteps][3] = {};    // and the right shift of the first run's field
};

// Code vectors j.. and j + d/2.. of a block (see FusedRowTileWide), looked up and multiplied
// into two sums per activation row.
template <size_t kTile, int kPlanes, Lookup kLookup, class D>
HWY_INLINE void WideStep(D d, const Centroids& centroids, const WidePlanes& planes, const uint8_t* HWY_RESTRICT packed,
                         const float* HWY_RESTRICT block_x, size_t x_stride, size_t half, size_t j,
                         hn::Vec<D> (&first_sums)[kTile], hn::Vec<D> (&second_sums)[kTile]) {
  const hn::RebindToUnsigned<D> du;
  const hn::RebindToSigned<D> di;
  const hn::Rebind<uint8_t, D> du8;
  const auto low_plane = hn::PromoteTo(du, hn::LoadU(du8, packed + j));
  auto first = hn::And(low_plane, hn::Set(du, 0x0fu));
  auto second = hn::ShiftRight<4>(low_plane);
  const size_t v = j / hn::Lanes(d);
  for (int p = 1; p < kPlanes; ++p) {
    const auto mask = hn::Set(du, planes.masks[p]);
    const auto bits = hn::ShiftRightSame(hn::PromoteTo(du, hn::LoadU(du8, packed + planes.offsets[v][p])),
                                         planes.fields[v][p]);
    first = hn::Or(first, hn::ShiftLeftSame(hn::And(bits, mask), planes.shifts[p]));
    second = hn::Or(second, hn::ShiftLeftSame(hn::And(hn::ShiftRight<4>(bits), mask), planes.shifts[p]));
  }
  const auto c0 = LookupCentroids<kLookup>(d, centroids, hn::BitCast(di, first));
  const auto c1 = LookupCentroids<kLookup>(d, centroids, hn::BitCast(di, second));
  for (size_t t = 0; t < kTile; ++t) {
    first_sums[t] = hn::MulAdd(c0, hn::LoadU(d, block_x + t * x_stride + j), first_sums[t]);
    second_sums[t] = hn::MulAdd(c1, hn::LoadU(d, block_x + t * x_stride + half + j), second_sums[t]);
  }
}

// WideStep for two planes whose second sits right above the nibble (code = nibble | upper << 4: 5,
// 6 and 8 bits). The codes are assembled in bytes, in a 128-bit (or narrower) register where x86
// has three vector ports, and only then widened: per pair of code vectors two widenings instead of
// two widenings plus eight full-width shifts and masks, which left 5 bits compute-bound. Byte fields
// are shifted inside 16-bit lanes: bits crossing into the neighbour byte land outside the mask.
template <size_t kTile, Lookup kLookup, int kFixedBits = 0, size_t kFixedBlock = 0, class D>
HWY_INLINE void WideStepNibbleAndUpper(D d, const Centroids& centroids, const WidePlanes& planes,
                                       const uint8_t* HWY_RESTRICT packed, const float* HWY_RESTRICT block_x,
                                       size_t x_stride, size_t half, size_t j, hn::Vec<D> (&first_sums)[kTile],
                                       hn::Vec<D> (&second_sums)[kTile]) {
#if HWY_TARGET == HWY_SCALAR  // one lane: no byte vector to assemble in
  WideStep<kTile, 2, kLookup>(d, centroids, planes, packed, block_x, x_stride, half, j, first_sums, second_sums);
#else
  const hn::RebindToSigned<D> di;
  const hn::Rebind<uint8_t, D> d8;
  const hn::Repartition<uint16_t, decltype(d8)> d16;
  const auto nibble_mask = hn::Set(d8, uint8_t{0x0f});
  const auto low = hn::LoadU(d8, packed + j);
  auto first = hn::And(low, nibble_mask);
  auto second = hn::And(hn::BitCast(d8, hn::ShiftRight<4>(hn::BitCast(d16, low))), nibble_mask);
  size_t upper_offset;
  int field;  // the first run's field; the second's is 4 higher
  if constexpr (kFixedBits != 0) {
    // Bits and block known at compile time: with the step loop unrolled, offset and field are
    // constants and the shifts take immediates.
    constexpr size_t kWidth = static_cast<size_t>(kFixedBits) - 4;
    constexpr size_t kPlaneBytes = kFixedBlock * kWidth / 8;
    upper_offset = kFixedBlock / 2 + j % kPlaneBytes;
    field = static_cast<int>(j / kPlaneBytes * kWidth);
  } else {
    const size_t v = j / hn::Lanes(d);
    upper_offset = planes.offsets[v][1];
    field = planes.fields[v][1];
  }
  const auto upper = hn::BitCast(d16, hn::LoadU(d8, packed + upper_offset));
  const auto upper_mask = hn::Set(d8, static_cast<uint8_t>(planes.masks[1] << 4));
  first = hn::Or(first, hn::And(hn::BitCast(d8, hn::ShiftLeftSame(upper, 4 - field)), upper_mask));
  second = hn::Or(second, hn::And(hn::BitCast(d8, hn::ShiftRightSame(upper, field)), upper_mask));
  const auto c0 = LookupCentroids<kLookup>(d, centroids, hn::PromoteTo(di, first));
  const auto c1 = LookupCentroids<kLookup>(d, centroids, hn::PromoteTo(di, second));
  for (size_t t = 0; t < kTile; ++t) {
    first_sums[t] = hn::MulAdd(c0, hn::LoadU(d, block_x + t * x_stride + j), first_sums[t]);
    second_sums[t] = hn::MulAdd(c1, hn::LoadU(d, block_x + t * x_stride + half + j), second_sums[t]);
  }
#endif
}

// Faster walk for 4..8 bits (the first plane is 4 bits wide, P = d / 2 bytes): one widening load
// of the 4-bit plane gives codes j.. (low nibbles) and j + d/2.. (high nibbles). Every narrower
// plane of width w (P_w = d w / 8 bytes, dividing d / 2) holds both runs in byte j mod P_w: the
// first at field j / P_w, the second 4 / w fields further, i.e. 4 bits higher. So each plane costs
// one load and one variable shift per pair of code vectors, the rest are constant shifts. Four
// independent sums per activation row keep the multiply-add latency off the critical path.
template <class D, size_t kTile, int kPlanes, Lookup kLookup, bool kNibbleAndUpper = false, int kFixedBits = 0,
          size_t kFixedBlock = 0>
void FusedRowsWide(const HlwqCodec& codec, const Centroids& centroids, const uint8_t* HWY_RESTRICT codes,
                   const uint16_t* HWY_RESTRICT norms, size_t begin, size_t end, const float* HWY_RESTRICT x,
                   size_t x_stride, float* HWY_RESTRICT y, size_t y_stride) {
  const D d;
  const size_t lanes = hn::Lanes(d);
  const HlwqParams& params = codec.params();
  const CodePlanes code_plane_list = code_planes(params.bits);
  const size_t block = kFixedBlock != 0 ? kFixedBlock : static_cast<size_t>(params.block);
  const size_t half = block / 2;
  WidePlanes planes;
  for (int p = 0, start = 0; p < kPlanes; ++p) {
    planes.widths[p] = code_plane_list.planes[p].width;
    planes.shifts[p] = code_plane_list.planes[p].shift;
    planes.masks[p] = (1u << planes.widths[p]) - 1;
    planes.bytes[p] = block * static_cast<size_t>(planes.widths[p]) / 8;
    planes.start[p] = static_cast<size_t>(start);
    start += static_cast<int>(planes.bytes[p]);
    for (size_t v = 0; v * lanes < half && v < WidePlanes::kMaxSteps; ++v) {
      const size_t j = v * lanes;
      planes.offsets[v][p] = static_cast<uint16_t>(planes.start[p] + j % planes.bytes[p]);
      planes.fields[v][p] = static_cast<uint8_t>(j / planes.bytes[p] * static_cast<size_t>(planes.widths[p]));
    }
  }
  const size_t packed_bytes = packed_block_bytes(params.bits, params.block);
  const float inverse_root = static_cast<float>(1.0 / std::sqrt(static_cast<double>(block)));
  const size_t code_bytes = codec.layout().code_bytes;
  const int64_t blocks = codec.layout().blocks;
  // The set-up above is per call, not per row: the demo's lm_head has 49,152 rows of 5 blocks.
  for (size_t row = begin; row < end; ++row) {
    const uint8_t* HWY_RESTRICT codes_row = codes + row * code_bytes;
    const uint16_t* HWY_RESTRICT norms_row = norms + row * static_cast<size_t>(blocks);
    float* HWY_RESTRICT out = y + row;
    hn::Vec<decltype(d)> totals[kTile];
    for (size_t t = 0; t < kTile; ++t) totals[t] = hn::Zero(d);
    for (int64_t b = 0; b < blocks; ++b) {
      const uint8_t* packed = codes_row + b * packed_bytes;
      const float* block_x = x + b * block;
      PrefetchAhead(packed, kPrefetchBytes);
      PrefetchAhead(packed, kPrefetchBytes + 64);
      hn::Vec<decltype(d)> sums0[kTile], sums1[kTile], sums2[kTile], sums3[kTile];
      for (size_t t = 0; t < kTile; ++t) sums0[t] = sums1[t] = sums2[t] = sums3[t] = hn::Zero(d);
      size_t j = 0;
      const auto step = [&](size_t at, auto& first_sums, auto& second_sums) {
        if constexpr (kNibbleAndUpper) {
          WideStepNibbleAndUpper<kTile, kLookup, kFixedBits, kFixedBlock>(d, centroids, planes, packed, block_x,
                                                                           x_stride, half, at, first_sums, second_sums);
        } else {
          WideStep<kTile, kPlanes, kLookup>(d, centroids, planes, packed, block_x, x_stride, half, at, first_sums,
                                            second_sums);
        }
      };
      for (; j + 2 * lanes <= half; j += 2 * lanes) {
        step(j, sums0, sums1);
        step(j + lanes, sums2, sums3);
      }
      if (j < half) step(j, sums0, sums1);  // half is a multiple of lanes
      const auto scale = hn::Set(d, HalfToFloat(norms_row[b]) * inverse_root);
      for (size_t t = 0; t < kTile; ++t) {
        totals[t] = hn::MulAdd(hn::Add(hn::Add(sums0[t], sums1[t]), hn::Add(sums2[t], sums3[t])), scale, totals[t]);
      }
    }
    for (size_t t = 0; t < kTile; ++t) out[t * y_stride] = hn::GetLane(hn::SumOfLanes(d, totals[t]));
  }
}

template <class D, size_t kTile, int kPlanes, bool kNibbleAndUpper, int kFixedBits = 0, size_t kFixedBlock = 0>
void FusedRowsWideLookup(const HlwqCodec& codec, const Centroids& centroids, const uint8_t* HWY_RESTRICT codes,
                         const uint16_t* HWY_RESTRICT norms, size_t begin, size_t end, const RowProductShape& shape) {
  switch (LookupFor(centroids, hn::Lanes(hn::ScalableTag<float>()))) {
    case Lookup::kOneVector:
      return FusedRowsWide<D, kTile, kPlanes, Lookup::kOneVector, kNibbleAndUpper, kFixedBits, kFixedBlock>(
          codec, centroids, codes, norms, begin, end, shape.x, shape.x_stride, shape.y, shape.rows);
    case Lookup::kTwoVectors:
      return FusedRowsWide<D, kTile, kPlanes, Lookup::kTwoVectors, kNibbleAndUpper, kFixedBits, kFixedBlock>(
          codec, centroids, codes, norms, begin, end, shape.x, shape.x_stride, shape.y, shape.rows);
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
    case Lookup::kFourVectors:
      if constexpr (kFixedBits == 0 || kFixedBits >= 6) {
        return FusedRowsWide<D, kTile, kPlanes, Lookup::kFourVectors, kNibbleAndUpper, kFixedBits, kFixedBlock>(
            codec, centroids, codes, norms, begin, end, shape.x, shape.x_stride, shape.y, shape.rows);
      }
      break;
#endif
    default: break;
  }
  // Fixed-geometry variants leave out the kinds their bits never take; the gather serves any codebook.
  FusedRowsWide<D, kTile, kPlanes, Lookup::kGather, kNibbleAndUpper, kFixedBits, kFixedBlock>(
      codec, centroids, codes, norms, begin, end, shape.x, shape.x_stride, shape.y, shape.rows);
}

// Two planes with the second right above the nibble (5, 6 bits) take the byte-assembly step.
HWY_INLINE bool SecondPlaneAboveNibble(const HlwqParams& params) {
  const CodePlanes planes = code_planes(params.bits);
  return planes.count == 2 && planes.planes[1].shift == 4;
}

// Rows [begin, end) of a 4..8-bit code for a batch of kTile rows.
template <class D, size_t kTile>
void FusedRowsWideAnyPlanes(const HlwqCodec& codec, const Centroids& centroids, const uint8_t* HWY_RESTRICT codes,
                            const uint16_t* HWY_RESTRICT norms, size_t begin, size_t end,
                            const RowProductShape& shape) {
  switch (code_planes(codec.params().bits).count) {
    case 1: return FusedRowsWideLookup<D, kTile, 1, false>(codec, centroids, codes, norms, begin, end, shape);
    case 2:
      if (SecondPlaneAboveNibble(codec.params())) {
        // The usual layouts get compile-time plane geometry (Q5 and Q6 at blocks 128 and 64, which
        // --block auto gives rows 128 does not divide).
        if (codec.params().block == 128 && codec.params().bits == 5) {
          return FusedRowsWideLookup<D, kTile, 2, true, 5, 128>(codec, centroids, codes, norms, begin, end, shape);
        }
        if (codec.params().block == 64 && codec.params().bits == 5) {
          return FusedRowsWideLookup<D, kTile, 2, true, 5, 64>(codec, centroids, codes, norms, begin, end, shape);
        }
        if (codec.params().block == 128 && codec.params().bits == 6) {
          return FusedRowsWideLookup<D, kTile, 2, true, 6, 128>(codec, centroids, codes, norms, begin, end, shape);
        }
        if (codec.params().block == 64 && codec.params().bits == 6) {
          return FusedRowsWideLookup<D, kTile, 2, true, 6, 64>(codec, centroids, codes, norms, begin, end, shape);
        }
        return FusedRowsWideLookup<D, kTile, 2, true>(codec, centroids, codes, norms, begin, end, shape);
      }
      return FusedRowsWideLookup<D, kTile, 2, false>(codec, centroids, codes, norms, begin, end, shape);
    default: return FusedRowsWideLookup<D, kTile, 3, false>(codec, centroids, codes, norms, begin, end, shape);
  }
}

// Rows [begin, end) of a 2- or 3-bit code (at most 8 levels) for kTile activation rows.
template <class D, size_t kTile, Lookup kLookup, int kFixedBits, size_t kFixedBlock>
void FusedRowTiles(const HlwqCodec& codec, const Centroids& centroids, const uint8_t* HWY_RESTRICT codes,
                   const uint16_t* HWY_RESTRICT norms, size_t begin, size_t end, const RowProductShape& shape) {
  // The run-time walk (a few KB); the fixed geometry needs none.
  const auto walk = kFixedBlock == 0 ? std::make_unique<PlaneWalk>(codec.params(), hn::Lanes(D())) : nullptr;
  const size_t code_bytes = codec.layout().code_bytes;
  const size_t blocks = static_cast<size_t>(codec.layout().blocks);
  for (size_t row = begin; row < end; ++row) {
    FusedRowTile<D, kTile, kLookup, kFixedBits, kFixedBlock>(codec, centroids, walk.get(), codes + row * code_bytes,
                                                             norms + row * blocks, shape.x, shape.x_stride,
                                                             shape.y + row, shape.rows);
  }
}

template <class D, size_t kTile, int kFixedBits, size_t kFixedBlock>
void FusedRowTilesLookup(const HlwqCodec& codec, const Centroids& centroids, const uint8_t* HWY_RESTRICT codes,
                         const uint16_t* HWY_RESTRICT norms, size_t begin, size_t end, const RowProductShape& shape) {
  const Lookup lookup = LookupFor(centroids, hn::Lanes(hn::ScalableTag<float>()));
  if constexpr (kFixedBits != 0) {  // AVX-512 only, where 8 levels are one vector
    if (lookup == Lookup::kOneVector) {
      return FusedRowTiles<D, kTile, Lookup::kOneVector, kFixedBits, kFixedBlock>(codec, centroids, codes, norms,
                                                                                  begin, end, shape);
    }
    return FusedRowTiles<D, kTile, Lookup::kGather, kFixedBits, kFixedBlock>(codec, centroids, codes, norms, begin,
                                                                             end, shape);
  } else {
    switch (lookup) {
      case Lookup::kOneVector:
        return FusedRowTiles<D, kTile, Lookup::kOneVector, 0, 0>(codec, centroids, codes, norms, begin, end, shape);
      case Lookup::kTwoVectors:
        return FusedRowTiles<D, kTile, Lookup::kTwoVectors, 0, 0>(codec, centroids, codes, norms, begin, end, shape);
      default: return FusedRowTiles<D, kTile, Lookup::kGather, 0, 0>(codec, centroids, codes, norms, begin, end, shape);
    }
  }
}

// The fused decode of 2 and 3 bits for 1..4 activation rows, in vectors of tag D.
template <class D, int kFixedBits = 0, size_t kFixedBlock = 0>
void FusedRowTilesForBatch(const HlwqCodec& codec, const Centroids& centroids, const uint8_t* HWY_RESTRICT codes,
                           const uint16_t* HWY_RESTRICT norms, size_t begin, size_t end, const RowProductShape& shape) {
  switch (shape.batch) {
    case 4: return FusedRowTilesLookup<D, 4, kFixedBits, kFixedBlock>(codec, centroids, codes, norms, begin, end, shape);
    case 3: return FusedRowTilesLookup<D, 3, kFixedBits, kFixedBlock>(codec, centroids, codes, norms, begin, end, shape);
    case 2: return FusedRowTilesLookup<D, 2, kFixedBits, kFixedBlock>(codec, centroids, codes, norms, begin, end, shape);
    default: return FusedRowTilesLookup<D, 1, kFixedBits, kFixedBlock>(codec, centroids, codes, norms, begin, end, shape);
  }
}

// The fused decode for 1..4 activation rows, in vectors of tag D.
template <class D>
void FusedRowsWideForBatch(const HlwqCodec& codec, const Centroids& centroids, const uint8_t* HWY_RESTRICT codes,
                           const uint16_t* HWY_RESTRICT norms, size_t begin, size_t end, const RowProductShape& shape) {
  switch (shape.batch) {
    case 4: return FusedRowsWideAnyPlanes<D, 4>(codec, centroids, codes, norms, begin, end, shape);
    case 3: return FusedRowsWideAnyPlanes<D, 3>(codec, centroids, codes, norms, begin, end, shape);
    case 2: return FusedRowsWideAnyPlanes<D, 2>(codec, centroids, codes, norms, begin, end, shape);
    default: return FusedRowsWideAnyPlanes<D, 1>(codec, centroids, codes, norms, begin, end, shape);
  }
}

#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
// AVX-512 decode of 4-bit codes (blocks of 64 or a multiple of 128) and 5-bit codes (blocks of 64
// and 128; 64 is what --block auto gives 576-wide rows): a whole
// 64-byte line of the nibble plane is one register and is never widened. vpermps reads only the
// low 4 bits of each 32-bit index (vpermt2ps the low 5), so the line shifted right by 4 m indexes,
// in lane k, the code in nibble m of 32-bit word k: 8 lookups of 16 codes cost 7 shifts, where the
// walk above spends 4 widening loads (each a shuffle-port uop, like the lookups), 4 masks and 4
// shifts. The activations are permuted into that code order once per call (NibbleWordOrder).

// The activations are taken in lines of 128 codes: a 64-byte line of the nibble plane, one
// chunk of a block of 128 or more, or two whole blocks of 64 (lanes 0-7 the first). Where, in the
// zero-padded activation row, is the code that lane k of shift m of `line` indexes: byte 4 k + m / 2
// of the line's block, its high nibble (code + block / 2) when m is odd (docs/FORMAT.md: byte j
// of the 4-bit plane holds codes j and j + block / 2).
constexpr size_t NibbleWordPosition(size_t block, size_t line, size_t m, size_t k) {
  if (block == 64) return 128 * line + 64 * (k / 8) + 4 * (k % 8) + m / 2 + (m % 2) * 32;
  const size_t chunks = block / 128;
  return line / chunks * block + 64 * (line % chunks) + 4 * k + m / 2 + (m % 2) * (block / 2);
}

HWY_INLINE bool NibbleWordsApply(const HlwqParams& params, const Centroids& centroids) {
  const size_t block = static_cast<size_t>(params.block);
  return (params.bits == 4 && (block == 64 || block % 128 == 0) && centroids.levels <= 16) ||
         (params.bits == 5 && (block == 64 || block == 128) && centroids.levels <= 32);
}

// x rows (batch of them, x_stride apart, `length` = whole blocks) into NibbleWordPosition order,
// `lines` lines of 128 per row (an odd count of 64-blocks leaves half a line of zeros):
// out[t * 128 lines + 128 line + 16 m + k] = x[t * x_stride + NibbleWordPosition(...)].
void NibbleWordOrder(const float* HWY_RESTRICT x, size_t x_stride, size_t batch, size_t length, size_t block,
                     size_t lines, float* HWY_RESTRICT out) {
  for (size_t t = 0; t < batch; ++t) {
    for (size_t line = 0; line < lines; ++line) {
      for (size_t m = 0; m < 8; ++m) {
        for (size_t k = 0; k < 16; ++k) {
          const size_t position = NibbleWordPosition(block, line, m, k);
          out[(t * lines + line) * 128 + 16 * m + k] = position < length ? x[t * x_stride + position] : 0.0f;
        }
      }
    }
  }
}

// Lookup m (kStep) of a chunk: lane k of index_words shifted right by kShift indexes the table (its
// low 4 bits for 4-bit codes, low 5 for 5-bit ones; the bits above are ignored), 16 centroids times
// each activation row's 16 values, into sums[t][m % 2].
template <int kStep, int kShift, size_t kTile, bool kFiveBits>
HWY_INLINE void NibbleWordStep(__m512i index_words, __m512 low_table, __m512 high_table, const float* HWY_RESTRICT x,
                               size_t x_stride, __m512 (&sums)[kTile][2]) {
  __m512i index = index_words;
  if constexpr (kShift != 0) index = _mm512_srli_epi32(index_words, kShift);
  __m512 centroid;
  if constexpr (kFiveBits) {
    centroid = _mm512_permutex2var_ps(low_table, index, high_table);
  } else {
    centroid = _mm512_permutexvar_ps(index, low_table);
  }
  for (size_t t = 0; t < kTile; ++t) {
    sums[t][kStep % 2] = _mm512_fmadd_ps(centroid, _mm512_load_ps(x + t * x_stride + 16 * kStep), sums[t][kStep % 2]);
  }
}

// Bit select, mask ? nibbles : upper (vpternlogd imm 0xE4).
HWY_INLINE __m512i SelectBits(__m512i mask, __m512i nibbles, __m512i upper) {
  return _mm512_ternarylogic_epi32(nibbles, upper, mask, 0xE4);
}

// The tables and masks of NibbleWordBlock, set once per call.
struct NibbleWordConstants {
  __m512 low_table, high_table;
  __m512i nibble_mask, even_nibbles, odd_nibbles;
  // 5 bits, block 128: the 1-bit plane is 16 bytes, code i's bit is bit i / 16 of byte i mod 16.
  // Broadcast to the four 128-bit lanes q, word r of lane q (the codes' lane k = 4 q + r) holds
  // bytes 4 r .. 4 r + 3 and needs bit q of each (bit 4 + q for the high nibbles): shifted right by
  // q, the bit of shift m sits at bit 4 m, like the nibble.
  __m512i lane_shifts;
  // Block 64: the plane is 8 bytes, code i's bit is bit i / 8 of byte i mod 8; lane k of a line
  // holds bytes 4 (k mod 2) .. of its block's plane (the plane repeated) and needs bit (k mod 8) / 2.
  __m512i pair_lane_shifts;
  __m512i pair_gain_lanes;  // lanes 0-7: the first block's gain, 8-15: the second's

  explicit NibbleWordConstants(const Centroids& centroids)
      : low_table(_mm512_load_ps(centroids.values)),
        high_table(_mm512_load_ps(centroids.values + 16)),
        nibble_mask(_mm512_set1_epi32(0x0f)),
        even_nibbles(_mm512_set1_epi32(0x0f0f0f0f)),
        odd_nibbles(_mm512_set1_epi32(static_cast<int>(0xf0f0f0f0u))),
        lane_shifts(_mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0)),
        pair_lane_shifts(_mm512_set_epi32(3, 3, 2, 2, 1, 1, 0, 0, 3, 3, 2, 2, 1, 1, 0, 0)),
        pair_gain_lanes(_mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0)) {}
};

// The 8 lookups of one line (`words`: the nibbles; 5 bits: `upper`, the 1-bit plane's bit of
// shift m at bit 4 m of each lane) times kTile activation rows, into sums.
template <size_t kTile, bool kFiveBits>
HWY_INLINE void NibbleWordLine(const NibbleWordConstants& constants, __m512i words, __m512i upper,
                               const float* HWY_RESTRICT line_x, size_t x_stride, __m512 (&sums)[kTile][2]) {
  const __m512 low_table = constants.low_table, high_table = constants.high_table;
  if constexpr (kFiveBits) {
    // The plane's bit of shift m moved to 4 m + 4, right above the nibble of shift m, and merged
    // into copies of the words that keep the even (odd) shifts' nibbles: one shift per lookup.
    // Shift 7's bit would land at bit 32: its index is built alone.
    const __m512i upper_next = _mm512_slli_epi32(upper, 4);
    const __m512i even = SelectBits(constants.even_nibbles, words, upper_next);
    const __m512i odd = SelectBits(constants.odd_nibbles, words, upper_next);
    const __m512i last = SelectBits(constants.nibble_mask, _mm512_srli_epi32(words, 28), _mm512_srli_epi32(upper, 24));
    NibbleWordStep<0, 0, kTile, true>(even, low_table, high_table, line_x, x_stride, sums);
    NibbleWordStep<1, 4, kTile, true>(odd, low_table, high_table, line_x, x_stride, sums);
    NibbleWordStep<2, 8, kTile, true>(even, low_table, high_table, line_x, x_stride, sums);
    NibbleWordStep<3, 12, kTile, true>(odd, low_table, high_table, line_x, x_stride, sums);
    NibbleWordStep<4, 16, kTile, true>(even, low_table, high_table, line_x, x_stride, sums);
    NibbleWordStep<5, 20, kTile, true>(odd, low_table, high_table, line_x, x_stride, sums);
    NibbleWordStep<6, 24, kTile, true>(even, low_table, high_table, line_x, x_stride, sums);
    NibbleWordStep<7, 0, kTile, true>(last, low_table, high_table, line_x, x_stride, sums);
  } else {
    NibbleWordStep<0, 0, kTile, false>(words, low_table, high_table, line_x, x_stride, sums);
    NibbleWordStep<1, 4, kTile, false>(words, low_table, high_table, line_x, x_stride, sums);
    NibbleWordStep<2, 8, kTile, false>(words, low_table, high_table, line_x, x_stride, sums);
    NibbleWordStep<3, 12, kTile, false>(words, low_table, high_table, line_x, x_stride, sums);
    NibbleWordStep<4, 16, kTile, false>(words, low_table, high_table, line_x, x_stride, sums);
    NibbleWordStep<5, 20, kTile, false>(words, low_table, high_table, line_x, x_stride, sums);
    NibbleWordStep<6, 24, kTile, false>(words, low_table, high_table, line_x, x_stride, sums);
    NibbleWordStep<7, 28, kTile, false>(words, low_table, high_table, line_x, x_stride, sums);
  }
}

// One block of 128 or more codes of one row (`chunks` lines at `packed`) times kTile activation
// rows, scaled by the block's gain into totals.
template <size_t kTile, bool kFiveBits>
HWY_INLINE void NibbleWordBlock(const NibbleWordConstants& constants, const uint8_t* HWY_RESTRICT packed,
                                size_t chunks, const float* HWY_RESTRICT block_x, size_t x_stride, __m512 gain,
                                __m512 (&totals)[kTile]) {
  __m512 sums[kTile][2];
  for (size_t t = 0; t < kTile; ++t) sums[t][0] = sums[t][1] = _mm512_setzero_ps();
  for (size_t chunk = 0; chunk < chunks; ++chunk) {
    const __m512i words = _mm512_loadu_si512(packed + 64 * chunk);
    __m512i upper = words;
    if constexpr (kFiveBits) {  // block 128
      const __m512i plane = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(packed + 64)));
      upper = _mm512_srlv_epi32(plane, constants.lane_shifts);
    }
    NibbleWordLine<kTile, kFiveBits>(constants, words, upper, block_x + 128 * chunk, x_stride, sums);
  }
  for (size_t t = 0; t < kTile; ++t) totals[t] = _mm512_fmadd_ps(_mm512_add_ps(sums[t][0], sums[t][1]), gain, totals[t]);
}

// Two blocks of 64 codes of one row (the second absent when !pair: zero codes against zero
// activations and a zero gain), `packed_bytes` apart, as one line; gains[0..1] their gains.
template <size_t kTile, bool kFiveBits>
HWY_INLINE void NibbleWordBlockPair(const NibbleWordConstants& constants, const uint8_t* HWY_RESTRICT packed,
                                    size_t packed_bytes, bool pair, const float* HWY_RESTRICT line_x,
                                    size_t x_stride, const float* HWY_RESTRICT gains, __m512 (&totals)[kTile]) {
  __m512i words, upper;
  if constexpr (kFiveBits) {
    // Each block: 32 bytes of nibbles, then 8 of the 1-bit plane.
    const __m256i second = pair ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(packed + packed_bytes))
                                : _mm256_setzero_si256();
    words = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(packed))),
                               second, 1);
    // The two 8-byte planes into one register (not through a stack copy: two 8-byte stores read
    // back as 16 bytes would miss store forwarding), each repeated over its block's 8 lanes.
    __m128i planes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(packed + 32));
    if (pair) {
      int64_t second_plane;
      std::memcpy(&second_plane, packed + packed_bytes + 32, 8);
      planes = _mm_insert_epi64(planes, second_plane, 1);
    }
    const __m512i repeated =
        _mm512_permutexvar_epi64(_mm512_set_epi64(1, 1, 1, 1, 0, 0, 0, 0), _mm512_castsi128_si512(planes));
    upper = _mm512_srlv_epi32(repeated, constants.pair_lane_shifts);
  } else {
    words = _mm512_maskz_loadu_epi32(pair ? 0xffff : 0x00ff, packed);  // the two blocks are adjacent
    upper = words;
  }
  __m512 sums[kTile][2];
  for (size_t t = 0; t < kTile; ++t) sums[t][0] = sums[t][1] = _mm512_setzero_ps();
  NibbleWordLine<kTile, kFiveBits>(constants, words, upper, line_x, x_stride, sums);
  const __m512 gain = _mm512_permutexvar_ps(constants.pair_gain_lanes, _mm512_maskz_loadu_ps(pair ? 0x3 : 0x1, gains));
  for (size_t t = 0; t < kTile; ++t) totals[t] = _mm512_fmadd_ps(_mm512_add_ps(sums[t][0], sums[t][1]), gain, totals[t]);
}

// kRows consecutive rows from `row` for kTile activation rows in NibbleWordOrder (x, x_stride
// apart, aligned). Four rows of one activation row (decode) share each block's activations and
// are reduced together (SumOfFourVectors).
template <size_t kRows, size_t kTile, bool kFiveBits>
HWY_INLINE void NibbleWordRows(const HlwqCodec& codec, const NibbleWordConstants& constants,
                               const uint8_t* HWY_RESTRICT codes, const uint16_t* HWY_RESTRICT norms, size_t row,
                               const float* HWY_RESTRICT x, size_t x_stride, float* HWY_RESTRICT y,
                               size_t y_stride) {
  const HlwqParams& params = codec.params();
  const size_t block = static_cast<size_t>(params.block);
  const size_t chunks = block / 128;
  const size_t packed_bytes = packed_block_bytes(params.bits, params.block);
  const size_t code_bytes = codec.layout().code_bytes;
  const size_t blocks = static_cast<size_t>(codec.layout().blocks);
  // The same block kRows rows on (the next call's rows), at least 1 KiB ahead.
  const size_t prefetch = std::max<size_t>(kPrefetchBytes, kRows * code_bytes);
  const __m512 inverse_root = _mm512_set1_ps(static_cast<float>(1.0 / std::sqrt(static_cast<double>(block))));
  HWY_ALIGN float gains[kRows][16];
  __m512 totals[kRows][kTile];
  for (size_t r = 0; r < kRows; ++r) {
    for (size_t t = 0; t < kTile; ++t) totals[r][t] = _mm512_setzero_ps();
  }
  for (size_t first = 0; first < blocks; first += 16) {
    // 16 blocks' gains at once (the fp16 conversion is exact), then broadcast from memory.
    const size_t count = std::min<size_t>(16, blocks - first);
    const __mmask16 valid = static_cast<__mmask16>((1u << count) - 1);
    for (size_t r = 0; r < kRows; ++r) {
      const __m256i halves = _mm256_maskz_loadu_epi16(valid, norms + (row + r) * blocks + first);
      _mm512_store_ps(gains[r], _mm512_mul_ps(_mm512_cvtph_ps(halves), inverse_root));
    }
    if (block == 64) {  // two blocks per line; `first` is even, so pairs stay inside the 16
      for (size_t b = first; b < first + count; b += 2) {
        const bool pair = b + 1 < first + count;
        for (size_t r = 0; r < kRows; ++r) {
          const uint8_t* HWY_RESTRICT packed = codes + (row + r) * code_bytes + b * packed_bytes;
          PrefetchAhead(packed, prefetch);
          PrefetchAhead(packed, prefetch + 2 * packed_bytes - 1);
          NibbleWordBlockPair<kTile, kFiveBits>(constants, packed, packed_bytes, pair, x + b * 64, x_stride,
                                                gains[r] + (b - first), totals[r]);
        }
      }
      continue;
    }
    for (size_t b = first; b < first + count; ++b) {
      for (size_t r = 0; r < kRows; ++r) {
        const uint8_t* HWY_RESTRICT packed = codes + (row + r) * code_bytes + b * packed_bytes;
        PrefetchAhead(packed, prefetch);
        // A 5-bit block (80 bytes) may end in the line after the one it starts in.
        if constexpr (kFiveBits) PrefetchAhead(packed, prefetch + packed_bytes - 1);
        NibbleWordBlock<kTile, kFiveBits>(constants, packed, chunks, x + b * block, x_stride,
                                          _mm512_set1_ps(gains[r][b - first]), totals[r]);
      }
    }
  }
  if constexpr (kRows == 4 && kTile == 1) {
    const __m512 row_totals[4] = {totals[0][0], totals[1][0], totals[2][0], totals[3][0]};
    _mm_storeu_ps(y + row, SumOfFourVectors(row_totals));
  } else {
    for (size_t r = 0; r < kRows; ++r) {
      for (size_t t = 0; t < kTile; ++t) y[row + r + t * y_stride] = _mm512_reduce_add_ps(totals[r][t]);
    }
  }
}

// The decode product through NibbleWordRows: the activations reordered, then rows by batch size.
template <bool kFiveBits>
void NibbleWordProduct(const HlwqCodec& codec, const Centroids& centroids, const uint8_t* codes,
                       const uint16_t* norms, const RowProductShape& shape, size_t begin, size_t end) {
  const size_t block = static_cast<size_t>(codec.params().block);
  const size_t lines = (shape.length + 127) / 128;
  auto ordered = hwy::AllocateAligned<float>(shape.batch * lines * 128);
  NibbleWordOrder(shape.x, shape.x_stride, shape.batch, shape.length, block, lines, ordered.get());
  const float* x = ordered.get();
  const NibbleWordConstants constants(centroids);
  const size_t stride = lines * 128;
  size_t row = begin;
  if (shape.batch == 1) {
    for (; row + 4 <= end; row += 4) {
      NibbleWordRows<4, 1, kFiveBits>(codec, constants, codes, norms, row, x, stride, shape.y, shape.rows);
    }
  }
  for (; row < end; ++row) {
    switch (shape.batch) {
      case 4: NibbleWordRows<1, 4, kFiveBits>(codec, constants, codes, norms, row, x, stride, shape.y, shape.rows); break;
      case 3: NibbleWordRows<1, 3, kFiveBits>(codec, constants, codes, norms, row, x, stride, shape.y, shape.rows); break;
      case 2: NibbleWordRows<1, 2, kFiveBits>(codec, constants, codes, norms, row, x, stride, shape.y, shape.rows); break;
      default: NibbleWordRows<1, 1, kFiveBits>(codec, constants, codes, norms, row, x, stride, shape.y, shape.rows); break;
    }
  }
}
#endif  // HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3

void HlwqRows(const HlwqCodec& codec, const uint8_t* codes, const uint16_t* norms, const RowProductShape& shape,
              size_t begin, size_t end) {
  const Centroids centroids(codec.codebook().centroids);
  const size_t code_bytes = codec.layout().code_bytes;
  const size_t blocks = static_cast<size_t>(codec.layout().blocks);
  const size_t lanes = hn::Lanes(hn::ScalableTag<float>());
  const size_t block = static_cast<size_t>(codec.params().block);
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
  // Decode of Q4/Q5 on AVX-512 (Q5 at block 64 too, whose 8-byte 1-bit plane holds no whole
  // 16-lane vector: the walks below do not take it).
  if (shape.batch <= 4 && NibbleWordsApply(codec.params(), centroids)) {
    if (codec.params().bits == 5) return NibbleWordProduct<true>(codec, centroids, codes, norms, shape, begin, end);
    return NibbleWordProduct<false>(codec, centroids, codes, norms, shape, begin, end);
  }
  // Q8 with AVX-512 VBMI: byte-plane lookups instead of gathers (hlwq_q8_byte_lookup.cc).
  if (hlwq_q8_byte_lookup_applies(codec.params(), shape.batch)) {
    return hlwq_q8_byte_lookup_rows(codec, codes, norms, shape, begin, end);
  }
  // 2 and 3 bits at the blocks --block auto gives (64 and 128), geometry fixed at compile time.
  if (shape.batch <= 4 && lanes == 16 && (block == 64 || block == 128) &&
      (codec.params().bits == 2 || codec.params().bits == 3)) {
    using D = hn::ScalableTag<float>;
    if (codec.params().bits == 3) {
      if (block == 64) return FusedRowTilesForBatch<D, 3, 64>(codec, centroids, codes, norms, begin, end, shape);
      return FusedRowTilesForBatch<D, 3, 128>(codec, centroids, codes, norms, begin, end, shape);
    }
    if (block == 64) return FusedRowTilesForBatch<D, 2, 64>(codec, centroids, codes, norms, begin, end, shape);
    return FusedRowTilesForBatch<D, 2, 128>(codec, centroids, codes, norms, begin, end, shape);
  }
#endif
  if (shape.batch <= 4 && block >= 2 * lanes && block / lanes <= PlaneWalk::kMaxVectors &&
      PlanesHoldWholeVectors(codec.params(), lanes)) {
    // Decode (small batch): codes straight into multiply-adds, one pass over the weight.
    if (codec.params().bits >= 4) {
      return FusedRowsWideForBatch<hn::ScalableTag<float>>(codec, centroids, codes, norms, begin, end, shape);
    }
    return FusedRowTilesForBatch<hn::ScalableTag<float>>(codec, centroids, codes, norms, begin, end, shape);
  }
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
  // AVX-512 with a block whose planes hold whole 8-lane but not 16-lane vectors and that the
  // nibble-word path above does not take (Q6 at block 32, Q7 at block 64): the same fused decode
  // in 256-bit vectors. The scratch path below would decode every weight to floats first.
  using HalfTag = hn::CappedTag<float, 8>;
  if (shape.batch <= 4 && lanes == 16 && block >= 16 && PlanesHoldWholeVectors(codec.params(), 8)) {
    if (codec.params().bits >= 4) {
      return FusedRowsWideForBatch<HalfTag>(codec, centroids, codes, norms, begin, end, shape);
    }
    return FusedRowTilesForBatch<HalfTag>(codec, centroids, codes, norms, begin, end, shape);
  }
#endif
  // Larger batches (or small blocks): decode rows into scratch once, reuse them for every batch tile.
  auto scratch = hwy::AllocateAligned<float>(shape.chunk_rows * shape.length);
  const auto decode = [&](auto lookup_kind) {
    ProductOfRows<float>(shape, begin, end, scratch.get(), [&](size_t row, float* out) {
      DecodeRotatedRow<decltype(lookup_kind)::value>(codec, centroids, codes + row * code_bytes,
                                                     norms + row * blocks, out);
      return static_cast<const float*>(out);
    });
  };
  switch (LookupFor(centroids, lanes)) {
    case Lookup::kOneVector: return decode(std::integral_constant<Lookup, Lookup::kOneVector>());
    case Lookup::kTwoVectors: return decode(std::integral_constant<Lookup, Lookup::kTwoVectors>());
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
    case Lookup::kFourVectors: return decode(std::integral_constant<Lookup, Lookup::kFourVectors>());
#endif
    default: return decode(std::integral_constant<Lookup, Lookup::kGather>());
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace hlwq
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace hlwq {

HWY_EXPORT(HlwqRows);

bool hlwq_linear_applies(const LinearWeight& weight) {
  return weight.format == LinearFormat::hlwq && weight.codec != nullptr &&
         weight.codec->params().block <= 1024;
}

namespace {

// x' rows (blocks * d floats each): the activation row zero-padded, times the signs, each block
// through the orthonormal transform. One pass per call, shared by every weight row. Without
// rotation (the ablation baselines) only the copy and the zero padding remain.
std::vector<float> rotate_activations(const HlwqCodec& codec, std::span<const float> x, size_t batch,
                                      ThreadPool& pool) {
  const size_t columns = static_cast<size_t>(codec.layout().columns);
  const size_t block = static_cast<size_t>(codec.params().block);
  const size_t padded = static_cast<size_t>(codec.layout().blocks) * block;
  const std::span<const float> signs = codec.padded_signs();
  std::vector<float> rotated(batch * padded, 0.0f);
  pool.parallel_for(batch, [&](size_t begin, size_t end) {
    for (size_t b = begin; b < end; ++b) {
      float* row = rotated.data() + b * padded;
      std::memcpy(row, x.data() + b * columns, columns * sizeof(float));
      if (!signs.empty()) {
        for (size_t c = 0; c < columns; ++c) row[c] *= signs[c];
      }
      if (codec.params().rotation == Rotation::none) continue;
      for (size_t first = 0; first < padded; first += block) walsh_hadamard_transform({row + first, block});
    }
  });
  return rotated;
}

}  // namespace

std::shared_ptr<const std::vector<float>> hlwq_rotated_activations(const LinearWeight& weight,
                                                                   std::span<const float> x, int64_t batch,
                                                                   ThreadPool& pool) {
  check(hlwq_linear_applies(weight), "internal: hlwq_linear_forward on a weight it does not apply to");
  check(batch >= 0 && x.size() == static_cast<size_t>(batch * weight.columns), "internal: hlwq_linear_forward x has ",
        x.size(), " values for batch ", batch, " and ", weight.columns, " columns");
  return std::make_shared<const std::vector<float>>(
      rotate_activations(*weight.codec, x, static_cast<size_t>(batch), pool));
}

bool hlwq_same_rotation(const LinearWeight& a, const LinearWeight& b) {
  if (!hlwq_linear_applies(a) || !hlwq_linear_applies(b)) return false;
  const HlwqCodec &first = *a.codec, &second = *b.codec;
  const std::span<const float> first_signs = first.padded_signs(), second_signs = second.padded_signs();
  return first.layout().columns == second.layout().columns && first.params().block == second.params().block &&
         first.params().rotation == second.params().rotation &&
         std::equal(first_signs.begin(), first_signs.end(), second_signs.begin(), second_signs.end());
}

RowProduct hlwq_row_product(const LinearWeight& weight, std::shared_ptr<const std::vector<float>> rotated,
                            int64_t batch, std::span<float> y) {
  check(hlwq_linear_applies(weight), "internal: hlwq_linear_forward on a weight it does not apply to");
  const HlwqCodec& codec = *weight.codec;
  const HlwqRowLayout& layout = codec.layout();
  const size_t rows = static_cast<size_t>(weight.rows);
  check(layout.columns == weight.columns && weight.codes.size() == rows * layout.code_bytes &&
            weight.norms.size() == rows * static_cast<size_t>(layout.blocks) * sizeof(uint16_t),
        "internal: hlwq_linear_forward sizes do not match the ", rows, "x", weight.columns, " weight");
  // The product runs on the rotated activations: rows of whole blocks (zero-padded).
  const size_t padded = static_cast<size_t>(layout.blocks * codec.params().block);
  check(batch >= 0 && rotated != nullptr && rotated->size() == static_cast<size_t>(batch) * padded &&
            y.size() == static_cast<size_t>(batch) * rows,
        "internal: hlwq_linear_forward sizes do not match the ", rows, "x", weight.columns, " weight");
  RowProductShape shape;
  shape.x = rotated->data();
  shape.batch = static_cast<size_t>(batch);
  shape.x_stride = shape.length = padded;
  shape.y = y.data();
  shape.rows = rows;
  shape.chunk_rows = chunk_rows_for(shape.batch, padded);
  const uint8_t* codes = weight.codes.as<uint8_t>().data();
  const uint16_t* norms = weight.norms.as<uint16_t>().data();
  // The kernel holds the rotated activations: the shape points into them.
  return {shape, [&codec, codes, norms, rotated = std::move(rotated)](const RowProductShape& part, size_t begin,
                                                                      size_t end) {
            HWY_DYNAMIC_DISPATCH(HlwqRows)(codec, codes, norms, part, begin, end);
          }};
}

void hlwq_linear_forward(const LinearWeight& weight, std::span<const float> x, int64_t batch,
                         std::span<float> y, ThreadPool& pool) {
  const RowProduct product = hlwq_row_product(weight, hlwq_rotated_activations(weight, x, batch, pool), batch, y);
  parallel_rows(pool, product.shape, product.kernel);
}

}  // namespace hlwq
#endif  // HWY_ONCE
