// HLWQ Q8 decode by byte-plane lookups (AVX-512 VBMI). A float centroid is four bytes; byte plane k
// of the 256-entry table is 256 bytes, four 64-byte registers. vpermt2b looks up 64 codes in 128
// entries (the low 7 bits), so two of them and a blend on bit 7 give byte k of c[code] for 64 codes.
// Four planes, then two rounds of unpacks interleave the bytes into 64 floats: 12 lookups/blends and
// 8 unpacks per 64 codes, where the gather path spends four 16-lane gathers, each microcoded on the
// development VM's Xeon.
//
// The unpacks work inside 128-bit lanes: float vector m of a group gets, in 128-bit lane L and
// element r, the byte at position 16 L + 4 m + r. The codes are put in that order first (one vpermb
// with kCodeOrder), so that float vector m holds codes 16 m .. 16 m + 15 in order and meets the
// activations as they are stored.
//
// Highway's dispatch does not build an AVX-512 VBMI target here, so this file is plain x86 code
// compiled for those instructions by function attributes and called only after a CPU check.
#include "ops/cpu/hlwq_q8_byte_lookup.h"

#include <array>
#include <cmath>
#include <cstring>
#include <span>

#include "core/error.h"
#include "quant/code_packing.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
// GCC 12's AVX-512 headers pass an undefined vector as the unused merge source of andnot and
// inserti64x4, which -Wmaybe-uninitialized reports at every use; nothing here reads such a value.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#define HLWQ_Q8_BYTE_LOOKUP 1
#else
#define HLWQ_Q8_BYTE_LOOKUP 0
#endif

namespace hlwq {

#if HLWQ_Q8_BYTE_LOOKUP
namespace {

// Everything below runs with these instructions; nothing is inlined into code compiled without them.
#define HLWQ_VBMI_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vbmi,f16c,fma")))

// Position p of a group of 64 codes (after the vpermb) takes code kCodeOrder[p] (see the top).
constexpr std::array<uint8_t, 64> code_order() {
  std::array<uint8_t, 64> order{};
  for (size_t p = 0; p < 64; ++p) {
    const size_t lane = p / 16, m = (p % 16) / 4, r = p % 4;
    order[p] = static_cast<uint8_t>(16 * m + 4 * lane + r);
  }
  return order;
}
alignas(64) constexpr std::array<uint8_t, 64> kCodeOrder = code_order();

// Byte plane k of the table: planes[k][i] = byte k of centroid i (256 entries, zero-padded).
struct BytePlanes {
  alignas(64) uint8_t planes[4][256] = {};
  explicit BytePlanes(std::span<const float> centroids) {
    for (size_t i = 0; i < centroids.size() && i < 256; ++i) {
      uint32_t bits;
      std::memcpy(&bits, &centroids[i], sizeof bits);
      for (size_t k = 0; k < 4; ++k) planes[k][i] = static_cast<uint8_t>(bits >> (8 * k));
    }
  }
};

// The 64 floats c[code] of 64 codes in kCodeOrder positions, as four vectors in code order.
HLWQ_VBMI_TARGET inline void LookupGroup(const BytePlanes& table, __m512i ordered_codes, __m512 (&values)[4]) {
  const __mmask64 upper = _mm512_movepi8_mask(ordered_codes);  // bit 7: entries 128..255
  __m512i bytes[4];
  for (size_t k = 0; k < 4; ++k) {
    const uint8_t* plane = table.planes[k];
    const __m512i low = _mm512_permutex2var_epi8(_mm512_load_si512(plane), ordered_codes,
                                                 _mm512_load_si512(plane + 64));
    const __m512i high = _mm512_permutex2var_epi8(_mm512_load_si512(plane + 128), ordered_codes,
                                                  _mm512_load_si512(plane + 192));
    bytes[k] = _mm512_mask_blend_epi8(upper, low, high);
  }
  const __m512i words01_low = _mm512_unpacklo_epi8(bytes[0], bytes[1]);
  const __m512i words01_high = _mm512_unpackhi_epi8(bytes[0], bytes[1]);
  const __m512i words23_low = _mm512_unpacklo_epi8(bytes[2], bytes[3]);
  const __m512i words23_high = _mm512_unpackhi_epi8(bytes[2], bytes[3]);
  values[0] = _mm512_castsi512_ps(_mm512_unpacklo_epi16(words01_low, words23_low));
  values[1] = _mm512_castsi512_ps(_mm512_unpackhi_epi16(words01_low, words23_low));
  values[2] = _mm512_castsi512_ps(_mm512_unpacklo_epi16(words01_high, words23_high));
  values[3] = _mm512_castsi512_ps(_mm512_unpackhi_epi16(words01_high, words23_high));
}

// sums[t][m] += values[m] * x[t][first + 16 m ..].
template <size_t kTile>
HLWQ_VBMI_TARGET inline void AccumulateGroup(const __m512 (&values)[4], const float* x, size_t x_stride, size_t first,
                                             __m512 (&sums)[kTile][4]) {
  for (size_t t = 0; t < kTile; ++t) {
    for (size_t m = 0; m < 4; ++m) {
      sums[t][m] = _mm512_fmadd_ps(values[m], _mm512_loadu_ps(x + t * x_stride + first + 16 * m), sums[t][m]);
    }
  }
}

// The 8-bit codes of a block are two nibble planes (docs/FORMAT.md): byte j of each holds code j in
// its low nibble and code j + block / 2 in its high one; plane 0 gives the low 4 bits, plane 1 the
// high 4. 64 bytes of each give the codes of two groups of 64: `first` and `second`.
HLWQ_VBMI_TARGET inline void AssembleCodes(__m512i low_plane, __m512i high_plane, __m512i& first, __m512i& second) {
  const __m512i nibble = _mm512_set1_epi8(0x0f);
  // Bytes are shifted inside 16-bit lanes; bits that cross into the neighbour byte are masked off.
  first = _mm512_or_si512(_mm512_and_si512(low_plane, nibble),
                          _mm512_andnot_si512(nibble, _mm512_slli_epi16(high_plane, 4)));
  second = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(low_plane, 4), nibble),
                           _mm512_andnot_si512(nibble, high_plane));
}

