#include "server/server_metrics.h"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <vector>

namespace hlwq::server {

void ServerMetrics::count_request(const std::string& endpoint, int status) {
  std::lock_guard lock(mutex_);
  ++requests_[{endpoint, status}];
}

void ServerMetrics::record_time_to_first_token(double seconds) {
  std::lock_guard lock(mutex_);
  first_token_seconds_.push_back(seconds);
  if (first_token_seconds_.size() > kLatestAnswers) first_token_seconds_.pop_front();
  first_token_sum_ += seconds;
  ++first_token_count_;
}

void ServerMetrics::sample_tokens(int64_t tokens_generated_total, Clock::time_point now) {
  std::lock_guard lock(mutex_);
  if (token_samples_.empty() || token_samples_.back().second != tokens_generated_total ||
      now - token_samples_.back().first > std::chrono::seconds(1)) {
    token_samples_.emplace_back(now, tokens_generated_total);
  }
  const auto horizon = now - std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(kRateWindowSeconds));
  while (token_samples_.size() > 2 && token_samples_[1].first < horizon) token_samples_.pop_front();
}

std::string ServerMetrics::render(const SchedulerCounts& counts, Clock::time_point now) {
  sample_tokens(counts.tokens_generated_total, now);
  std::lock_guard lock(mutex_);
  std::ostringstream out;
  out << "# HELP hlwq_requests_total HTTP requests answered, by endpoint and status.\n"
      << "# TYPE hlwq_requests_total counter\n";
  for (const auto& [key, count] : requests_) {
    out << "hlwq_requests_total{endpoint=\"" << key.first << "\",status=\"" << key.second << "\"} " << count << "\n";
  }
  out << "# HELP hlwq_tokens_generated_total Tokens generated for all requests.\n"
      << "# TYPE hlwq_tokens_generated_total counter\n"
      << "hlwq_tokens_generated_total " << counts.tokens_generated_total << "\n"
      << "# HELP hlwq_queue_length Requests waiting for a slot.\n"
      << "# TYPE hlwq_queue_length gauge\n"
      << "hlwq_queue_length " << counts.queued << "\n"
      << "# HELP hlwq_active_requests Requests being generated (in a KV-cache slot).\n"
      << "# TYPE hlwq_active_requests gauge\n"
      << "hlwq_active_requests " << counts.active << "\n"
      << "# HELP hlwq_decode_steps_total Batched decode passes run.\n"
      << "# TYPE hlwq_decode_steps_total counter\n"
      << "hlwq_decode_steps_total " << counts.steps_total << "\n";
  std::vector<double> sorted(first_token_seconds_.begin(), first_token_seconds_.end());
  std::sort(sorted.begin(), sorted.end());
  out << "# HELP hlwq_time_to_first_token_seconds From a request's arrival to its first token (quantiles over the "
      << "latest " << kLatestAnswers << " answers).\n"
      << "# TYPE hlwq_time_to_first_token_seconds summary\n";
  for (const double quantile : {0.5, 0.9, 0.99}) {
    out << "hlwq_time_to_first_token_seconds{quantile=\"" << quantile << "\"} ";
    if (sorted.empty()) {
      out << "NaN\n";
    } else {
      const size_t index = std::min(sorted.size() - 1, static_cast<size_t>(std::ceil(quantile * sorted.size())) - 1);
      out << sorted[index] << "\n";
    }
  }
  out << "hlwq_time_to_first_token_seconds_sum " << first_token_sum_ << "\n"
      << "hlwq_time_to_first_token_seconds_count " << first_token_count_ << "\n";
  double rate = 0;
  if (token_samples_.size() >= 2) {
    const double seconds = std::chrono::duration<double>(token_samples_.back().first - token_samples_.front().first).count();
    if (seconds > 0) rate = (token_samples_.back().second - token_samples_.front().second) / seconds;
  }
  out << "# HELP hlwq_tokens_per_second Tokens generated per second over the last " << kRateWindowSeconds
      << " seconds.\n"
      << "# TYPE hlwq_tokens_per_second gauge\n"
      << "hlwq_tokens_per_second " << rate << "\n";
  return out.str();
}

}  // namespace hlwq::server
