#include "convert/prism_hadamard_export.h"

#include <cstring>
#include <map>
#include <optional>
#include <string>

#include "convert/config_shapes.h"
#include "convert/model_weights.h"
#include "convert/tensor_selection.h"
#include "core/error.h"
#include "core/file_writer.h"
#include "core/interrupt.h"
#include "core/progress.h"
#include "core/staged_directory.h"
#include "convert/finish_model_folder.h"
#include "quant/affine_quant.h"
#include "quant/prism_hadamard.h"
#include "quant/random_signs.h"

namespace hlwq {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr AffineParams kPrismAffine{2, 128};

std::string strip_weight(const std::string& name) { return name.substr(0, name.size() - std::strlen(".weight")); }

std::vector<std::byte> to_dtype(std::span<const float> values, DType dtype) {
  std::vector<std::byte> bytes(values.size() * dtype_size(dtype));
  convert_from_float(values, dtype, bytes);
  return bytes;
}

template <class T>
std::span<const std::byte> bytes_of(const std::vector<T>& values) {
  return std::as_bytes(std::span<const T>(values));
}

// Schema 1 names (qwen3_5.TextModel's): the decoder under model.*, lm_head.weight; the vision
// tower and the mtp head are not part of a text pack (nullopt).
std::optional<std::string> pack_name(const std::string& name) {
  if (is_outside_text_decoder(name)) return std::nullopt;
  static const std::string language_model = "model.language_model.";
  if (name.starts_with(language_model)) return "model." + name.substr(language_model.size());
  return name;
}

// mlx-lm places full attention at every full_attention_interval-th layer; the checkpoint's
// layer_types must follow that pattern.
int full_attention_interval(const json& text, const std::string& where) {
  std::optional<int> interval;
  if (text.contains("full_attention_interval") && text["full_attention_interval"].is_number_integer())
    interval = text["full_attention_interval"].get<int>();
  if (text.contains("layer_types") && text["layer_types"].is_array() && !text["layer_types"].empty()) {
    const json& types = text["layer_types"];
    if (!interval) {
      for (size_t i = 0; i < types.size(); ++i) {
        if (types[i] == "full_attention") {
          interval = static_cast<int>(i) + 1;
          break;
        }
      }
    }
    check(interval.has_value() && *interval > 0, "layer_types has no full_attention layer, ", where);
    for (size_t i = 0; i < types.size(); ++i) {
      const bool full = (i + 1) % *interval == 0;
      check(types[i] == (full ? "full_attention" : "linear_attention"), "layer_types does not put full attention at every ",
            *interval, "th layer (layer ", i, " is ", types[i].dump(), "), which mlx-lm's qwen3_5 needs, ", where);
    }
  }
  return interval.value_or(4);
}

}  // namespace

