// An error answer of the OpenAI-compatible API: the HTTP status and the body
// {"error": {"message", "type", "code"}} that OpenAI's clients read.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace hlwq::server {

struct ApiError {
  int status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string code;  // machine-readable: "invalid_json", "invalid_type", "context_length_exceeded", ...

  nlohmann::json body() const {
    return {{"error", {{"message", message}, {"type", type}, {"code", code.empty() ? nlohmann::json() : nlohmann::json(code)}}}};
  }
};

}  // namespace hlwq::server
