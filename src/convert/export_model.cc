#include "convert/export_model.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "convert/config_shapes.h"
#include "convert/model_weights.h"
#include "convert/prism_hadamard_export.h"
#include "convert/tensor_selection.h"
#include "core/error.h"
#include "core/file_writer.h"
#include "core/interrupt.h"
#include "core/progress.h"
#include "core/staged_directory.h"
#include "convert/finish_model_folder.h"
#include "quant/affine_quant.h"
#include "quant/int4_symmetric.h"

namespace hlwq {

namespace fs = std::filesystem;
using nlohmann::json;

json ExportSummary::to_json() const {
  json summary = {{"tensors", tensors},
                  {"quantized_tensors", quantized_tensors},
                  {"left_unquantized", left_unquantized},
                  {"bytes_out", bytes_out},
                  {"seconds", seconds}};
  if (dropped_tensors != 0) summary["dropped_tensors"] = dropped_tensors;
  if (!unrotated.empty()) summary["unrotated"] = unrotated;
  return summary;
}

json compressed_tensors_config(int group_size, const std::vector<std::string>& ignored_modules) {
  // The keys compressed-tensors 0.20's own update_config writes (docs/FORMAT_EXPORTS.md).
  return {
      {"quant_method", "compressed-tensors"},
      {"format", "pack-quantized"},
      {"quantization_status", "compressed"},
      {"global_compression_ratio", nullptr},
      {"kv_cache_scheme", nullptr},
      {"moe_sparsity_config", nullptr},
      {"sparsity_config", json::object()},
      {"transform_config", json::object()},
      {"version", "0.20.0"},
      {"ignore", ignored_modules},
      {"config_groups",
       {{"group_0",
         {{"targets", json::array({"Linear"})},
          {"input_activations", nullptr},
          {"output_activations", nullptr},
          {"format", "pack-quantized"},
          {"weights",
           {{"num_bits", 4},
            {"type", "int"},
            {"symmetric", true},
            {"strategy", "group"},
            {"group_size", group_size},
            {"dynamic", false}}}}}}},
  };
}

namespace {

std::string strip_weight_suffix(const std::string& name) {
  return name.substr(0, name.size() - std::strlen(".weight"));
}

bool is_recurrent_decay_rate(const LogicalTensor& tensor) {
  const std::string_view name = tensor.name;
  return name == "A_log" || name.ends_with(".A_log");
}

bool is_linear_weight(const LogicalTensor& tensor) {
  const std::string& name = tensor.name;
  return tensor.shape.size() == 2 && name.size() > 7 && name.compare(name.size() - 7, 7, ".weight") == 0;
}

template <class T>
std::span<const std::byte> bytes_of(const std::vector<T>& values) {
  return std::as_bytes(std::span<const T>(values));
}

std::vector<std::byte> to_dtype(const std::vector<float>& values, DType dtype) {
  std::vector<std::byte> bytes(values.size() * dtype_size(dtype));
  convert_from_float(values, dtype, bytes);
  return bytes;
}

// Rounds values through `dtype` so a re-quantizer sees what a checkpoint of that dtype holds
// (the paper's pipeline goes HLWQ -> BF16 file -> MLX/INT4).
void round_through(std::vector<float>& values, DType dtype) {
  if (dtype == DType::F32) return;
  const std::vector<std::byte> bytes = to_dtype(values, dtype);
  convert_to_float(dtype, bytes, values);
}

}  // namespace

ExportSummary export_model(const fs::path& input, const fs::path& output, const ExportOptions& options) {
  if (options.target == ExportTarget::prism_hadamard) return export_prism_hadamard(input, output, options);
  const ModelWeights model = ModelWeights::open(input);
  require_tokenizer(model.folder());
  check_shapes_against_config(model.folder());
  const DType out_dtype = options.dtype.value_or(DType::BF16);
  check(out_dtype == DType::BF16 || out_dtype == DType::F16 || out_dtype == DType::F32,
        "--dtype must be bf16, f16 or f32");
  const int group_size = options.group_size.value_or(options.target == ExportTarget::ct_int4 ? 128 : 64);
  const AffineParams affine{options.bits, group_size};
  const Int4Params int4{group_size};
  if (options.target == ExportTarget::mlx) validate(affine);
  if (options.target == ExportTarget::ct_int4) {
    check(group_size == 32 || group_size == 64 || group_size == 128,
          "--group-size for ct-int4 must be 32, 64 or 128 (got ", group_size, ")");
    check(options.bits == 4, "ct-int4 is 4-bit only (got --bits ", options.bits, ")");
  }
  for (const LogicalTensor& tensor : model.tensors()) {
    // HLWQ and trellis codes are dequantized and re-quantized; the group formats are not.
    const bool rotated_codes = tensor.format == WeightFormat::hlwq || tensor.format == WeightFormat::trellis;
    if (tensor.quantized() && !rotated_codes && options.target != ExportTarget::bf16)
      fail("re-quantizing a ", tensor.format_name(), " model to another 4-bit format is not supported, ",
           input.string());
  }

  // Plan: which logical tensors become which output tensors.
  enum class Action { copy, dense, affine, int4 };
  struct Planned {
    const LogicalTensor* tensor;
    Action action;
    DType dtype;
  };
  std::vector<Planned> planned;
  std::vector<TensorDeclaration> declarations;
  ExportSummary summary;
  std::vector<std::string> ignored_modules;
  uint64_t total_bytes = 0;
  for (const LogicalTensor& tensor : model.tensors()) {
    total_bytes += tensor.stored_bytes;
    const bool float_tensor = tensor.quantized() || is_float(tensor.dtype);
    // A_log stays in its dtype (float32 in the published Qwen3.5 checkpoints, as mlx-lm keeps it):
    // rounding it to bfloat16 would move each head's decay rate exp(A_log) by up to |A_log| x 0.4%.
    const bool keeps_dtype = options.keep_original_dtype || (!tensor.quantized() && is_recurrent_decay_rate(tensor));
    const DType dense_dtype = keeps_dtype ? tensor.dtype : out_dtype;
    Action action = float_tensor ? Action::dense : Action::copy;
    // The vision tower and the multi-token-prediction head are written densely: mlx-lm drops them,
    // and vLLM reads them through the same config as the decoder.
    const bool outside_decoder = is_outside_text_decoder(tensor.name) && !tensor.quantized();
    if (outside_decoder && options.target == ExportTarget::ct_int4 && is_linear_weight(tensor)) {
      ignored_modules.push_back(strip_weight_suffix(tensor.name));
    }
    if (options.target == ExportTarget::mlx && is_linear_weight(tensor) && float_tensor && !outside_decoder) {
      if (affine_can_quantize(tensor.shape[1], affine)) {
        action = Action::affine;
      } else {
        summary.left_unquantized.push_back(tensor.name);
      }
    }
    if (options.target == ExportTarget::ct_int4 && is_linear_weight(tensor) && float_tensor &&
        !is_embedding_name(tensor.name) && !outside_decoder) {
      if (tensor.name != "lm_head.weight" && int4_can_quantize(tensor.shape[1], int4)) {
        action = Action::int4;
      } else {
        ignored_modules.push_back(strip_weight_suffix(tensor.name));
        if (tensor.name != "lm_head.weight") summary.left_unquantized.push_back(tensor.name);
      }
    }
    const std::string base = strip_weight_suffix(tensor.name);
    const int64_t rows = tensor.shape.empty() ? 1 : tensor.shape[0];
    const int64_t columns = tensor.shape.size() == 2 ? tensor.shape[1] : 1;
    switch (action) {
      case Action::copy:
        declarations.push_back({tensor.name, tensor.dtype, tensor.shape});
        break;
      case Action::dense:
        declarations.push_back({tensor.name, dense_dtype, tensor.shape});
        break;
      case Action::affine:
        declarations.push_back({tensor.name, DType::U32,
                                {rows, static_cast<int64_t>(affine_packed_words_per_row(columns, affine.bits))}});
        declarations.push_back({base + ".scales", out_dtype, {rows, columns / group_size}});
        declarations.push_back({base + ".biases", out_dtype, {rows, columns / group_size}});
        ++summary.quantized_tensors;
        break;
      case Action::int4:
        declarations.push_back({base + ".weight_packed", DType::I32, {rows, columns / 8}});
        declarations.push_back({base + ".weight_scale", out_dtype, {rows, columns / group_size}});
        declarations.push_back({base + ".weight_shape", DType::I64, {2}});
        ++summary.quantized_tensors;
        break;
    }
    planned.push_back({&tensor, action, dense_dtype});
  }
  summary.tensors = planned.size();
  if (options.target == ExportTarget::ct_int4 &&
      std::find(ignored_modules.begin(), ignored_modules.end(), "lm_head") == ignored_modules.end())
    ignored_modules.push_back("lm_head");

  StagedDirectory staged(output);
  const std::string format_tag = options.target == ExportTarget::mlx ? "mlx" : "pt";
  ShardedSafetensorsWriter writer(staged.path(), declarations, options.max_shard_bytes, {{"format", format_tag}});
  ThreadPool pool(options.threads);
  Progress progress(options.progress, "export", planned.size(), total_bytes);
  for (const Planned& item : planned) {
    throw_if_interrupted();
    const LogicalTensor& tensor = *item.tensor;
    const std::string base = strip_weight_suffix(tensor.name);
    if (item.action == Action::copy) {
      writer.write(tensor.name, model.folder().data(tensor.name));
    } else {
      std::vector<float> values = model.read_float(tensor, pool);
      const int64_t rows = tensor.shape[0];
      const int64_t columns = tensor.shape.size() == 2 ? tensor.shape[1] : 1;
      if (item.action == Action::dense) {
        writer.write(tensor.name, to_dtype(values, item.dtype));
      } else if (item.action == Action::affine) {
        round_through(values, out_dtype);
        std::vector<uint32_t> packed(rows * affine_packed_words_per_row(columns, affine.bits));
        std::vector<float> scales(rows * columns / group_size), biases(scales.size());
        affine_quantize_rows(affine, out_dtype, values, rows, columns, packed, scales, biases);
        writer.write(tensor.name, bytes_of(packed));
        writer.write(base + ".scales", to_dtype(scales, out_dtype));
        writer.write(base + ".biases", to_dtype(biases, out_dtype));
      } else {
        round_through(values, out_dtype);
        std::vector<int32_t> packed(rows * columns / 8);
        std::vector<float> scales(rows * columns / group_size);
        int4_quantize_rows(int4, out_dtype, values, rows, columns, packed, scales);
        writer.write(base + ".weight_packed", bytes_of(packed));
        writer.write(base + ".weight_scale", to_dtype(scales, out_dtype));
        const std::vector<int64_t> shape = {rows, columns};
        writer.write(base + ".weight_shape", bytes_of(shape));
      }
    }
    model.release(tensor);
    progress.advance(tensor.stored_bytes, tensor.name);
  }
  writer.close();
  progress.finish();

  json config = model.folder().config();
  config.erase("quantization_config");
  config.erase("quantization");
  if (!options.keep_original_dtype) {
    config["torch_dtype"] = out_dtype == DType::F32 ? "float32" : out_dtype == DType::F16 ? "float16" : "bfloat16";
  }
  if (options.target == ExportTarget::mlx) {
    const json quantization = {{"group_size", group_size}, {"bits", options.bits}, {"mode", "affine"}};
    config["quantization"] = quantization;
    config["quantization_config"] = quantization;
  } else if (options.target == ExportTarget::ct_int4) {
    config["quantization_config"] = compressed_tensors_config(group_size, ignored_modules);
  }
  summary.bytes_out = finish_model_folder(staged, config, model.folder().auxiliary_files());
  summary.seconds = progress.seconds();
  return summary;
}

}  // namespace hlwq
