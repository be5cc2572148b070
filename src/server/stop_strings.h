// Stop strings over streamed text: text is passed on as soon as it cannot be the start of a stop
// string, so a streamed answer never shows a stop string or a piece of one, and the text before a
// stop string is all that is kept.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace hlwq::server {

class StopStringMatcher {
 public:
  explicit StopStringMatcher(std::vector<std::string> stops) : stops_(std::move(stops)) {}

  // Adds text; returns what can be shown now. After a stop string was found, stopped() is true,
  // the text before it has been returned, and later pushes return nothing.
  std::string push(std::string_view text);
  // The held-back tail (a possible start of a stop string that the answer ended inside).
  std::string flush();
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  std::string pending_;
  bool stopped_ = false;
};

}  // namespace hlwq::server
