#include "convert/model_weights.h"

#include <cstring>
#include <map>
#include <set>

#include "core/error.h"
#include "quant/affine_quant.h"
#include "quant/int4_symmetric.h"

namespace hlwq {

namespace fs = std::filesystem;
using nlohmann::json;

uint64_t LogicalTensor::element_count() const {
  uint64_t count = 1;
  for (int64_t dim : shape) count *= static_cast<uint64_t>(dim);
  return count;
}

double LogicalTensor::bits_per_weight() const {
  const uint64_t elements = element_count();
  return elements == 0 ? 0.0 : 8.0 * static_cast<double>(stored_bytes) / static_cast<double>(elements);
}

std::string LogicalTensor::format_name() const {
  switch (format) {
    case WeightFormat::dense: return std::string(dtype_name(dtype));
    case WeightFormat::hlwq: return concat("hlwq-q", bits, "-b", group_size);
    case WeightFormat::trellis: return concat("trellis-k", bits, "-l", state_bits, "-b", group_size);
    case WeightFormat::mlx_affine: return concat("mlx-affine-q", bits, "-g", group_size);
    case WeightFormat::ct_int4: return concat("ct-int4-g", group_size);
  }
  return "unknown";
}

namespace {

// The spellings of docs/FORMAT.md's quantization_config.
const char* codebook_config_name(CodebookKind kind) {
  switch (kind) {
    case CodebookKind::converged: return "lloyd-max-gaussian";
    case CodebookKind::polarquant_compat: return "polarquant-compat";
    case CodebookKind::uniform: return "uniform";
  }
  fail("internal: unknown codebook kind ", static_cast<int>(kind));
}

CodebookKind codebook_from_config(const std::string& name, const std::string& where) {
  for (CodebookKind kind : {CodebookKind::converged, CodebookKind::polarquant_compat, CodebookKind::uniform}) {
    if (name == codebook_config_name(kind)) return kind;
  }
  fail("unknown codebook '", name, "', ", where);
}

}  // namespace

json hlwq_params_to_json(const HlwqParams& params) {
  json value = {
      {"quant_method", "hlwq"},
      {"format_version", 1},
      {"bits", params.bits},
      {"block_size", params.block},
      {"codebook", codebook_config_name(params.codebook)},
      {"gain", params.gain == BlockGain::norm ? "norm" : "least-squares"},
      {"sign_seed", params.sign_seed ? json(*params.sign_seed) : json(nullptr)},
      {"rotation", params.rotation == Rotation::hadamard ? "hadamard" : "none"},
  };
  return value;
}

HlwqParams hlwq_params_from_json(const json& config, const std::string& where) {
  HlwqParams params;
  try {
    check(config.value("format_version", 0) == 1, "unsupported HLWQ format_version, ", where);
    params.bits = config.at("bits").get<int>();
    params.block = config.at("block_size").get<int>();
    params.codebook = codebook_from_config(config.at("codebook").get<std::string>(), where);
    const std::string gain = config.at("gain").get<std::string>();
    check(gain == "norm" || gain == "least-squares", "unknown gain '", gain, "', ", where);
    params.gain = gain == "norm" ? BlockGain::norm : BlockGain::least_squares;
    const json& seed = config.at("sign_seed");
    if (!seed.is_null()) params.sign_seed = seed.get<uint64_t>();
    // Absent in folders written before the ablation variants existed: those are all Hadamard.
    const std::string rotation = config.value("rotation", std::string("hadamard"));
    check(rotation == "hadamard" || rotation == "none", "unknown rotation '", rotation, "', ", where);
    params.rotation = rotation == "hadamard" ? Rotation::hadamard : Rotation::none;
  } catch (const json::exception& error) {
    fail("invalid quantization_config: ", error.what(), ", ", where);
  }
  try {
    validate(params);
  } catch (const Error& error) {
    fail("invalid quantization_config: ", error.what(), ", ", where);
  }
  return params;
}

bool is_trellis_config(const json& config) {
  const auto codebook = config.find("codebook");
  return config.value("quant_method", "") == "hlwq" && codebook != config.end() && codebook->is_string() &&
         codebook->get<std::string>() == kTrellisCodebookName;
}

json trellis_format_to_json(const TrellisFormat& format) {
  return {
      {"quant_method", "hlwq"},
      {"format_version", 1},
      {"bits", format.bits},
      {"block_size", format.block},
      {"codebook", kTrellisCodebookName},
      {"trellis_state_bits", format.state_bits},
      {"gain", format.gain == BlockGain::norm ? "norm" : "least-squares"},
      {"sign_seed", format.sign_seed ? json(*format.sign_seed) : json(nullptr)},
      {"rotation", "hadamard"},
  };
}

TrellisFormat trellis_format_from_json(const json& config, const std::string& where) {
  TrellisFormat format;
  try {
    check(config.value("format_version", 0) == 1, "unsupported HLWQ format_version, ", where);
    check(is_trellis_config(config), "quantization_config is not trellis-coded, ", where);
    format.bits = config.at("bits").get<int>();
    format.block = config.at("block_size").get<int>();
    format.state_bits = config.at("trellis_state_bits").get<int>();
    const std::string gain = config.at("gain").get<std::string>();
    check(gain == "norm" || gain == "least-squares", "unknown gain '", gain, "', ", where);
    format.gain = gain == "norm" ? BlockGain::norm : BlockGain::least_squares;
    const json& seed = config.at("sign_seed");
    if (!seed.is_null()) format.sign_seed = seed.get<uint64_t>();
    const std::string rotation = config.value("rotation", std::string("hadamard"));
    check(rotation == "hadamard", "trellis codes need rotation 'hadamard', got '", rotation, "', ", where);
  } catch (const json::exception& error) {
    fail("invalid quantization_config: ", error.what(), ", ", where);
  }
  try {
    validate(format);
  } catch (const Error& error) {
    fail("invalid quantization_config: ", error.what(), ", ", where);
  }
  return format;
}

namespace {

std::string strip_suffix(std::string_view name, std::string_view suffix) {
  return std::string(name.substr(0, name.size() - suffix.size()));
}

bool ends_with(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

// Tensor data in a safetensors file need not be aligned for T, so it is copied.
template <class T>
std::vector<T> copy_as(std::span<const std::byte> bytes) {
  std::vector<T> values(bytes.size() / sizeof(T));
  std::memcpy(values.data(), bytes.data(), values.size() * sizeof(T));
  return values;
}

std::vector<float> to_floats(DType dtype, std::span<const std::byte> bytes) {
  std::vector<float> values(bytes.size() / dtype_size(dtype));
  convert_to_float(dtype, bytes, values);
  return values;
}

}  // namespace

ModelWeights ModelWeights::open(const fs::path& path) {
  ModelWeights model;
  model.folder_ = ModelFolder::open(path);
  const ModelFolder& folder = model.folder_;
  const std::string where = (path / "config.json").string();
  const json& config = folder.config();

  enum class Kind { none, hlwq, trellis, mlx, compressed } kind = Kind::none;
  json quantized_tensors = json::object();
  int mlx_bits = 0, mlx_group = 0, int4_group = 0;
  if (auto found = config.find("quantization_config"); found != config.end() && found->is_object()) {
    const std::string method = found->value("quant_method", "");
    if (method == "hlwq" && is_trellis_config(*found)) {
      kind = Kind::trellis;
      model.trellis_format_ = trellis_format_from_json(*found, where);
      model.trellis_codebook_ =
          std::make_shared<const std::vector<float>>(trellis_codebook(model.trellis_format_->state_bits));
      quantized_tensors = found->value("quantized_tensors", json::object());
    } else if (method == "hlwq") {
      kind = Kind::hlwq;
      model.hlwq_params_ = hlwq_params_from_json(*found, where);
      quantized_tensors = found->value("quantized_tensors", json::object());
    } else if (method == "compressed-tensors") {
      kind = Kind::compressed;
      try {
        const json& weights = found->at("config_groups").at("group_0").at("weights");
        check(weights.at("num_bits").get<int>() == 4 && weights.at("symmetric").get<bool>(),
              "only symmetric 4-bit compressed-tensors is supported, ", where);
        int4_group = weights.at("group_size").get<int>();
      } catch (const json::exception& error) {
        fail("invalid compressed-tensors quantization_config: ", error.what(), ", ", where);
      }
    }
  }
  if (kind == Kind::none) {
    if (auto found = config.find("quantization"); found != config.end() && found->is_object()) {
      kind = Kind::mlx;
      mlx_bits = found->value("bits", 0);
      mlx_group = found->value("group_size", 0);
      validate(AffineParams{mlx_bits, mlx_group});
    }
  }

  std::set<std::string> consumed;
  for (const std::string& name : folder.tensor_names()) {
    if (consumed.count(name)) continue;
    const TensorInfo& info = folder.info(name);
    LogicalTensor tensor;
    if (kind == Kind::hlwq && ends_with(name, ".hlwq_codes")) {
      const std::string base = strip_suffix(name, ".hlwq_codes");
      const std::string norms = base + ".hlwq_norms";
      check(folder.has(norms), "tensor ", name, " has no matching ", norms, ", ", path.string());
      tensor.name = base + ".weight";
      auto described = quantized_tensors.find(tensor.name);
      check(described != quantized_tensors.end(), "quantization_config.quantized_tensors lacks ", tensor.name,
            ", ", where);
      try {
        tensor.shape = described->at("shape").get<std::vector<int64_t>>();
        auto dtype = parse_dtype(described->at("dtype").get<std::string>());
        check(dtype.has_value() && is_float(*dtype), "invalid dtype for ", tensor.name, ", ", where);
        tensor.dtype = *dtype;
      } catch (const json::exception& error) {
        fail("invalid entry for ", tensor.name, ": ", error.what(), ", ", where);
      }
      check(tensor.shape.size() == 2, "HLWQ tensor ", tensor.name, " must be 2-D, ", where);
      // Per tensor since `--block auto`; folders written before carry only the model's block_size.
      // So are the bits since `--target-bpw`; folders written before carry only the model's bits.
      HlwqParams params = *model.hlwq_params_;
      try {
        params.block = described->value("block_size", params.block);
        params.bits = described->value("bits", params.bits);
        validate(params);
      } catch (const json::exception& error) {
        fail("invalid block_size or bits for ", tensor.name, ": ", error.what(), ", ", where);
      } catch (const Error& error) {
        fail("invalid block_size or bits for ", tensor.name, ": ", error.what(), ", ", where);
      }
      const HlwqRowLayout layout = hlwq_row_layout(tensor.shape[1], params);
      const TensorInfo& norms_info = folder.info(norms);
      check(info.dtype == DType::U8 && info.byte_size() == layout.code_bytes * tensor.shape[0],
            "HLWQ codes of ", tensor.name, " have the wrong size for shape [", tensor.shape[0], ", ",
            tensor.shape[1], "], ", path.string());
      check(norms_info.dtype == DType::F16 &&
                norms_info.element_count() == static_cast<uint64_t>(layout.blocks * tensor.shape[0]),
            "HLWQ norms of ", tensor.name, " have the wrong size, ", path.string());
      tensor.format = WeightFormat::hlwq;
      tensor.bits = params.bits;
      tensor.group_size = params.block;
      tensor.parts = {name, norms};
      tensor.stored_bytes = info.byte_size() + norms_info.byte_size();
    } else if (kind == Kind::trellis && ends_with(name, ".trellis_codes")) {
      model.read_trellis_tensor(name, quantized_tensors, where, tensor);
    } else if (kind == Kind::mlx && ends_with(name, ".weight") && info.dtype == DType::U32 &&
               folder.has(strip_suffix(name, ".weight") + ".scales")) {
      const std::string base = strip_suffix(name, ".weight");
      const std::string scales = base + ".scales", biases = base + ".biases";
      check(folder.has(biases), "tensor ", scales, " has no matching ", biases, ", ", path.string());
      check(info.shape.size() == 2, "MLX packed weight ", name, " must be 2-D, ", path.string());
      const int64_t columns = info.shape[1] * 32 / mlx_bits;
      tensor.name = name;
      tensor.shape = {info.shape[0], columns};
      tensor.format = WeightFormat::mlx_affine;
      tensor.dtype = folder.info(scales).dtype;
      tensor.bits = mlx_bits;
      tensor.group_size = mlx_group;
      const uint64_t groups = static_cast<uint64_t>(info.shape[0] * columns / mlx_group);
      check(folder.info(scales).element_count() == groups && folder.info(biases).element_count() == groups &&
                is_float(tensor.dtype) && folder.info(biases).dtype == tensor.dtype,
            "MLX scales/biases of ", name, " do not match its shape, ", path.string());
      tensor.parts = {name, scales, biases};
      tensor.stored_bytes = info.byte_size() + folder.info(scales).byte_size() + folder.info(biases).byte_size();
    } else if (kind == Kind::compressed && ends_with(name, ".weight_packed")) {
      const std::string base = strip_suffix(name, ".weight_packed");
      const std::string scale = base + ".weight_scale", shape = base + ".weight_shape";
      check(folder.has(scale) && folder.has(shape), "tensor ", name, " lacks weight_scale or weight_shape, ",
            path.string());
      const TensorInfo& shape_info = folder.info(shape);
      check(shape_info.element_count() == 2 && (shape_info.dtype == DType::I64 || shape_info.dtype == DType::I32),
            "weight_shape of ", base, " must hold 2 integers, ", path.string());
      const auto shape_bytes = folder.data(shape);
      int64_t rows = 0, columns = 0;
      if (shape_info.dtype == DType::I64) {
        std::memcpy(&rows, shape_bytes.data(), 8);
        std::memcpy(&columns, shape_bytes.data() + 8, 8);
      } else {
        int32_t small[2];
        std::memcpy(small, shape_bytes.data(), 8);
        rows = small[0];
        columns = small[1];
      }
      check(rows > 0 && columns > 0 && columns % 8 == 0 && columns % int4_group == 0 &&
                info.dtype == DType::I32 &&
                info.element_count() == static_cast<uint64_t>(rows * columns / 8) &&
                folder.info(scale).element_count() == static_cast<uint64_t>(rows * columns / int4_group) &&
                is_float(folder.info(scale).dtype),
            "INT4 tensors of ", base, " do not match weight_shape, ", path.string());
      tensor.name = base + ".weight";
      tensor.shape = {rows, columns};
      tensor.format = WeightFormat::ct_int4;
      tensor.dtype = folder.info(scale).dtype;
      tensor.bits = 4;
      tensor.group_size = int4_group;
      tensor.parts = {name, scale, shape};
      tensor.stored_bytes = info.byte_size() + folder.info(scale).byte_size() + shape_info.byte_size();
    } else {
      tensor.name = name;
      tensor.shape = info.shape;
      tensor.dtype = info.dtype;
      tensor.parts = {name};
      tensor.stored_bytes = info.byte_size();
    }
    for (const std::string& part : tensor.parts) consumed.insert(part);
    model.tensors_.push_back(std::move(tensor));
  }
  return model;
}

const LogicalTensor* ModelWeights::find(std::string_view name) const {
  for (const LogicalTensor& tensor : tensors_) {
    if (tensor.name == name) return &tensor;
  }
  return nullptr;
}

void ModelWeights::read_trellis_tensor(const std::string& codes_name, const json& quantized_tensors,
                                       const std::string& where, LogicalTensor& tensor) const {
  const std::string base = strip_suffix(codes_name, ".trellis_codes");
  const std::string gains = base + ".trellis_gains";
  check(folder_.has(gains), "tensor ", codes_name, " has no matching ", gains, ", ", folder_.path().string());
  tensor.name = base + ".weight";
  auto described = quantized_tensors.find(tensor.name);
  check(described != quantized_tensors.end(), "quantization_config.quantized_tensors lacks ", tensor.name, ", ",
        where);
  TrellisFormat format = *trellis_format_;
  try {
    tensor.shape = described->at("shape").get<std::vector<int64_t>>();
    auto dtype = parse_dtype(described->at("dtype").get<std::string>());
    check(dtype.has_value() && is_float(*dtype), "invalid dtype for ", tensor.name, ", ", where);
    tensor.dtype = *dtype;
    format.block = described->value("block_size", format.block);
    format.bits = described->value("bits", format.bits);
  } catch (const json::exception& error) {
    fail("invalid entry for ", tensor.name, ": ", error.what(), ", ", where);
  }
  check(tensor.shape.size() == 2 && tensor.shape[0] > 0 && tensor.shape[1] > 0, "trellis tensor ", tensor.name,
        " must be a non-empty 2-D weight, ", where);
  try {
    validate(format);
  } catch (const Error& error) {
    fail("invalid block_size or bits for ", tensor.name, ": ", error.what(), ", ", where);
  }
  const TrellisRowLayout layout = trellis_row_layout(tensor.shape[1], format);
  const TensorInfo& codes_info = folder_.info(codes_name);
  const TensorInfo& gains_info = folder_.info(gains);
  // Sizes follow from the config's shape, bits, block and state bits: a mismatch means the config is wrong.
  check(codes_info.dtype == DType::U8 && codes_info.byte_size() == layout.code_bytes * tensor.shape[0],
        "trellis codes of ", tensor.name, " have the wrong size for shape [", tensor.shape[0], ", ", tensor.shape[1],
        "], ", format.bits, " bits, block ", format.block, " and ", format.state_bits, " state bits, ", where);
  check(gains_info.dtype == DType::F16 &&
            gains_info.element_count() == static_cast<uint64_t>(layout.blocks * tensor.shape[0]),
        "trellis gains of ", tensor.name, " have the wrong size for block ", format.block, ", ", where);
  tensor.format = WeightFormat::trellis;
  tensor.bits = format.bits;
  tensor.group_size = format.block;
  tensor.state_bits = format.state_bits;
  tensor.parts = {codes_name, gains};
  tensor.stored_bytes = codes_info.byte_size() + gains_info.byte_size();
}

std::shared_ptr<const TrellisCodec> ModelWeights::trellis_codec_of(const LogicalTensor& tensor) const {
  check(trellis_format_.has_value() && tensor.format == WeightFormat::trellis, "tensor ", tensor.name,
        " is not trellis-coded");
  TrellisFormat format = *trellis_format_;
  format.bits = tensor.bits;
  format.block = tensor.group_size;
  return std::make_shared<const TrellisCodec>(format, tensor.shape[1], trellis_codebook_);
}

HlwqParams ModelWeights::hlwq_params_of(const LogicalTensor& tensor) const {
  check(hlwq_params_.has_value() && tensor.format == WeightFormat::hlwq, "tensor ", tensor.name,
        " is not HLWQ-coded");
  HlwqParams params = *hlwq_params_;
  params.bits = tensor.bits;
  params.block = tensor.group_size;
  return params;
}

std::vector<float> ModelWeights::read_float(const LogicalTensor& tensor, ThreadPool& pool) const {
  const uint64_t elements = tensor.element_count();
  switch (tensor.format) {
    case WeightFormat::dense: {
      check(is_float(tensor.dtype), "tensor ", tensor.name, " is ", dtype_name(tensor.dtype),
            ", not floating point");
      return to_floats(tensor.dtype, folder_.data(tensor.name));
    }
    case WeightFormat::hlwq: {
      const HlwqCodec codec(hlwq_params_of(tensor), tensor.shape[1]);
      const auto code_bytes = folder_.data(tensor.parts[0]);
      const std::span<const uint8_t> codes(reinterpret_cast<const uint8_t*>(code_bytes.data()), code_bytes.size());
      const auto norms = copy_as<uint16_t>(folder_.data(tensor.parts[1]));
      std::vector<float> values(elements);
      codec.dequantize_matrix(codes, norms, tensor.shape[0], values, pool);
      return values;
    }
    case WeightFormat::trellis: {
      const std::shared_ptr<const TrellisCodec> codec = trellis_codec_of(tensor);
      const auto code_bytes = folder_.data(tensor.parts[0]);
      const std::span<const uint8_t> codes(reinterpret_cast<const uint8_t*>(code_bytes.data()), code_bytes.size());
      const auto gains = copy_as<uint16_t>(folder_.data(tensor.parts[1]));
      std::vector<float> values(elements);
      codec->dequantize_matrix(codes, gains, tensor.shape[0], values, pool);
      return values;
    }
    case WeightFormat::mlx_affine: {
      const AffineParams params{tensor.bits, tensor.group_size};
      const auto packed = copy_as<uint32_t>(folder_.data(tensor.parts[0]));
      const std::vector<float> scales = to_floats(tensor.dtype, folder_.data(tensor.parts[1]));
      const std::vector<float> biases = to_floats(tensor.dtype, folder_.data(tensor.parts[2]));
      std::vector<float> values(elements);
      // Rounded through the scale dtype exactly as mx.dequantize computes it: T(T(q * s) + b).
      affine_dequantize_rows(params, tensor.dtype, packed, scales, biases, tensor.shape[0], tensor.shape[1], values);
      return values;
    }
    case WeightFormat::ct_int4: {
      const Int4Params params{tensor.group_size};
      const auto packed = copy_as<int32_t>(folder_.data(tensor.parts[0]));
      const std::vector<float> scales = to_floats(tensor.dtype, folder_.data(tensor.parts[1]));
      std::vector<float> values(elements);
      int4_dequantize_rows(params, packed, scales, tensor.shape[0], tensor.shape[1], values);
      return values;
    }
  }
  fail("unknown weight format");
}

void ModelWeights::release(const LogicalTensor& tensor) const {
  for (const std::string& part : tensor.parts) folder_.release(part);
}

}  // namespace hlwq
