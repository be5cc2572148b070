// The numbers GET /metrics shows, in Prometheus' text format: requests by endpoint and status,
// generated tokens, the queue, time to first token (a summary over the latest answers) and the
// generation rate over the last seconds.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <utility>

#include "server/batch_scheduler.h"

namespace hlwq::server {

class ServerMetrics {
 public:
  using Clock = std::chrono::steady_clock;

  void count_request(const std::string& endpoint, int status);
  void record_time_to_first_token(double seconds);
  // Called with the scheduler's running total of tokens; keeps a window for the rate.
  void sample_tokens(int64_t tokens_generated_total, Clock::time_point now = Clock::now());

  std::string render(const SchedulerCounts& counts, Clock::time_point now = Clock::now());

 private:
  static constexpr size_t kLatestAnswers = 1024;
  static constexpr double kRateWindowSeconds = 10.0;
  std::mutex mutex_;
  std::map<std::pair<std::string, int>, int64_t> requests_;
  std::deque<double> first_token_seconds_;  // the latest kLatestAnswers
  double first_token_sum_ = 0;
  int64_t first_token_count_ = 0;
  std::deque<std::pair<Clock::time_point, int64_t>> token_samples_;
};

}  // namespace hlwq::server
