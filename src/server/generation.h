// One request's generation as the scheduler thread and the HTTP thread that answers it share it:
// the scheduler appends tokens and finally an end; the HTTP thread waits for them and may cancel
// (its client went away, or a stop string was found).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "engine/sampler.h"

namespace hlwq::server {

struct GenerationRequest {
  std::vector<int32_t> prompt;
  int64_t max_new_tokens = 16;   // > 0
  SamplerOptions sampler;
  std::vector<int32_t> stop_ids;  // end-of-sequence ids (not emitted)
  int64_t repeat_last_n = 64;     // as generate(): the tokens the repetition penalty looks at
};

enum class GenerationEnd {
  stop_id,    // the model chose an end-of-sequence id
  length,     // max_new_tokens, or the context is full
  cancelled,  // cancel() was called
  failed,     // the runner threw; error() says why
};

class Generation {
 public:
  using Clock = std::chrono::steady_clock;

  explicit Generation(GenerationRequest request) : request_(std::move(request)), submitted_(Clock::now()) {}

  const GenerationRequest& request() const { return request_; }

  struct Progress {
    std::vector<int32_t> tokens;      // the tokens after the first `seen`
    std::optional<GenerationEnd> end;  // set once no more tokens come
  };
  // Waits until there are tokens past the first `seen`, the generation ended, or `timeout` passed.
  Progress wait(size_t seen, std::chrono::milliseconds timeout);
  // Blocks until the generation ends; every token.
  Progress wait_for_end();

  // Asks the scheduler to stop at its next step and free the slot.
  void cancel() { cancelled_.store(true); }
  bool cancelled() const { return cancelled_.load(); }

  std::string error() const;
  Clock::time_point submitted() const { return submitted_; }
  // When the first token came (nullopt before it).
  std::optional<Clock::time_point> first_token_time() const;

  // The scheduler's side.
  void push(int32_t token);
  void finish(GenerationEnd end, std::string error = {});

 private:
  GenerationRequest request_;
  Clock::time_point submitted_;
  std::atomic<bool> cancelled_{false};
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<int32_t> tokens_;
  std::optional<GenerationEnd> end_;
  std::string error_;
  std::optional<Clock::time_point> first_token_;
};

}  // namespace hlwq::server