ExportSummary export_prism_hadamard(const fs::path& input, const fs::path& output, const ExportOptions& options) {
  const ModelWeights model = ModelWeights::open(input);
  const std::string where = input.string();
  const json& outer = model.folder().config();
  const std::string model_type = outer.value("model_type", std::string());
  check(model_type == "qwen3_5" || model_type == "qwen3_5_text",
        "--to prism-hadamard takes a Qwen3.5 model (model_type qwen3_5 or qwen3_5_text), not \"", model_type, "\", ",
        where);
  check(model_type == "qwen3_5_text" || (outer.contains("text_config") && outer["text_config"].is_object()),
        "model_type qwen3_5 without a text_config object, ", where);
  require_tokenizer(model.folder());
  check_shapes_against_config(model.folder());
  if (options.block) {
    check(prism_block_allowed(*options.block, *options.block),
          "--block for prism-hadamard must be 512, 1024, 2048, 4096 or 8192 (got ", *options.block, ")");
  }
  for (const LogicalTensor& tensor : model.tensors()) {
    check(!tensor.quantized() || tensor.format == WeightFormat::hlwq, "re-quantizing a ", tensor.format_name(),
          " model to another format is not supported, ", where);
  }
  json text = model_type == "qwen3_5" ? outer["text_config"] : outer;
  const bool tied = outer.value("tie_word_embeddings", text.value("tie_word_embeddings", false));
  const int interval = full_attention_interval(text, where);

  TensorSelection selection;
  selection.quantize_embeddings = true;
  const TensorSelector selector(selection);
  struct Planned {
    const LogicalTensor* tensor;
    std::string name;  // in the pack
    bool packed = false;
    int block = 0;
    uint64_t seed = 0;
  };
  std::vector<Planned> planned;
  std::vector<TensorDeclaration> declarations;
  json modules = json::array();
  ExportSummary summary;
  uint64_t total_bytes = 0;
  bool has_lm_head = false;
  for (const LogicalTensor& tensor : model.tensors()) {
    const std::optional<std::string> name = pack_name(tensor.name);
    if (!name || (tied && *name == "lm_head.weight")) {
      ++summary.dropped_tensors;
      continue;
    }
    has_lm_head = has_lm_head || *name == "lm_head.weight";
    total_bytes += tensor.stored_bytes;
    Planned item{&tensor, *name};
    item.packed = selector.selects(tensor.name, tensor.dtype, tensor.shape);
    if (item.packed) {
      const int64_t rows = tensor.shape[0], width = tensor.shape[1];
      check(width % kPrismAffine.group_size == 0, "prism-hadamard packs groups of 128 input columns, but ",
            tensor.name, " has ", width, " (not a multiple of 128), ", where);
      if (options.block) {
        check(width % *options.block == 0, "--block ", *options.block, " does not divide the input width ", width,
              " of ", tensor.name, ", ", where);
        item.block = *options.block;
      } else {
        item.block = prism_default_block(width);
        if (item.block == 0) summary.unrotated.push_back(tensor.name);
      }
      const std::string path = strip_weight(item.name);
      item.seed = options.sign_seed.value_or(kPrismSignSeed) + modules.size();
      const bool embedding = is_embedding_name(tensor.name);
      modules.push_back({{"path", path}, {"block", item.block}, {"embedding", embedding}, {"dtype", "float16"}});
      declarations.push_back({item.name, DType::U32, {rows, width / 16}});
      declarations.push_back({path + ".scales", DType::F16, {rows, width / kPrismAffine.group_size}});
      declarations.push_back({path + ".biases", DType::F16, {rows, width / kPrismAffine.group_size}});
      if (item.block != 0) declarations.push_back({path + ".signs", DType::F32, {width}});
      ++summary.quantized_tensors;
    } else {
      declarations.push_back({item.name, tensor.dtype, tensor.shape});
    }
    planned.push_back(item);
  }
  check(tied || has_lm_head, "the model has untied embeddings but no lm_head.weight, ", where);
  check(!modules.empty(), "no weight to pack, ", where);
  summary.tensors = declarations.size();

  StagedDirectory staged(output);
  ShardedSafetensorsWriter writer(staged.path(), declarations, options.max_shard_bytes, {{"format", "mlx"}});
  ThreadPool pool(options.threads);
  Progress progress(options.progress, "export", planned.size(), total_bytes);
  for (const Planned& item : planned) {
    throw_if_interrupted();
    const LogicalTensor& tensor = *item.tensor;
    if (!item.packed) {
      if (tensor.quantized()) {
        writer.write(item.name, to_dtype(model.read_float(tensor, pool), tensor.dtype));
      } else {
        writer.write(item.name, model.folder().data(tensor.name));
      }
    } else {
      std::vector<float> values = model.read_float(tensor, pool);
      const int64_t rows = tensor.shape[0], width = tensor.shape[1];
      const std::vector<float> signs = item.block ? random_signs(item.seed, width) : std::vector<float>();
      std::vector<uint32_t> packed(rows * (width / 16));
      std::vector<float> scales(rows * (width / kPrismAffine.group_size)), biases(scales.size());
      const size_t groups = width / kPrismAffine.group_size;
      pool.parallel_for(rows, [&](size_t begin, size_t end) {
        const int64_t count = static_cast<int64_t>(end - begin);
        std::span<float> part = std::span<float>(values).subspan(begin * width, count * width);
        prism_rotate_rows(part, count, width, item.block, signs);
        affine_quantize_rows(kPrismAffine, DType::F16, part, count, width,
                             std::span<uint32_t>(packed).subspan(begin * (width / 16), count * (width / 16)),
                             std::span<float>(scales).subspan(begin * groups, count * groups),
                             std::span<float>(biases).subspan(begin * groups, count * groups));
      });
      const std::string path = strip_weight(item.name);
      writer.write(item.name, bytes_of(packed));
      writer.write(path + ".scales", to_dtype(scales, DType::F16));
      writer.write(path + ".biases", to_dtype(biases, DType::F16));
      if (item.block != 0) writer.write(path + ".signs", bytes_of(signs));
    }
    model.release(tensor);
    progress.advance(tensor.stored_bytes, tensor.name);
  }
  writer.close();
  progress.finish();

  json config = outer;
  for (const char* key : {"vision_config", "architectures", "quantization_config", "quantization", "auto_map"})
    config.erase(key);
  for (const char* key : {"quantization_config", "quantization", "architectures"}) text.erase(key);
  text["tie_word_embeddings"] = tied;
  text["full_attention_interval"] = interval;
  config["text_config"] = text;
  config["model_type"] = "prism_hadamard_qwen35";
  config["tie_word_embeddings"] = tied;
  config["schema_version"] = 1;
  config["tensor_namespace"] = "mlx-lm-text";
  config["gdn_activation_layout"] = "grouped";
  config["quantization"] = {{"bits", 2}, {"group_size", 128}, {"mode", "affine"}};
  config["modules"] = modules;
  summary.bytes_out = finish_model_folder(staged, config, model.folder().auxiliary_files());
  summary.seconds = progress.seconds();
  return summary;
}

