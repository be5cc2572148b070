#include "core/thread_pool.h"

#include <algorithm>

namespace hlwq {

ThreadPool::ThreadPool(int threads) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 1; i < threads; ++i) {
    workers_.emplace_back([this, i] { worker_loop(static_cast<size_t>(i)); });
  }
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  work_ready_.notify_all();
  for (std::thread& worker : workers_) worker.join();
}

namespace {
// Chunk `part` of `parts` equal chunks of [0, count).
std::pair<size_t, size_t> chunk(size_t count, size_t parts, size_t part) {
  return {count * part / parts, count * (part + 1) / parts};
}
}  // namespace

void ThreadPool::parallel_for(size_t count, const std::function<void(size_t, size_t)>& body) {
  if (count == 0) return;
  const size_t parts = static_cast<size_t>(size());
  if (parts == 1 || count == 1) {
    body(0, count);
    return;
  }
  {
    std::lock_guard lock(mutex_);
    body_ = &body;
    count_ = count;
    pending_ = workers_.size();
    first_error_ = nullptr;
    ++generation_;
  }
  work_ready_.notify_all();
  std::exception_ptr own_error;
  try {
    auto [begin, end] = chunk(count, parts, 0);
    if (begin < end) body(begin, end);
  } catch (...) {
    own_error = std::current_exception();
  }
  std::unique_lock lock(mutex_);
  work_done_.wait(lock, [this] { return pending_ == 0; });
  body_ = nullptr;
  if (own_error) std::rethrow_exception(own_error);
  if (first_error_) std::rethrow_exception(first_error_);
}

void ThreadPool::worker_loop(size_t worker_index) {
  size_t seen_generation = 0;
  while (true) {
    std::unique_lock lock(mutex_);
    work_ready_.wait(lock, [&] { return stopping_ || generation_ != seen_generation; });
    if (stopping_) return;
    seen_generation = generation_;
    const auto* body = body_;
    const size_t count = count_;
    const size_t parts = workers_.size() + 1;
    lock.unlock();
    try {
      auto [begin, end] = chunk(count, parts, worker_index);
      if (begin < end) (*body)(begin, end);
    } catch (...) {
      std::lock_guard error_lock(mutex_);
      if (!first_error_) first_error_ = std::current_exception();
    }
    lock.lock();
    if (--pending_ == 0) work_done_.notify_all();
  }
}

}  // namespace hlwq
