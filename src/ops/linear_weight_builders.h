// LinearWeight from an in-memory float matrix, quantized into each storage format: what tests and
// benchmarks use instead of a model folder.
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "core/dtype.h"
#include "core/thread_pool.h"
#include "ops/linear_weight.h"

namespace hlwq {

// weights: rows x columns floats, row-major. Each builder throws hlwq::Error on bad parameters or
// sizes, like the quantizer it calls.

// Stored as dtype (F32, F16 or BF16; values rounded to it).
LinearWeight make_dense_linear_weight(DType dtype, std::span<const float> weights, int64_t rows, int64_t columns);

// Quantized with codec (whose column count gives the row length).
LinearWeight make_hlwq_linear_weight(std::shared_ptr<const HlwqCodec> codec, std::span<const float> weights,
                                     int64_t rows, ThreadPool& pool);

// MLX affine codes with scales and biases rounded to scale_dtype (as mlx_lm writes them).
LinearWeight make_mlx_affine_linear_weight(const AffineParams& params, DType scale_dtype,
                                           std::span<const float> weights, int64_t rows, int64_t columns);

// CompressedTensors INT4 with scales rounded to scale_dtype.
LinearWeight make_int4_linear_weight(const Int4Params& params, DType scale_dtype, std::span<const float> weights,
                                     int64_t rows, int64_t columns);

}  // namespace hlwq