namespace {

std::vector<float> read_as_float(const ModelFolder& folder, const std::string& name) {
  const TensorInfo& info = folder.info(name);
  std::vector<float> values(info.element_count());
  convert_to_float(info.dtype, folder.data(name), values);
  return values;
}

}  // namespace

std::vector<float> prism_dequantize_module(const ModelFolder& pack, const json& record) {
  const std::string path = record.at("path").get<std::string>();
  const int block = record.at("block").get<int>();
  const TensorInfo& weight = pack.info(path + ".weight");
  check(weight.dtype == DType::U32 && weight.shape.size() == 2, path, ".weight is not a uint32 matrix, ",
        pack.path().string());
  const int64_t rows = weight.shape[0], width = weight.shape[1] * 16;
  std::vector<uint32_t> words(weight.element_count());
  std::memcpy(words.data(), pack.data(path + ".weight").data(), words.size() * sizeof(uint32_t));
  const std::vector<float> scales = read_as_float(pack, path + ".scales"), biases = read_as_float(pack, path + ".biases");
  std::vector<float> values(rows * width);
  affine_dequantize_rows(kPrismAffine, DType::F16, words, scales, biases, rows, width, values);
  if (block != 0) {
    const std::vector<float> signs = read_as_float(pack, path + ".signs");
    prism_unrotate_rows(values, rows, width, block, signs);
  }
  return values;
}

void write_prism_dequantized(const fs::path& pack_path, const fs::path& output) {
  const ModelFolder pack = ModelFolder::open(pack_path);
  const json& config = pack.config();
  check(config.value("model_type", std::string()) == "prism_hadamard_qwen35", "not a prism Hadamard pack, ",
        pack_path.string());
  std::map<std::string, json> records;
  for (const json& record : config.at("modules")) records[record.at("path").get<std::string>()] = record;
  std::vector<TensorDeclaration> declarations;
  std::vector<std::string> names;
  for (const std::string& name : pack.tensor_names()) {
    const size_t dot = name.rfind('.');
    const std::string base = name.substr(0, dot), suffix = name.substr(dot + 1);
    if (records.count(base)) {
      if (suffix != "weight") continue;
      const TensorInfo& info = pack.info(name);
      declarations.push_back({name, DType::F32, {info.shape[0], info.shape[1] * 16}});
    } else {
      declarations.push_back({name, pack.info(name).dtype, pack.info(name).shape});
    }
    names.push_back(name);
  }
  StagedDirectory staged(output);
  ShardedSafetensorsWriter writer(staged.path(), declarations, uint64_t{5} << 30, {{"format", "mlx"}});
  for (const std::string& name : names) {
    const std::string base = name.substr(0, name.rfind('.'));
    if (records.count(base)) {
      std::vector<float> values = prism_dequantize_module(pack, records[base]);
      // HadamardQuantizedEmbedding returns its rows in float16 (after the rotation back).
      if (records[base].value("embedding", false)) {
        for (float& value : values) value = f16_to_float(float_to_f16(value));
      }
      writer.write(name, bytes_of(values));
    } else {
      writer.write(name, pack.data(name));
    }
  }
  writer.close();
  json plain = config;
  for (const char* key : {"modules", "quantization", "schema_version", "tensor_namespace", "gdn_activation_layout"})
    plain.erase(key);
  plain["model_type"] = "qwen3_5";
  finish_model_folder(staged, plain, pack.auxiliary_files());
}

}  // namespace hlwq
