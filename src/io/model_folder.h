// A Hugging Face style model folder: config.json, tokenizer files, and weights in
// model.safetensors or shards listed by model.safetensors.index.json.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/safetensors.h"

namespace hlwq {

class ModelFolder {
 public:
  // Weights come from the shards model.safetensors.index.json names (its weight_map: tensor
  // -> shard file in this folder), else model.safetensors, else every *.safetensors file
  // (sorted by name). Throws hlwq::Error if config.json is missing or not a JSON object, if
  // no weights are found, if the index names a missing shard, a shard outside the folder or
  // a tensor its shard lacks, or if a tensor is in two files. A tensor a shard holds but the
  // index omits is kept, as loaders that read whole shards would.
  static ModelFolder open(const std::filesystem::path& folder);

  const std::filesystem::path& path() const { return path_; }
  const nlohmann::json& config() const { return config_; }

  // Every tensor, in storage order (shard, then offset): reading them in this order streams.
  const std::vector<std::string>& tensor_names() const { return names_; }
  bool has(std::string_view name) const;
  const TensorInfo& info(std::string_view name) const;
  // The weight file that holds a tensor (for messages).
  const std::filesystem::path& file(std::string_view name) const;
  std::span<const std::byte> data(std::string_view name) const;
  // Gives the pages of a tensor back to the OS once it has been processed.
  void release(std::string_view name) const;
  uint64_t total_tensor_bytes() const;

  // Files other than weights and config.json that a converted folder should carry over
  // unchanged (tokenizer.json, tokenizer_config.json, generation_config.json, ...).
  std::vector<std::filesystem::path> auxiliary_files() const;

 private:
  struct Location {
    size_t shard;
    const TensorInfo* info;
  };
  std::filesystem::path path_;
  nlohmann::json config_;
  std::vector<std::unique_ptr<SafetensorsFile>> shards_;
  std::vector<std::filesystem::path> shard_paths_;
  std::map<std::string, Location, std::less<>> locations_;
  std::vector<std::string> names_;
};

// Writes the weights of a model folder: model.safetensors when the total is at most
// `max_shard_bytes`, else shards model-00001-of-0000N.safetensors split greedily in
// declaration order (a tensor larger than the limit gets a shard of its own) plus
// model.safetensors.index.json {"metadata": {"total_size": ...}, "weight_map": {...}} as
// transformers writes it. Tensors are streamed in declaration order; each shard file is
// created at its first tensor and closed after its last. `metadata` goes into every shard.
class ShardedSafetensorsWriter {
 public:
  ShardedSafetensorsWriter(const std::filesystem::path& folder, std::vector<TensorDeclaration> tensors,
                           uint64_t max_shard_bytes, std::map<std::string, std::string> metadata);
  ~ShardedSafetensorsWriter();
  // Throws if `name` is not the next declared tensor or `bytes` has the wrong size.
  void write(std::string_view name, std::span<const std::byte> bytes);
  void close();  // throws if a declared tensor was not written; writes the index

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Throws "missing tokenizer (tokenizer.json or tokenizer.model), <folder>" when the folder has
// neither: a converted model without its tokenizer cannot be run or evaluated.
void require_tokenizer(const ModelFolder& folder);

// Reads and parses a JSON file; errors name the file and the parse position.
nlohmann::json read_json_file(const std::filesystem::path& path);

}  // namespace hlwq
