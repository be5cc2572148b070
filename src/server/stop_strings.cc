#include "server/stop_strings.h"

#include <algorithm>

namespace hlwq::server {

std::string StopStringMatcher::push(std::string_view text) {
  if (stopped_) return "";
  pending_ += text;
  size_t first_stop = std::string::npos;
  for (const std::string& stop : stops_) first_stop = std::min(first_stop, pending_.find(stop));
  if (first_stop != std::string::npos) {
    stopped_ = true;
    std::string shown = pending_.substr(0, first_stop);
    pending_.clear();
    return shown;
  }
  // Hold back the longest tail of the text that is a proper prefix of some stop string.
  size_t held = 0;
  for (const std::string& stop : stops_) {
    for (size_t length = std::min(stop.size() - 1, pending_.size()); length > held; --length) {
      if (std::string_view(pending_).substr(pending_.size() - length) == std::string_view(stop).substr(0, length)) {
        held = length;
        break;
      }
    }
  }
  std::string shown = pending_.substr(0, pending_.size() - held);
  pending_.erase(0, pending_.size() - held);
  return shown;
}

std::string StopStringMatcher::flush() {
  std::string rest;
  rest.swap(pending_);
  return stopped_ ? "" : rest;
}

}  // namespace hlwq::server
