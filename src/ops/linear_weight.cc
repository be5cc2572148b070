#include "ops/linear_weight.h"

#include <cstring>

#include "core/error.h"

namespace hlwq {

uint64_t LinearWeight::stored_bytes() const {
  switch (format) {
    case LinearFormat::dense: return data.size();
    case LinearFormat::hlwq: return codes.size() + norms.size();
    case LinearFormat::trellis: return codes.size() + norms.size();
    case LinearFormat::mlx_affine: return packed.size() + (scales.size() + biases.size()) * dtype_size(dtype);
    case LinearFormat::ct_int4: return packed.size() + scales.size() * dtype_size(dtype);
  }
  return 0;
}

namespace {

std::vector<float> floats_of(DType dtype, std::span<const std::byte> bytes) {
  std::vector<float> values(bytes.size() / dtype_size(dtype));
  convert_to_float(dtype, bytes, values);
  return values;
}

}  // namespace

LinearWeight load_linear_weight(const ModelWeights& model, const LogicalTensor& tensor) {
  check(tensor.shape.size() == 2, "tensor ", tensor.name, " is not a matrix");
  LinearWeight weight;
  weight.rows = tensor.shape[0];
  weight.columns = tensor.shape[1];
  weight.dtype = tensor.dtype;
  const ModelFolder& folder = model.folder();
  switch (tensor.format) {
    case WeightFormat::dense:
      check(tensor.dtype == DType::F32 || tensor.dtype == DType::F16 || tensor.dtype == DType::BF16,
            "tensor ", tensor.name, " has dtype ", dtype_name(tensor.dtype), " (need F32, F16 or BF16)");
      weight.format = LinearFormat::dense;
      weight.data = AlignedBuffer(folder.data(tensor.parts[0]));
      break;
    case WeightFormat::hlwq:
      weight.format = LinearFormat::hlwq;
      weight.codec = std::make_shared<const HlwqCodec>(model.hlwq_params_of(tensor), weight.columns);
      weight.codes = AlignedBuffer(folder.data(tensor.parts[0]));
      weight.norms = AlignedBuffer(folder.data(tensor.parts[1]));
      break;
    case WeightFormat::trellis:
      weight.format = LinearFormat::trellis;
      weight.trellis = model.trellis_codec_of(tensor);
      weight.codes = AlignedBuffer(folder.data(tensor.parts[0]));
      weight.norms = AlignedBuffer(folder.data(tensor.parts[1]));
      break;
    case WeightFormat::mlx_affine:
      weight.format = LinearFormat::mlx_affine;
      weight.affine = AffineParams{tensor.bits, tensor.group_size};
      weight.packed = AlignedBuffer(folder.data(tensor.parts[0]));
      weight.scales = floats_of(tensor.dtype, folder.data(tensor.parts[1]));
      weight.biases = floats_of(tensor.dtype, folder.data(tensor.parts[2]));
      break;
    case WeightFormat::ct_int4:
      weight.format = LinearFormat::ct_int4;
      weight.int4 = Int4Params{tensor.group_size};
      weight.packed = AlignedBuffer(folder.data(tensor.parts[0]));
      weight.scales = floats_of(tensor.dtype, folder.data(tensor.parts[1]));
      break;
  }
  return weight;
}

void dequantize_linear_row(const LinearWeight& weight, int64_t row, std::span<float> out,
                           AffineArithmetic affine_arithmetic) {
  const int64_t columns = weight.columns;
  switch (weight.format) {
    case LinearFormat::dense: {
      const size_t element = dtype_size(weight.dtype);
      convert_to_float(weight.dtype, weight.data.bytes().subspan(row * columns * element, columns * element), out);
      return;
    }
    case LinearFormat::hlwq: {
      const HlwqRowLayout& layout = weight.codec->layout();
      const auto codes = weight.codes.as<uint8_t>().subspan(row * layout.code_bytes, layout.code_bytes);
      const auto norms = weight.norms.as<uint16_t>().subspan(row * layout.blocks, layout.blocks);
      weight.codec->dequantize_row(codes, norms, out);
      return;
    }
    case LinearFormat::trellis: {
      const TrellisRowLayout& layout = weight.trellis->layout();
      const auto codes = weight.codes.as<uint8_t>().subspan(row * layout.code_bytes, layout.code_bytes);
      const auto gains = weight.norms.as<uint16_t>().subspan(row * layout.blocks, layout.blocks);
      weight.trellis->dequantize_row(codes, gains, out);
      return;
    }
    case LinearFormat::mlx_affine: {
      const size_t words = affine_packed_words_per_row(columns, weight.affine.bits);
      const int64_t groups = columns / weight.affine.group_size;
      const auto packed = weight.packed.as<uint32_t>().subspan(row * words, words);
      const auto scales = std::span<const float>(weight.scales).subspan(row * groups, groups);
      const auto biases = std::span<const float>(weight.biases).subspan(row * groups, groups);
      if (affine_arithmetic == AffineArithmetic::dequantize) {
        affine_dequantize_rows(weight.affine, weight.dtype, packed, scales, biases, 1, columns, out);
      } else {
        affine_dequantize_rows(weight.affine, packed, scales, biases, 1, columns, out);
      }
      return;
    }
    case LinearFormat::ct_int4: {
      const int64_t groups = columns / weight.int4.group_size;
      int4_dequantize_rows(weight.int4, weight.packed.as<int32_t>().subspan(row * columns / 8, columns / 8),
                           std::span<const float>(weight.scales).subspan(row * groups, groups), 1, columns, out);
      return;
    }
  }
}

void linear_forward_reference(const LinearWeight& weight, std::span<const float> x, int64_t batch,
                              std::span<float> y) {
  check(static_cast<int64_t>(x.size()) == batch * weight.columns &&
            static_cast<int64_t>(y.size()) == batch * weight.rows,
        "linear_forward_reference: x has ", x.size(), " values, y ", y.size(), " for batch ", batch, " and a ",
        weight.rows, "x", weight.columns, " weight");
  std::vector<float> row(weight.columns);
  for (int64_t r = 0; r < weight.rows; ++r) {
    if (weight.format == LinearFormat::trellis) {
      // Trellis rows through the plain decoder (the walk unpacked bit by bit, the O(d^2) transform).
      const TrellisCodec& codec = *weight.trellis;
      const TrellisRowLayout& layout = codec.layout();
      trellis_dequantize_row_reference(
          codec.format(), codec.codebook(), codec.padded_signs().first(codec.padded_signs().empty() ? 0 : weight.columns),
          weight.codes.as<uint8_t>().subspan(r * layout.code_bytes, layout.code_bytes),
          weight.norms.as<uint16_t>().subspan(r * layout.blocks, layout.blocks), row);
    } else {
      // Float arithmetic for MLX rows, as MLX's own quantized matmul computes them.
      dequantize_linear_row(weight, r, row, AffineArithmetic::matmul);
    }
    for (int64_t b = 0; b < batch; ++b) {
      double sum = 0;
      for (int64_t c = 0; c < weight.columns; ++c) sum += static_cast<double>(row[c]) * x[b * weight.columns + c];
      y[b * weight.rows + r] = static_cast<float>(sum);
    }
  }
}

}  // namespace hlwq
