// HLWQ Q8 decode (batch of 1..4 activation rows) on x86 CPUs with AVX-512 VBMI: the 256-entry
// centroid table is looked up one byte plane of the floats at a time, 64 codes per vpermt2b,
// instead of a 16-lane gather per 16 codes (which held Q8 decode at about half the bandwidth).
#pragma once

#include <cstddef>
#include <cstdint>

#include "ops/cpu/row_product.h"
#include "quant/hlwq_codec.h"

namespace hlwq {

// True where this kernel serves the weight: 8-bit codes, blocks of 64 or a multiple of 128 (at most
// 1024), at most 4 activation rows, and a CPU with AVX-512 F, BW and VBMI.
bool hlwq_q8_byte_lookup_applies(const HlwqParams& params, size_t batch);

// Rows [begin, end) of y = W x' for the rotated activations of `shape` (as HlwqRows computes them).
void hlwq_q8_byte_lookup_rows(const HlwqCodec& codec, const uint8_t* codes, const uint16_t* norms,
                              const RowProductShape& shape, size_t begin, size_t end);

}  // namespace hlwq
