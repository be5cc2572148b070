// Errors: one exception type whose message is the one-line text the command line prints
// ("hlwq: error: <what>, <where>"). Every layer throws hlwq::Error; only cli/ catches it.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace hlwq {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Builds a message from any streamable pieces: concat("offset ", 12, " past end").
template <class... Parts>
std::string concat(Parts&&... parts) {
  std::ostringstream stream;
  (stream << ... << std::forward<Parts>(parts));
  return stream.str();
}

template <class... Parts>
[[noreturn]] void fail(Parts&&... parts) {
  throw Error(concat(std::forward<Parts>(parts)...));
}

// Checks a condition that depends on input data (not a programming error).
template <class... Parts>
void check(bool condition, Parts&&... parts) {
  if (!condition) fail(std::forward<Parts>(parts)...);
}

}  // namespace hlwq
