#include "core/thread_pool.h"

#include <algorithm>
#include <chrono>

namespace hlwq {

namespace {

// Chunk `part` of `parts` equal chunks of [0, count).
std::pair<size_t, size_t> chunk(size_t count, size_t parts, size_t part) {
  return {count * part / parts, count * (part + 1) / parts};
}

// How long a thread polls before it sleeps: longer than the serial work between two parallel calls
// of a decode step (norms, RoPE, a small attention), short enough that an idle pool stops burning
// CPU at once.
constexpr auto kSpinTime = std::chrono::microseconds(50);

// Polls done() until it holds or kSpinTime has passed; true when it holds.
template <class Done>
bool spin_until(const Done& done) {
  const auto deadline = std::chrono::steady_clock::now() + kSpinTime;
  while (true) {
    for (int i = 0; i < 16; ++i) {
      if (done()) return true;
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    }
    // Give the core away when other threads are runnable: a pool on a busy machine must not
    // spin while the thread it waits for has no core to run on.
    std::this_thread::yield();
    if (std::chrono::steady_clock::now() > deadline) return done();
  }
}

}  // namespace

ThreadPool::ThreadPool(int threads) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 1; i < threads; ++i) {
    workers_.emplace_back([this, i] { worker_loop(static_cast<size_t>(i)); });
  }
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lock(mutex_);
    stopping_.store(true);
  }
  work_ready_.notify_all();
  for (std::thread& worker : workers_) worker.join();
}

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
    first_error_ = nullptr;
    pending_.store(workers_.size(), std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);
  }
  work_ready_.notify_all();
  std::exception_ptr own_error;
  try {
    auto [begin, end] = chunk(count, parts, 0);
    if (begin < end) body(begin, end);
  } catch (...) {
    own_error = std::current_exception();
  }
  const auto all_done = [this] { return pending_.load(std::memory_order_acquire) == 0; };
  if (!spin_until(all_done)) {
    std::unique_lock lock(mutex_);
    work_done_.wait(lock, all_done);
  }
  std::lock_guard lock(mutex_);
  body_ = nullptr;
  if (own_error) std::rethrow_exception(own_error);
  if (first_error_) std::rethrow_exception(first_error_);
}

void ThreadPool::worker_loop(size_t worker_index) {
  size_t seen_generation = 0;
  const auto has_work = [&] {
    return stopping_.load(std::memory_order_acquire) ||
           generation_.load(std::memory_order_acquire) != seen_generation;
  };
  while (true) {
    if (!spin_until(has_work)) {
      std::unique_lock lock(mutex_);
      work_ready_.wait(lock, has_work);
    }
    if (stopping_.load(std::memory_order_acquire)) return;
    seen_generation = generation_.load(std::memory_order_acquire);
    const auto* body = body_;
    const size_t count = count_;
    const size_t parts = workers_.size() + 1;
    try {
      auto [begin, end] = chunk(count, parts, worker_index);
      if (begin < end) (*body)(begin, end);
    } catch (...) {
      std::lock_guard error_lock(mutex_);
      if (!first_error_) first_error_ = std::current_exception();
    }
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      // The caller may be between its check and its wait: taking the mutex before notifying means
      // it is either not yet checking (and will see zero) or already waiting (and is woken).
      { std::lock_guard lock(mutex_); }
      work_done_.notify_all();
    }
  }
}

}  // namespace hlwq
