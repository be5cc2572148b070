#include "ops/linear_weight_builders.h"

#include "core/error.h"

namespace hlwq {

namespace {

void check_matrix(std::span<const float> weights, int64_t rows, int64_t columns) {
  check(rows > 0 && columns > 0 && static_cast<int64_t>(weights.size()) == rows * columns,
        "matrix has ", weights.size(), " values, expected ", rows, "x", columns);
}

}  // namespace

LinearWeight make_dense_linear_weight(DType dtype, std::span<const float> weights, int64_t rows, int64_t columns) {
  check_matrix(weights, rows, columns);
  check(dtype == DType::F32 || dtype == DType::F16 || dtype == DType::BF16, "dense linear weight dtype ",
        dtype_name(dtype), " is not F32, F16 or BF16");
  LinearWeight weight;
  weight.format = LinearFormat::dense;
  weight.rows = rows;
  weight.columns = columns;
  weight.dtype = dtype;
  weight.data = AlignedBuffer(weights.size() * dtype_size(dtype));
  convert_from_float(weights, dtype, {weight.data.data(), weight.data.size()});
  return weight;
}

LinearWeight make_hlwq_linear_weight(std::shared_ptr<const HlwqCodec> codec, std::span<const float> weights,
                                     int64_t rows, ThreadPool& pool) {
  check(codec != nullptr, "internal: make_hlwq_linear_weight without a codec");
  const HlwqRowLayout& layout = codec->layout();
  check_matrix(weights, rows, layout.columns);
  LinearWeight weight;
  weight.format = LinearFormat::hlwq;
  weight.rows = rows;
  weight.columns = layout.columns;
  weight.dtype = DType::F32;
  weight.codes = AlignedBuffer(static_cast<size_t>(rows) * layout.code_bytes);
  weight.norms = AlignedBuffer(static_cast<size_t>(rows * layout.blocks) * sizeof(uint16_t));
  codec->quantize_matrix(DType::F32, std::as_bytes(weights), rows, weight.codes.as_mutable<uint8_t>(),
                         weight.norms.as_mutable<uint16_t>(), pool);
  weight.codec = std::move(codec);
  return weight;
}

LinearWeight make_mlx_affine_linear_weight(const AffineParams& params, DType scale_dtype,
                                           std::span<const float> weights, int64_t rows, int64_t columns) {
  check_matrix(weights, rows, columns);
  check(affine_can_quantize(columns, params), "MLX affine cannot quantize ", columns, " columns in groups of ",
        params.group_size);
  LinearWeight weight;
  weight.format = LinearFormat::mlx_affine;
  weight.rows = rows;
  weight.columns = columns;
  weight.dtype = scale_dtype;
  weight.affine = params;
  weight.packed = AlignedBuffer(static_cast<size_t>(rows) * affine_packed_words_per_row(columns, params.bits) * 4);
  const size_t groups = static_cast<size_t>(rows * columns / params.group_size);
  weight.scales.resize(groups);
  weight.biases.resize(groups);
  affine_quantize_rows(params, scale_dtype, weights, rows, columns, weight.packed.as_mutable<uint32_t>(),
                       weight.scales, weight.biases);
  return weight;
}

LinearWeight make_int4_linear_weight(const Int4Params& params, DType scale_dtype, std::span<const float> weights,
                                     int64_t rows, int64_t columns) {
  check_matrix(weights, rows, columns);
  check(int4_can_quantize(columns, params), "INT4 cannot quantize ", columns, " columns in groups of ",
        params.group_size);
  LinearWeight weight;
  weight.format = LinearFormat::ct_int4;
  weight.rows = rows;
  weight.columns = columns;
  weight.dtype = scale_dtype;
  weight.int4 = params;
  weight.packed = AlignedBuffer(static_cast<size_t>(rows * columns / 2));
  weight.scales.resize(static_cast<size_t>(rows * columns / params.group_size));
  int4_quantize_rows(params, scale_dtype, weights, rows, columns, weight.packed.as_mutable<int32_t>(), weight.scales);
  return weight;
}

}  // namespace hlwq
