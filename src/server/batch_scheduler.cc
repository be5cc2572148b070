#include "server/batch_scheduler.h"

#include <algorithm>
#include <exception>

#include "core/error.h"

namespace hlwq::server {

struct BatchScheduler::Slot {
  std::shared_ptr<Generation> generation;  // null: free
  std::unique_ptr<Sampler> sampler;
  std::vector<int32_t> history;  // prompt and generated tokens
  int64_t generated = 0;
  int64_t prefilled = 0;  // prompt tokens in the slot's cache; generation starts once all are
};

BatchScheduler::BatchScheduler(ModelRunner& runner, size_t max_queue, int64_t prefill_chunk)
    : runner_(runner), max_queue_(max_queue), prefill_chunk_(prefill_chunk) {
  check(prefill_chunk >= 0, "the prefill chunk must be >= 0 tokens, got ", prefill_chunk);
  for (int64_t index = 0; index < runner_.sequences(); ++index) slots_.push_back(std::make_unique<Slot>());
  thread_ = std::thread([this] { loop(); });
}

BatchScheduler::~BatchScheduler() {
  shut_down();
  thread_.join();
}

std::shared_ptr<Generation> BatchScheduler::submit(GenerationRequest request) {
  check(!request.prompt.empty() && static_cast<int64_t>(request.prompt.size()) < runner_.context_length(),
        "the prompt must have between 1 and ", runner_.context_length() - 1, " tokens, it has ", request.prompt.size());
  check(request.max_new_tokens > 0, "max new tokens must be > 0, got ", request.max_new_tokens);
  // The sampler checks its options here, on the caller's thread, where an error can be answered.
  (void)Sampler(request.sampler);
  auto generation = std::make_shared<Generation>(std::move(request));
  {
    std::lock_guard lock(mutex_);
    // Free slots take requests at once; max_queue_ more may wait.
    const size_t free_slots = static_cast<size_t>(runner_.sequences() - active_);
    if (stopping_ || queue_.size() >= max_queue_ + free_slots) return nullptr;
    queue_.push_back(generation);
  }
  work_.notify_one();
  return generation;
}

void BatchScheduler::shut_down() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  work_.notify_one();
}

void BatchScheduler::wait_until_idle() {
  std::unique_lock lock(mutex_);
  idle_.wait(lock, [&] { return queue_.empty() && active_ == 0; });
}

SchedulerCounts BatchScheduler::counts() const {
  std::lock_guard lock(mutex_);
  return SchedulerCounts{static_cast<int64_t>(queue_.size()), active_, tokens_generated_.load(), steps_.load(),
                         prefill_chunks_.load()};
}

void BatchScheduler::end(Slot& slot, GenerationEnd end, std::string error) {
  const std::shared_ptr<Generation> generation = std::move(slot.generation);
  slot.generation.reset();
  slot.sampler.reset();
  slot.history.clear();
  slot.prefilled = 0;
  {
    // The slot counts as free before its request is told it ended, so that whoever waits on the
    // request sees the counts without it.
    std::lock_guard lock(mutex_);
    --active_;
    if (queue_.empty() && active_ == 0) idle_.notify_all();
  }
  generation->finish(end, std::move(error));
}

void BatchScheduler::advance(Slot& slot, std::span<const float> logits) {
  const GenerationRequest& request = slot.generation->request();
  const size_t window = static_cast<size_t>(std::max<int64_t>(request.repeat_last_n, 0));
  const std::span<const int32_t> recent = std::span<const int32_t>(slot.history).last(std::min(window, slot.history.size()));
  const int32_t token = slot.sampler->sample(logits, recent);
  if (std::find(request.stop_ids.begin(), request.stop_ids.end(), token) != request.stop_ids.end()) {
    end(slot, GenerationEnd::stop_id);
    return;
  }
  slot.history.push_back(token);
  ++slot.generated;
  tokens_generated_.fetch_add(1);
  slot.generation->push(token);
  // As generate(): the new token needs a position inside the context to be decoded.
  const int64_t position = static_cast<int64_t>(slot.history.size()) - 1;
  if (slot.generated == request.max_new_tokens || position >= runner_.context_length()) {
    end(slot, GenerationEnd::length);
  }
}

