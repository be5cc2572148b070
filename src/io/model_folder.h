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
  // Throws hlwq::Error if config.json is missing or invalid, if no weights are found, if the
  // index names a missing shard or a tensor the shard lacks, or a tensor name repeats.
  static ModelFolder open(const std::filesystem::path& folder);

  const std::filesystem::path& path() const { return path_; }
  const nlohmann::json& config() const { return config_; }

  // Every tensor, in storage order (shard, then offset): reading them in this order streams.
  const std::vector<std::string>& tensor_names() const { return names_; }
  bool has(std::string_view name) const;
  const TensorInfo& info(std::string_view name) const;
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
  std::map<std::string, Location, std::less<>> locations_;
  std::vector<std::string> names_;
};

// Writes the weights of a model folder as one file or several shards (with the index) when
// the total exceeds `max_shard_bytes`. Tensors are streamed in declaration order.
class ShardedSafetensorsWriter {
 public:
  ShardedSafetensorsWriter(const std::filesystem::path& folder, std::vector<TensorDeclaration> tensors,
                           uint64_t max_shard_bytes, std::map<std::string, std::string> metadata);
  ~ShardedSafetensorsWriter();
  void write(std::string_view name, std::span<const std::byte> bytes);
  void close();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Reads and parses a JSON file; errors name the file and the parse position.
nlohmann::json read_json_file(const std::filesystem::path& path);

}  // namespace hlwq
