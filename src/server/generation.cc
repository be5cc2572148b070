#include "server/generation.h"

namespace hlwq::server {

Generation::Progress Generation::wait(size_t seen, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  changed_.wait_for(lock, timeout, [&] { return tokens_.size() > seen || end_.has_value(); });
  Progress progress;
  if (tokens_.size() > seen) progress.tokens.assign(tokens_.begin() + static_cast<std::ptrdiff_t>(seen), tokens_.end());
  progress.end = end_;
  return progress;
}

Generation::Progress Generation::wait_for_end() {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [&] { return end_.has_value(); });
  return Progress{tokens_, end_};
}

std::string Generation::error() const {
  std::lock_guard lock(mutex_);
  return error_;
}

std::optional<Generation::Clock::time_point> Generation::first_token_time() const {
  std::lock_guard lock(mutex_);
  return first_token_;
}

void Generation::push(int32_t token) {
  {
    std::lock_guard lock(mutex_);
    if (!first_token_) first_token_ = Clock::now();
    tokens_.push_back(token);
  }
  changed_.notify_all();
}

void Generation::finish(GenerationEnd end, std::string error) {
  {
    std::lock_guard lock(mutex_);
    if (end_) return;
    end_ = end;
    error_ = std::move(error);
  }
  changed_.notify_all();
}

}  // namespace hlwq::server