// The sum of a vector's 16 lanes.
HLWQ_VBMI_TARGET inline float SumOfLanes(__m512 v) {
  const __m256 halves = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
  __m128 quarters = _mm_add_ps(_mm256_castps256_ps128(halves), _mm256_extractf128_ps(halves, 1));
  quarters = _mm_add_ps(quarters, _mm_movehl_ps(quarters, quarters));
  return _mm_cvtss_f32(_mm_add_ss(quarters, _mm_movehdup_ps(quarters)));
}

// kBlock64: blocks of 64 (one group of codes from two half planes), else multiples of 128. Two
// instantiations, so that each keeps the 16 table registers across its loop: with both layouts in
// one function the compiler reloaded the table from memory for every block of 64.
template <size_t kTile, bool kBlock64>
HLWQ_VBMI_TARGET void Q8Rows(const BytePlanes& table, size_t block, size_t blocks, size_t code_bytes,
                             const uint8_t* codes, const uint16_t* norms, const RowProductShape& shape, size_t begin,
                             size_t end) {
  const __m512i order = _mm512_load_si512(kCodeOrder.data());
  const float inverse_root = static_cast<float>(1.0 / std::sqrt(static_cast<double>(block)));
  const size_t half = block / 2;
  for (size_t row = begin; row < end; ++row) {
    const uint8_t* codes_row = codes + row * code_bytes;
    __m512 totals[kTile];
    for (size_t t = 0; t < kTile; ++t) totals[t] = _mm512_setzero_ps();
    for (size_t b = 0; b < blocks; ++b) {
      const uint8_t* packed = codes_row + b * block;  // 8 bits: a block is `block` bytes
      const float* x = shape.x + b * block;
      _mm_prefetch(reinterpret_cast<const char*>(packed + 1024), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(packed + 1024 + 64), _MM_HINT_T0);
      __m512 sums[kTile][4];
      for (size_t t = 0; t < kTile; ++t) {
        for (size_t m = 0; m < 4; ++m) sums[t][m] = _mm512_setzero_ps();
      }
      __m512 values[4];
      if constexpr (kBlock64) {
        // 32 bytes a plane: codes 0..31 and 32..63, joined into one group of 64.
        const __m256i low_plane = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(packed));
        const __m256i high_plane = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(packed + 32));
        __m512i first, second;
        AssembleCodes(_mm512_zextsi256_si512(low_plane), _mm512_zextsi256_si512(high_plane), first, second);
        const __m512i group = _mm512_inserti64x4(first, _mm512_castsi512_si256(second), 1);
        LookupGroup(table, _mm512_permutexvar_epi8(order, group), values);
        AccumulateGroup<kTile>(values, x, shape.x_stride, 0, sums);
      } else {
        for (size_t chunk = 0; chunk < half; chunk += 64) {
          __m512i first, second;
          AssembleCodes(_mm512_loadu_si512(packed + chunk), _mm512_loadu_si512(packed + half + chunk), first, second);
          LookupGroup(table, _mm512_permutexvar_epi8(order, first), values);
          AccumulateGroup<kTile>(values, x, shape.x_stride, chunk, sums);
          LookupGroup(table, _mm512_permutexvar_epi8(order, second), values);
          AccumulateGroup<kTile>(values, x, shape.x_stride, half + chunk, sums);
        }
      }
      const __m512 scale = _mm512_set1_ps(_cvtsh_ss(norms[row * blocks + b]) * inverse_root);
      for (size_t t = 0; t < kTile; ++t) {
        const __m512 block_sum = _mm512_add_ps(_mm512_add_ps(sums[t][0], sums[t][1]), _mm512_add_ps(sums[t][2], sums[t][3]));
        totals[t] = _mm512_fmadd_ps(block_sum, scale, totals[t]);
      }
    }
    for (size_t t = 0; t < kTile; ++t) shape.y[t * shape.rows + row] = SumOfLanes(totals[t]);
  }
}