void BatchScheduler::prefill_chunk(int64_t index, std::vector<float>& logits) {
  Slot& slot = *slots_[static_cast<size_t>(index)];
  const std::vector<int32_t>& prompt = slot.generation->request().prompt;
  const int64_t rest = static_cast<int64_t>(prompt.size()) - slot.prefilled;
  const int64_t chunk = prefill_chunk_ > 0 ? std::min(prefill_chunk_, rest) : rest;
  const std::span<const int32_t> tokens = std::span<const int32_t>(prompt).subspan(static_cast<size_t>(slot.prefilled),
                                                                                  static_cast<size_t>(chunk));
  // Logits of the chunk's last token only (the last chunk's give the first generated token).
  runner_.forward(index, tokens, slot.prefilled, LogitsFrom{chunk - 1}, logits);
  slot.prefilled += chunk;
  prefill_chunks_.fetch_add(1);
  if (slot.prefilled == static_cast<int64_t>(prompt.size())) {
    const int64_t vocab = runner_.model().config().vocab_size;
    advance(slot, std::span<const float>(logits).first(static_cast<size_t>(vocab)));
  }
}

void BatchScheduler::loop() {
  std::vector<float> logits;
  std::vector<int32_t> tokens;
  std::vector<TokenPlace> places;
  std::vector<Slot*> decoding;
  const int64_t vocab = runner_.model().config().vocab_size;
  while (true) {
    std::vector<std::pair<Slot*, std::shared_ptr<Generation>>> admitted;
    {
      std::unique_lock lock(mutex_);
      work_.wait(lock, [&] { return stopping_ || !queue_.empty() || active_ > 0; });
      if (stopping_ && queue_.empty() && active_ == 0) break;
      for (const std::unique_ptr<Slot>& slot : slots_) {
        if (queue_.empty()) break;
        if (slot->generation) continue;
        slot->generation = queue_.front();
        queue_.pop_front();
        ++active_;
        admitted.emplace_back(slot.get(), slot->generation);
      }
    }
    // Newcomers get their sampler; nothing of their prompt is in the cache yet.
    for (auto& [slot, generation] : admitted) {
      if (generation->cancelled()) {
        end(*slot, GenerationEnd::cancelled);
        continue;
      }
      try {
        slot->sampler = std::make_unique<Sampler>(generation->request().sampler);
        slot->history = generation->request().prompt;
        slot->generated = 0;
        slot->prefilled = 0;
      } catch (const std::exception& error) {
        end(*slot, GenerationEnd::failed, error.what());
      }
    }
    // One chunk of every prompt still being read.
    for (size_t index = 0; index < slots_.size(); ++index) {
      Slot& slot = *slots_[index];
      if (!slot.generation || slot.prefilled == static_cast<int64_t>(slot.generation->request().prompt.size())) continue;
      if (slot.generation->cancelled()) {
        end(slot, GenerationEnd::cancelled);
        continue;
      }
      try {
        prefill_chunk(static_cast<int64_t>(index), logits);
      } catch (const std::exception& error) {
        end(slot, GenerationEnd::failed, error.what());
      }
    }
    // One batched decode of every active slot that still wants tokens.
    tokens.clear();
    places.clear();
    decoding.clear();
    for (size_t index = 0; index < slots_.size(); ++index) {
      Slot& slot = *slots_[index];
      if (!slot.generation) continue;
      if (slot.prefilled < static_cast<int64_t>(slot.generation->request().prompt.size())) continue;  // reading
      if (slot.generation->cancelled()) {
        end(slot, GenerationEnd::cancelled);
        continue;
      }
      tokens.push_back(slot.history.back());
      places.push_back(TokenPlace{static_cast<int32_t>(index), static_cast<int32_t>(slot.history.size() - 1)});
      decoding.push_back(&slot);
    }
    if (decoding.empty()) continue;
    try {
      runner_.decode(tokens, places, logits);
      steps_.fetch_add(1);
      for (size_t row = 0; row < decoding.size(); ++row) {
        advance(*decoding[row], std::span<const float>(logits).subspan(row * static_cast<size_t>(vocab),
                                                                       static_cast<size_t>(vocab)));
      }
    } catch (const std::exception& error) {
      for (Slot* slot : decoding) {
        if (slot->generation) end(*slot, GenerationEnd::failed, error.what());
      }
    }
  }
}

}  // namespace hlwq::server
