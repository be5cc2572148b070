// A model placed on a backend for execution: its weights uploaded once, KV caches for a number of
// sequences, scratch for the largest pass, and the forward pass of each architecture, written once
// over the Backend interface, so the CPU and CUDA runs are the same model.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "engine/model.h"
#include "ops/backend.h"

namespace hlwq {

enum class LogitsFor { last_position, all_positions };
// Logits for the tokens from this index of the pass on (perplexity scores only part of a window, and
// the output layer is a large share of the work: a fifth of it for SmolLM2-135M).
struct LogitsFrom {
  int64_t first_token = 0;
};

struct RunnerOptions {
  int64_t context_length = 0;    // positions per sequence (> 0)
  int64_t sequences = 1;         // KV cache slots
  int64_t max_pass_tokens = 0;   // most tokens in one pass; 0: context_length
  int64_t max_output_rows = 0;   // most rows of logits one pass returns; 0: max_pass_tokens
  DType kv_cache_dtype = DType::F16;
  bool record_decode = true;     // replay recorded single-token passes where the backend records
};

class ModelRunner {
 public:
  // Uploads the model's weights to the backend. `model` and `backend` must outlive the runner.
  // Throws when the context exceeds a sliding attention window (not implemented) or sizes are bad.
  ModelRunner(const Model& model, Backend& backend, const RunnerOptions& options);
  ~ModelRunner();
  ModelRunner(const ModelRunner&) = delete;
  ModelRunner& operator=(const ModelRunner&) = delete;

  const Model& model() const { return model_; }
  Backend& backend() { return backend_; }
  int64_t context_length() const { return options_.context_length; }
  int64_t sequences() const { return options_.sequences; }
  int64_t max_pass_tokens() const { return options_.max_pass_tokens; }

  // Tokens of sequence `sequence` at positions start_position.. (earlier positions already in its
  // cache). Logits of tokens which.first_token.. (row-major, vocab_size each) into `logits`
  // (resized). Throws hlwq::Error for a token outside the vocabulary, positions beyond the context,
  // or NaN logits; the NaN message names the first layer whose output holds a NaN (found by running
  // the pass again with a check after every layer).
  void forward(int64_t sequence, std::span<const int32_t> tokens, int64_t start_position, LogitsFrom which,
               std::vector<float>& logits);
  std::vector<float> forward(int64_t sequence, std::span<const int32_t> tokens, int64_t start_position,
                             LogitsFor which);

  // One token for each of several sequences (batched decode): logits places.size() x vocab_size.
  void decode(std::span<const int32_t> tokens, std::span<const TokenPlace> places, std::vector<float>& logits);

  // Bytes held on the backend: weights, KV caches, scratch.
  BackendMemory memory() const;

 private:
  struct Uploaded;
  void check_tokens(std::span<const int32_t> tokens) const;
  // Sets the pass on the backend, runs (or replays) it, reads the logits of its last output_rows.
  void pass(std::span<const int32_t> tokens, std::span<const TokenPlace> places, int64_t output_rows,
            std::vector<float>& logits);
  // Runs the layers over the pass set on the backend; logits of the last `output_rows` rows land in
  // the logits buffer. check_each_layer: download the hidden state after each layer to find NaNs.
  void run_pass(int64_t rows, int64_t output_rows, bool check_each_layer);
  void read_logits(int64_t output_rows, std::vector<float>& logits);

  const Model& model_;
  Backend& backend_;
  RunnerOptions options_;
  std::unique_ptr<Uploaded> uploaded_;
};

}  // namespace hlwq
