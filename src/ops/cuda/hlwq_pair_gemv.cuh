// Version 4 of the HLWQ decode product (hlwq_pair_gemv.cu): Q4 codes through a table of code pairs
// into tensor-core products. Used by hlwq_gemv.cu, which owns the version dispatch and the rotation.
#pragma once

#include <cstdint>

#include "ops/cuda/linear_kernels.h"

namespace hlwq::cuda::kernels {

// Whether the rotation also writes the fp16 pair layout version 4 reads: power-of-two blocks of 128
// to 1024 at any width (weights that share a rotation share its output, whatever their widths).
bool hlwq_pairs_apply(const HlwqView& weight);
// Whether version 4 takes this product: Q4, hlwq_pairs_apply and 1 <= batch <= 16.
bool hlwq_pair_gemv_applies(const HlwqView& weight, int64_t batch);
// y (batch x rows) from `pairs`: per row of x, padded_columns / 2 words, word P b + j of block b
// holding half2(x'[b d + j], x'[b d + j + P]) with P = d / 2 (hlwq_rotate_activations writes them).
void hlwq_pair_gemv(const HlwqView& weight, const uint32_t* pairs, int64_t batch, float* y, cudaStream_t stream);

}  // namespace hlwq::cuda::kernels
