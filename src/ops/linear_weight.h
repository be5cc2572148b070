// A linear layer's weight held in its storage format (dense, HLWQ codes, trellis codes, MLX affine,
// CT INT4), in owned, 64-byte-aligned buffers, ready for the kernels in ops/ to run without ever
// expanding the whole matrix to floats. Built from a model folder's logical tensor.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "convert/model_weights.h"
#include "core/aligned_buffer.h"
#include "core/dtype.h"
#include "quant/affine_quant.h"
#include "quant/hlwq_codec.h"
#include "quant/int4_symmetric.h"
#include "quant/trellis_codec.h"

namespace hlwq {

enum class LinearFormat { dense, hlwq, trellis, mlx_affine, ct_int4 };

struct LinearWeight {
  LinearFormat format = LinearFormat::dense;
  int64_t rows = 0;     // output features
  int64_t columns = 0;  // input features
  DType dtype = DType::F32;  // dense: element dtype (F32, F16, BF16); mlx/int4: dtype of scales/biases

  // dense: rows x columns elements of `dtype`.
  AlignedBuffer data;
  // hlwq: rows x layout().code_bytes packed codes, rows x layout().blocks fp16 norms.
  std::shared_ptr<const HlwqCodec> codec;
  AlignedBuffer codes;
  AlignedBuffer norms;
  // trellis: rows x layout().code_bytes walks in `codes`, rows x layout().blocks fp16 gains in `norms`.
  std::shared_ptr<const TrellisCodec> trellis;
  // mlx_affine: rows x words uint32 codes; scales and biases rows x columns/group as float.
  AffineParams affine;
  AlignedBuffer packed;
  std::vector<float> scales;
  std::vector<float> biases;
  // ct_int4: rows x columns/8 int32 nibbles (packed), scales rows x columns/group (scales above).
  Int4Params int4;

  uint64_t stored_bytes() const;  // bytes a matrix-vector product must read
};

// Loads a 2-D logical tensor of a model folder in its own format (dense tensors keep their dtype).
LinearWeight load_linear_weight(const ModelWeights& model, const LogicalTensor& tensor);

// How an MLX affine row becomes floats: `matmul` in float (s * q + b), as MLX's quantized matmul
// computes it; `dequantize` rounded to the scale dtype, as mx.dequantize (and MLX's
// QuantizedEmbedding lookup) does. Other formats ignore it.
enum class AffineArithmetic { matmul, dequantize };

// Row `row` of the weight as floats, through the formats' own dequantizers (out: columns floats).
void dequantize_linear_row(const LinearWeight& weight, int64_t row, std::span<float> out,
                           AffineArithmetic affine_arithmetic);

// Plain reference: y[b, r] = sum_c W[r, c] * x[b, c] for b < batch, with W dequantized one row at a
// time through quant/'s reference dequantizers and sums in double. Every fast kernel is tested
// against this on random inputs.
void linear_forward_reference(const LinearWeight& weight, std::span<const float> x, int64_t batch,
                              std::span<float> y);

}  // namespace hlwq