template <size_t kTile>
void Q8RowsForBlock(const BytePlanes& table, size_t block, size_t blocks, size_t code_bytes, const uint8_t* codes,
                    const uint16_t* norms, const RowProductShape& shape, size_t begin, size_t end) {
  if (block == 64) return Q8Rows<kTile, true>(table, block, blocks, code_bytes, codes, norms, shape, begin, end);
  Q8Rows<kTile, false>(table, block, blocks, code_bytes, codes, norms, shape, begin, end);
}

#undef HLWQ_VBMI_TARGET

}  // namespace
#endif  // HLWQ_Q8_BYTE_LOOKUP

bool hlwq_q8_byte_lookup_applies(const HlwqParams& params, size_t batch) {
#if HLWQ_Q8_BYTE_LOOKUP
  static const bool cpu_has_vbmi = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                                   __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
                                   __builtin_cpu_supports("avx512vbmi");
  const int block = params.block;
  return cpu_has_vbmi && params.bits == 8 && batch >= 1 && batch <= 4 &&
         (block == 64 || (block % 128 == 0 && block <= 1024));
#else
  (void)params;
  (void)batch;
  return false;
#endif
}

void hlwq_q8_byte_lookup_rows(const HlwqCodec& codec, const uint8_t* codes, const uint16_t* norms,
                              const RowProductShape& shape, size_t begin, size_t end) {
  check(hlwq_q8_byte_lookup_applies(codec.params(), shape.batch),
        "internal: hlwq_q8_byte_lookup_rows on a weight or CPU it does not serve");
#if HLWQ_Q8_BYTE_LOOKUP
  const BytePlanes table(codec.codebook().centroids);  // 256 centroids: bits is 8
  const size_t block = static_cast<size_t>(codec.params().block);
  const size_t blocks = static_cast<size_t>(codec.layout().blocks);
  const size_t code_bytes = codec.layout().code_bytes;
  switch (shape.batch) {
    case 4: return Q8RowsForBlock<4>(table, block, blocks, code_bytes, codes, norms, shape, begin, end);
    case 3: return Q8RowsForBlock<3>(table, block, blocks, code_bytes, codes, norms, shape, begin, end);
    case 2: return Q8RowsForBlock<2>(table, block, blocks, code_bytes, codes, norms, shape, begin, end);
    default: return Q8RowsForBlock<1>(table, block, blocks, code_bytes, codes, norms, shape, begin, end);
  }
#endif
}

}  // namespace hlwq
