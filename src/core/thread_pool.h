// A fixed set of worker threads running index ranges in parallel. Work is split into equal
// contiguous chunks so results never depend on the thread count (each index is computed alone).
// Decoding one token makes hundreds of parallel calls of tens of microseconds each, so between
// calls the workers (and the caller, while it waits) spin for a short while before sleeping on a
// condition variable: a wake-up through the kernel costs about as much as a small call's work.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace hlwq {

class ThreadPool {
 public:
  // threads <= 0 means one per hardware thread.
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  // Calls body(begin, end) on disjoint ranges covering [0, count), in parallel, and waits.
  // The calling thread takes part. An exception from any range is rethrown here.
  void parallel_for(size_t count, const std::function<void(size_t begin, size_t end)>& body);

 private:
  void worker_loop(size_t worker_index);

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable work_ready_;
  std::condition_variable work_done_;
  // Written by the caller before generation_ is advanced (release), read by workers after they see
  // the new generation (acquire); never written while a worker runs a range.
  const std::function<void(size_t, size_t)>* body_ = nullptr;
  size_t count_ = 0;
  std::atomic<size_t> generation_ = 0;
  std::atomic<size_t> pending_ = 0;  // workers still running the current call
  std::atomic<bool> stopping_ = false;
  std::exception_ptr first_error_;  // guarded by mutex_
};

}  // namespace hlwq
