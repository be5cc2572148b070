// A one-line progress bar on stderr: item i/N, throughput in GB/s and the time left.
// Drawn only when enabled (stderr is a terminal, or --progress); otherwise it costs nothing.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace hlwq {

class Progress {
 public:
  Progress(bool enabled, std::string label, uint64_t total_items, uint64_t total_bytes);
  // Called after an item of `bytes` input bytes is done.
  void advance(uint64_t bytes, const std::string& item_name);
  void finish();
  double seconds() const;

  static bool stderr_is_terminal();

 private:
  bool enabled_;
  std::string label_;
  uint64_t total_items_;
  uint64_t total_bytes_;
  uint64_t done_items_ = 0;
  uint64_t done_bytes_ = 0;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace hlwq
