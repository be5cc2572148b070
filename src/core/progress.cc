#include "core/progress.h"

#include <unistd.h>

#include <cstdio>

namespace hlwq {

Progress::Progress(bool enabled, std::string label, uint64_t total_items, uint64_t total_bytes)
    : enabled_(enabled),
      label_(std::move(label)),
      total_items_(total_items),
      total_bytes_(total_bytes),
      start_(std::chrono::steady_clock::now()) {}

double Progress::seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

bool Progress::stderr_is_terminal() { return ::isatty(STDERR_FILENO) == 1; }

void Progress::advance(uint64_t bytes, const std::string& item_name) {
  ++done_items_;
  done_bytes_ += bytes;
  if (!enabled_) return;
  const double elapsed = seconds();
  const double rate = elapsed > 0 ? done_bytes_ / elapsed : 0.0;
  const double left = rate > 0 ? (total_bytes_ - done_bytes_) / rate : 0.0;
  const int width = 24;
  const int filled = total_bytes_ ? static_cast<int>(width * done_bytes_ / total_bytes_) : width;
  std::string bar(filled, '#');
  bar.resize(width, '.');
  std::fprintf(stderr, "\r%s [%s] %llu/%llu %.2f GB/s ETA %.0fs %-40.40s", label_.c_str(), bar.c_str(),
               static_cast<unsigned long long>(done_items_),
               static_cast<unsigned long long>(total_items_), rate / 1e9, left, item_name.c_str());
  std::fflush(stderr);
}

void Progress::finish() {
  if (enabled_) std::fprintf(stderr, "\n");
}

}  // namespace hlwq
