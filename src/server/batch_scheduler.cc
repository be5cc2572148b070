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
};

BatchScheduler::BatchScheduler(ModelRunner& runner, size_t max_queue) : runner_(runner), max_queue_(max_queue) {
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
  return SchedulerCounts{static_cast<int64_t>(queue_.size()), active_, tokens_generated_.load(), steps_.load()};
}

void BatchScheduler::end(Slot& slot, GenerationEnd end, std::string error) {
  const std::shared_ptr<Generation> generation = std::move(slot.generation);
  slot.generation.reset();
  slot.sampler.reset();
  slot.history.clear();
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
    // Prefill each newcomer on its slot and take its first token.
    for (auto& [slot, generation] : admitted) {
      if (generation->cancelled()) {
        end(*slot, GenerationEnd::cancelled);
        continue;
      }
      const GenerationRequest& request = generation->request();
      try {
        slot->sampler = std::make_unique<Sampler>(request.sampler);
        slot->history = request.prompt;
        slot->generated = 0;
        Slot* const admitted_slot = slot;  // a structured binding cannot be captured before C++20 in clang 14
        const int64_t index =
            std::find_if(slots_.begin(), slots_.end(),
                         [admitted_slot](const std::unique_ptr<Slot>& each) { return each.get() == admitted_slot; }) -
            slots_.begin();
        runner_.forward(index, request.prompt, 0, LogitsFrom{static_cast<int64_t>(request.prompt.size()) - 1}, logits);
        advance(*slot, std::span<const float>(logits).first(static_cast<size_t>(vocab)));
      } catch (const std::exception& error) {
        end(*slot, GenerationEnd::failed, error.what());
      }
    }
    // One batched decode of every active slot that still wants tokens.
    tokens.clear();
    places.clear();
    decoding.clear();
    for (size_t index = 0; index < slots_.size(); ++index) {
      Slot& slot = *slots_[index];
      if (!slot.generation) continue;
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
