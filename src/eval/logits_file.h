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
#include "ops/vocabulary_row.h"

namespace hlwq {

// log-softmax of one logits row: float(logits[i] - log_sum_exp(logits)) (ops/vocabulary_row.h).
void log_softmax(std::span<const float> logits, std::span<float> log_probs);

// One token's record of the file: the target and its log-probabilities as 16-bit steps.
struct QuantizedLogProbs {
  int32_t target = 0;
  float offset = 0;  // the smallest log-probability kept
  float scale = 0;   // log_prob[i] = offset + scale * values[i]
  std::vector<uint16_t> values;
};

// A logits row as the file stores it (values resized to logits.size(), reusing its storage). A pure
// function of its inputs: rows can be quantized on any thread and appended in order later.
void quantize_log_probs(std::span<const float> logits, int32_t target, QuantizedLogProbs& record);
// The same with log_sum_exp(logits) already computed.
void quantize_log_probs(std::span<const float> logits, int32_t target, QuantizedLogProbs& record, double log_sum);

class LogitsFileWriter {
 public:
  // Writes to PATH.partial and renames at close(), so an interrupted run leaves no file behind.
  LogitsFileWriter(const std::filesystem::path& path, uint32_t vocab_size);
  ~LogitsFileWriter();
  LogitsFileWriter(const LogitsFileWriter&) = delete;
  LogitsFileWriter& operator=(const LogitsFileWriter&) = delete;
  // Appends one token: add() quantizes and appends; append() takes a row quantize_log_probs made.
  void add(std::span<const float> logits, int32_t target);
  void append(const QuantizedLogProbs& record);
  uint32_t vocab_size() const { return vocab_size_; }
  void close();  // patches the count into the header

 private:
  std::filesystem::path path_;
  std::filesystem::path partial_path_;
  bool closed_ = false;
  uint32_t vocab_size_;
  uint64_t count_ = 0;
  std::unique_ptr<FileWriter> writer_;
  QuantizedLogProbs record_;  // add()'s row, kept to reuse its storage
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
