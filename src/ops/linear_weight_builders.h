// LinearWeight from an in-memory float matrix, quantized into each storage format: what tests and
// benchmarks use instead of a model folder.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

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

// Trellis-coded with codec (whose column count gives the row length).
LinearWeight make_trellis_linear_weight(std::shared_ptr<const TrellisCodec> codec, std::span<const float> weights,
                                        int64_t rows, ThreadPool& pool);

// MLX affine codes with scales and biases rounded to scale_dtype (as mlx_lm writes them).
LinearWeight make_mlx_affine_linear_weight(const AffineParams& params, DType scale_dtype,
                                           std::span<const float> weights, int64_t rows, int64_t columns);

// CompressedTensors INT4 with scales rounded to scale_dtype.
LinearWeight make_int4_linear_weight(const Int4Params& params, DType scale_dtype, std::span<const float> weights,
                                     int64_t rows, int64_t columns);

// A weight of the given shape in a storage format, filled with random contents directly (codes,
// gains, scales), without a float matrix: what `hlwq bench --synthetic` runs at 8B sizes in
// seconds. Values stay in the range of real weights (|w| about 0.004-0.06; no NaN or Inf), and
// every product reads exactly the bytes a quantized model of that shape would.
struct RandomLinearFormat {
  LinearFormat format = LinearFormat::dense;
  DType dense_dtype = DType::BF16;  // dense
  int bits = 4;                     // hlwq (2..8), trellis (k), mlx_affine
  int block = 128;                  // hlwq, trellis: the preferred block (fitted to the row as quantize does)
  int group_size = 64;              // mlx_affine, ct_int4
  int state_bits = 12;              // trellis (L)
  // trellis: trellis_codebook(state_bits), shared by every weight made with this format; computed
  // per weight when null.
  std::shared_ptr<const std::vector<float>> trellis_codebook = nullptr;
};
LinearWeight make_random_linear_weight(const RandomLinearFormat& format, int64_t rows, int64_t columns, uint64_t seed,
                                       ThreadPool& pool);

}  // namespace hlwq
