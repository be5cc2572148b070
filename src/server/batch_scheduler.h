// Continuous batching: one thread owns a ModelRunner whose KV-cache slots (RunnerOptions.sequences)
// serve that many requests at once. At each step it admits waiting requests into free slots,
// prefills one chunk of every prompt still being read (forward() on its slot, at most
// `prefill_chunk` tokens, so a long prompt delays the others' next token by one chunk, not by the
// whole prompt; its first token is sampled after its last chunk), drops the requests that were
// cancelled, then decodes one token of every request past its prompt in one batched decode() pass. Each request has its own seeded sampler, so its tokens do not depend on what else
// runs beside it. Requests beyond the free slots wait in a bounded queue.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>

#include "engine/model_runner.h"
#include "server/generation.h"

namespace hlwq::server {

struct SchedulerCounts {
  int64_t queued = 0;                  // waiting for a slot
  int64_t active = 0;                  // in a slot
  int64_t tokens_generated_total = 0;  // every token pushed to a generation
  int64_t steps_total = 0;             // batched decode passes run
  int64_t prefill_chunks_total = 0;    // prompt chunks prefilled
};

class BatchScheduler {
 public:
  // `runner` (with runner.sequences() slots) must outlive the scheduler. `max_queue`: most requests
  // waiting for a slot while every slot is busy. `prefill_chunk`: most prompt tokens prefilled in
  // one step for one request (0: a whole prompt at once).
  BatchScheduler(ModelRunner& runner, size_t max_queue, int64_t prefill_chunk = 0);
  // Finishes every running and queued request, then joins the thread.
  ~BatchScheduler();
  BatchScheduler(const BatchScheduler&) = delete;
  BatchScheduler& operator=(const BatchScheduler&) = delete;

  // Queues a request; nullptr when the queue is full or the scheduler is shutting down. The
  // request must fit: 0 < prompt.size() < context, max_new_tokens > 0.
  std::shared_ptr<Generation> submit(GenerationRequest request);

  // Stops taking requests; those running and queued finish.
  void shut_down();
  // Blocks until no request runs or waits.
  void wait_until_idle();

  SchedulerCounts counts() const;
  int64_t slots() const { return runner_.sequences(); }
  int64_t context_length() const { return runner_.context_length(); }

 private:
  struct Slot;
  void loop();
  // Samples the next token of the request in `slot` from its logits; ends it when due.
  void advance(Slot& slot, std::span<const float> logits);
  void end(Slot& slot, GenerationEnd end, std::string error = {});
  // Prefills the next chunk of the prompt of the request in slots_[index]; samples its first token
  // after the last chunk.
  void prefill_chunk(int64_t index, std::vector<float>& logits);

  ModelRunner& runner_;
  size_t max_queue_;
  int64_t prefill_chunk_;
  mutable std::mutex mutex_;
  std::condition_variable work_;
  std::condition_variable idle_;
  std::deque<std::shared_ptr<Generation>> queue_;
  int64_t active_ = 0;  // guarded by mutex_ (the thread's slots are its own)
  bool stopping_ = false;
  std::atomic<int64_t> tokens_generated_{0};
  std::atomic<int64_t> steps_{0};
  std::atomic<int64_t> prefill_chunks_{0};
  std::vector<std::unique_ptr<Slot>> slots_;
  std::thread thread_;
};

}  // namespace hlwq::server
