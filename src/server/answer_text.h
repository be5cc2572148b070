// Generated tokens to the text a client is sent: whole UTF-8 characters only (a character split
// across tokens waits for its last byte), and nothing of a stop string.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "server/stop_strings.h"
#include "tokenizer/tokenizer.h"

namespace hlwq::server {

class AnswerText {
 public:
  AnswerText(const Tokenizer& tokenizer, std::vector<std::string> stop_strings)
      : decoder_(tokenizer), stops_(std::move(stop_strings)) {}

  // The text that can be shown after this token (maybe empty). Tokens after a stop string add
  // nothing and do not count.
  std::string push(int32_t token) {
    if (stops_.stopped()) return "";
    ++tokens_;
    return stops_.push(decoder_.push(token));
  }
  // The rest at the end of the answer.
  std::string finish() {
    if (stops_.stopped()) return "";
    return stops_.push(decoder_.flush()) + stops_.flush();
  }
  bool stopped() const { return stops_.stopped(); }
  // Tokens that made the answer (up to and including the one that completed a stop string).
  int64_t tokens() const { return tokens_; }

 private:
  StreamingDecoder decoder_;
  StopStringMatcher stops_;
  int64_t tokens_ = 0;
};

}  // namespace hlwq::server
