// libFuzzer target for the HTTP request parser of `hlwq serve`: any body must give a validated
// request or a 400 ApiError, never an exception or a crash; a request that parses has fields in
// their documented ranges.
// Run with scripts/fuzz.sh api_request_fuzz SECONDS (seeds: fuzz/corpus/api_request).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "server/api_request.h"

namespace {

void check_sampling(const hlwq::server::SamplingRequest& sampling, int64_t context) {
  if (sampling.max_tokens && (*sampling.max_tokens < 1 || *sampling.max_tokens > context)) __builtin_trap();
  if (!(sampling.sampler.temperature >= 0 && sampling.sampler.temperature <= 2)) __builtin_trap();
  if (!(sampling.sampler.top_p > 0 && sampling.sampler.top_p <= 1)) __builtin_trap();
  if (!(sampling.sampler.min_p >= 0 && sampling.sampler.min_p <= 1)) __builtin_trap();
  if (sampling.sampler.top_k < 0 || sampling.stop.size() > 4) __builtin_trap();
  for (const std::string& stop : sampling.stop) {
    if (stop.empty()) __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  const hlwq::server::RequestLimits limits{512};
  const auto chat = hlwq::server::parse_chat_request(body, limits);
  if (const auto* request = std::get_if<hlwq::server::ChatRequest>(&chat)) {
    if (request->messages.empty()) __builtin_trap();
    check_sampling(request->sampling, limits.context_length);
  } else if (std::get<hlwq::server::ApiError>(chat).status != 400) {
    __builtin_trap();
  }
  const auto completion = hlwq::server::parse_completion_request(body, limits);
  if (const auto* request = std::get_if<hlwq::server::CompletionRequest>(&completion)) {
    if (request->prompt.empty()) __builtin_trap();
    check_sampling(request->sampling, limits.context_length);
  } else if (std::get<hlwq::server::ApiError>(completion).status != 400) {
    __builtin_trap();
  }
  return 0;
}
