// A compact file of a reference model's next-token distributions for KL-divergence runs: per scored
// token the log-probabilities over the vocabulary as 16-bit values with a per-token offset and
// scale (as llama.cpp's --kl-divergence-base does), plus the target token.
// Layout (little-endian): "HLWQLGT1", u32 vocab, u64 count, then per token:
//   i32 target, f32 offset (the minimum log-prob kept), f32 scale, u16 value[vocab]
//   log_prob[i] = offset + scale * value[i]; values below offset are clamped to it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <vector>

#include "core/file_writer.h"
#include "core/mapped_file.h"

namespace hlwq {

// log-softmax of one logits row, in double for accuracy, returned as float.
void log_softmax(std::span<const float> logits, std::span<float> log_probs);

class LogitsFileWriter {
 public:
  // Writes to PATH.partial and renames at close(), so an interrupted run leaves no file behind.
  LogitsFileWriter(const std::filesystem::path& path, uint32_t vocab_size);
  ~LogitsFileWriter();
  LogitsFileWriter(const LogitsFileWriter&) = delete;
  LogitsFileWriter& operator=(const LogitsFileWriter&) = delete;
  void add(std::span<const float> logits, int32_t target);
  void close();  // patches the count into the header

 private:
  std::filesystem::path path_;
  std::filesystem::path partial_path_;
  bool closed_ = false;
  uint32_t vocab_size_;
  uint64_t count_ = 0;
  std::unique_ptr<FileWriter> writer_;
  std::vector<float> log_probs_;
  std::vector<uint16_t> values_;
};

class LogitsFile {
 public:
  static LogitsFile open(const std::filesystem::path& path);
  uint32_t vocab_size() const { return vocab_size_; }
  uint64_t count() const { return count_; }
  int32_t target(uint64_t index) const;
  // Decoded log-probabilities of token `index`.
  void log_probs(uint64_t index, std::span<float> out) const;

 private:
  MappedFile file_;
  uint32_t vocab_size_ = 0;
  uint64_t count_ = 0;
  uint64_t record_bytes_ = 0;
};

}  // namespace hlwq
