#include "convert/quantize_model.h"

#include <sys/resource.h>

#include <cmath>
#include <algorithm>
#include <cstring>
#include <map>
#include <optional>
#include <vector>

#include "convert/config_shapes.h"
#include "convert/finish_model_folder.h"
#include "convert/model_weights.h"
#include "convert/width_planning.h"
#include "core/error.h"
#include "core/file_writer.h"
#include "core/interrupt.h"
#include "core/progress.h"
#include "core/staged_directory.h"
#include "core/thread_pool.h"
#include "io/model_folder.h"

namespace hlwq {

namespace fs = std::filesystem;
using nlohmann::json;

uint64_t peak_resident_bytes() {
  struct rusage usage {};
  ::getrusage(RUSAGE_SELF, &usage);
  return static_cast<uint64_t>(usage.ru_maxrss) * 1024;
}

json QuantizeSummary::to_json() const {
  const auto ratio = [](uint64_t bits, uint64_t count) { return count ? double(bits) / double(count) : 0.0; };
  return {
      {"tensors", tensors},
      {"quantized_tensors", quantized_tensors},
      {"bits_per_weight", ratio(8 * stored_tensor_bytes, elements)},
      {"quantized_bits_per_weight", ratio(8 * quantized_bytes_out, quantized_elements)},
      {"bytes_in", bytes_in},
      {"bytes_out", bytes_out},
      {"seconds", seconds},
      {"input_gb_per_second", seconds > 0 ? double(bytes_in) / seconds / 1e9 : 0.0},
      {"peak_rss_bytes", peak_rss_bytes},
      {"largest_tensor_bytes", largest_tensor_bytes},
      {"tensors_per_width", [&] {
         json widths = json::object();
         for (const auto& [bits, count] : tensors_per_width) widths[std::to_string(bits)] = count;
         return widths;
       }()},
  };
}

namespace {

std::string base_name(const std::string& weight_name) {
  return weight_name.substr(0, weight_name.size() - std::strlen(".weight"));
}

HlwqParams tensor_params(const QuantizeOptions& options, int64_t columns) {
  HlwqParams params = options.params;
  if (options.fit_block_to_rows) params.block = fitted_block(columns, options.params.block);
  return params;
}

// The trellis format of a tensor coded with `params` (its block and width) under `options`.
TrellisFormat trellis_format_for(const QuantizeOptions& options, const HlwqParams& params) {
  TrellisFormat format;
  format.bits = params.bits;
  format.state_bits = options.trellis_state_bits;
  format.block = params.block;
  format.sign_seed = params.sign_seed;
  format.gain = params.gain;
  return format;
}

// Refuses options that trellis codes do not combine with.
void check_trellis_options(const QuantizeOptions& options) {
  check(options.target_bits_per_weight <= 0, "trellis codes have one width for every tensor: --target-bpw does not "
        "apply to them");
  check(options.params.codebook == CodebookKind::converged,
        "trellis codes have their own codebook: --compat and --codebook uniform do not apply to them");
  check(options.params.rotation == Rotation::hadamard, "trellis codes need the Hadamard rotation (not --rotation none)");
  validate(trellis_format_for(options, options.params));
}

// What one row of a quantized tensor stores: code bytes and gains (one a block).
struct StoredRowSize {
  size_t code_bytes = 0;
  int64_t blocks = 0;
};

StoredRowSize stored_row_size(const QuantizeOptions& options, const HlwqParams& params, int64_t columns) {
  if (options.trellis_state_bits > 0) {
    const TrellisRowLayout layout = trellis_row_layout(columns, trellis_format_for(options, params));
    return {layout.code_bytes, layout.blocks};
  }
  const HlwqRowLayout layout = hlwq_row_layout(columns, params);
  return {layout.code_bytes, layout.blocks};
}

// One matrix's codes and gains into `codes` and `gains`, sized by the codec's row layout (HlwqCodec
// and TrellisCodec alike).
template <class Codec>
void quantize_into(const Codec& codec, DType dtype, std::span<const std::byte> data, int64_t rows,
                   std::vector<uint8_t>& codes, std::vector<uint16_t>& gains, ThreadPool& pool) {
  codes.assign(codec.layout().code_bytes * static_cast<size_t>(rows), 0);
  gains.assign(static_cast<size_t>(codec.layout().blocks * rows), 0);
  codec.quantize_matrix(dtype, data, rows, codes, gains, pool);
}

// The width that holds the most weights: config.json's model-wide "bits" of a mixed-width folder
// (each tensor's entry says its own).
int most_common_width(const std::map<std::string, int>& bits, const ModelFolder& folder) {
  std::map<int, uint64_t> weights;
  for (const auto& [name, width] : bits) weights[width] += folder.info(name).element_count();
  return std::max_element(weights.begin(), weights.end(), [](const auto& a, const auto& b) { return a.second < b.second; })
      ->first;
}

struct NonFinite {
  int64_t row, column;
  float value;
};

// The first NaN or infinity of a row-major matrix, if any.
std::optional<NonFinite> first_non_finite(DType dtype, std::span<const std::byte> data, int64_t rows,
                                          int64_t columns) {
  std::vector<float> row(static_cast<size_t>(columns));
  const size_t row_bytes = static_cast<size_t>(columns) * dtype_size(dtype);
  for (int64_t r = 0; r < rows; ++r) {
    convert_to_float(dtype, data.subspan(static_cast<size_t>(r) * row_bytes, row_bytes), row);
    for (int64_t c = 0; c < columns; ++c) {
      if (!std::isfinite(row[static_cast<size_t>(c)])) return NonFinite{r, c, row[static_cast<size_t>(c)]};
    }
  }
  return std::nullopt;
}

}  // namespace

QuantizeSummary quantize_model(const fs::path& input, const fs::path& output, const QuantizeOptions& options) {
  validate(options.params);
  const bool trellis = options.trellis_state_bits > 0;
  if (trellis) check_trellis_options(options);
  // Each quantized X.weight becomes these two tensors.
  const std::string codes_suffix = trellis ? ".trellis_codes" : ".hlwq_codes";
  const std::string gains_suffix = trellis ? ".trellis_gains" : ".hlwq_norms";
  const TensorSelector selector(options.selection);
  const ModelFolder folder = ModelFolder::open(input);
  const json& config = folder.config();
  require_tokenizer(folder);
  check_shapes_against_config(folder);
  if (config.contains("quantization_config") || config.contains("quantization"))
    fail("input model is already quantized (config.json has quantization settings); quantize a dense model, ",
         input.string());

  // Plan every output tensor first: the writer needs all sizes before the first byte.
  struct Planned {
    std::string name;
    bool quantize;
  };
  std::vector<Planned> planned;
  std::vector<TensorDeclaration> declarations;
  json quantized_tensors = json::object();
  QuantizeSummary summary;
  for (const std::string& name : folder.tensor_names()) {
    const TensorInfo& info = folder.info(name);
    planned.push_back({name, selector.selects(name, info.dtype, info.shape)});
  }
  ThreadPool pool(options.threads);
  // Each quantized tensor's parameters: the options', with its own block and (--target-bpw) width.
  std::map<std::string, HlwqParams> params_of;
  for (const Planned& item : planned) {
    if (item.quantize) params_of[item.name] = tensor_params(options, folder.info(item.name).shape[1]);
  }
  HlwqParams model_params = options.params;
  if (options.target_bits_per_weight > 0) {
    std::vector<WidthPlanTensor> widths_wanted;
    for (const auto& [name, params] : params_of) widths_wanted.push_back({name, params});
    const WidthPlan plan = plan_code_widths(folder, widths_wanted, options.target_bits_per_weight, pool);
    for (auto& [name, params] : params_of) params.bits = plan.bits.at(name);
    model_params.bits = most_common_width(plan.bits, folder);
  }
  for (const Planned& item : planned) {
    const std::string& name = item.name;
    const TensorInfo& info = folder.info(name);
    const bool quantize = item.quantize;
    summary.bytes_in += info.byte_size();
    summary.elements += info.element_count();
    summary.largest_tensor_bytes = std::max(summary.largest_tensor_bytes, info.byte_size());
    if (quantize) {
      const HlwqParams& params = params_of.at(name);
      ++summary.tensors_per_width[params.bits];
      const std::string base = base_name(name);
      const StoredRowSize row = stored_row_size(options, params, info.shape[1]);
      declarations.push_back({base + codes_suffix, DType::U8, {info.shape[0], static_cast<int64_t>(row.code_bytes)}});
      declarations.push_back({base + gains_suffix, DType::F16, {info.shape[0], row.blocks}});
      quantized_tensors[name] = {{"shape", info.shape},
                                 {"dtype", std::string(dtype_name(info.dtype))},
                                 {"block_size", params.block},
                                 {"bits", params.bits}};
      ++summary.quantized_tensors;
      summary.quantized_elements += info.element_count();
      summary.quantized_bytes_in += info.byte_size();
    } else {
      declarations.push_back({name, info.dtype, info.shape});
    }
  }
  summary.tensors = planned.size();

  StagedDirectory staged(output);
  ShardedSafetensorsWriter writer(staged.path(), declarations, options.max_shard_bytes, {{"format", "pt"}});
  Progress progress(options.progress, "quantize", planned.size(), summary.bytes_in);
  std::vector<uint8_t> codes;
  std::vector<uint16_t> norms;
  // The trellis codebook (2^L Gaussian quantiles), computed once for every tensor.
  const std::shared_ptr<const std::vector<float>> shared_codebook =
      trellis ? std::make_shared<const std::vector<float>>(trellis_codebook(options.trellis_state_bits)) : nullptr;
  for (const Planned& item : planned) {
    throw_if_interrupted();
    const TensorInfo& info = folder.info(item.name);
    const std::span<const std::byte> data = folder.data(item.name);
    if (item.quantize) {
      const int64_t rows = info.shape[0];
      try {
        if (trellis) {
          quantize_into(TrellisCodec(trellis_format_for(options, params_of.at(item.name)), info.shape[1], shared_codebook),
                        info.dtype, data, rows, codes, norms, pool);
        } else {
          quantize_into(HlwqCodec(params_of.at(item.name), info.shape[1]), info.dtype, data, rows, codes, norms, pool);
        }
      } catch (const Error& error) {
        // Threads quantize rows in any order; name the first non-finite weight in storage order.
        if (const auto bad = first_non_finite(info.dtype, data, rows, info.shape[1])) {
          fail("non-finite weight ", bad->value, " at row ", bad->row, ", column ", bad->column, " in tensor ",
               item.name, ", ", folder.file(item.name).string());
        }
        fail(error.what(), " in tensor ", item.name, ", ", folder.file(item.name).string());
      }
      const std::string base = base_name(item.name);
      writer.write(base + codes_suffix, std::as_bytes(std::span<const uint8_t>(codes)));
      writer.write(base + gains_suffix, std::as_bytes(std::span<const uint16_t>(norms)));
      summary.quantized_bytes_out += codes.size() + 2 * norms.size();
      summary.stored_tensor_bytes += codes.size() + 2 * norms.size();
    } else {
      writer.write(item.name, data);
      summary.stored_tensor_bytes += data.size();
    }
    folder.release(item.name);
    progress.advance(info.byte_size(), item.name);
  }
  writer.close();
  progress.finish();

  json new_config = config;
  json quantization =
      trellis ? trellis_format_to_json(trellis_format_for(options, model_params)) : hlwq_params_to_json(model_params);
  // block_size is the preferred block and bits the most common width; each quantized_tensors entry
  // says its own.
  if (options.fit_block_to_rows) quantization["block_rule"] = "fit-rows";
  if (options.target_bits_per_weight > 0) quantization["target_bits_per_weight"] = options.target_bits_per_weight;
  // The trellis codebook (2^L values) is not written: readers recompute it from trellis_state_bits.
  if (!trellis) {
    quantization["codebook_centroids"] = lloyd_max_codebook(model_params.bits, model_params.codebook).centroids;
  }
  quantization["quantized_tensors"] = quantized_tensors;
  new_config["quantization_config"] = quantization;
  summary.bytes_out = finish_model_folder(staged, new_config, folder.auxiliary_files());
  summary.seconds = progress.seconds();
  summary.peak_rss_bytes = peak_resident_bytes();
  return summary;
}

}  // namespace hlwq
